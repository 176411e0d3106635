//! Whole-store exports and the import that goes with one: the anonymised
//! copy for test and demo (6.8, `anonymised.rs`) and the handover to another
//! LRS (6.12, `handover.rs`); `lrs export ...` and `lrs import ...`.
//! docs/exports.md describes the formats.
//!
//! An export reads the log through `lrs_store::Store` and opens statements
//! with the vault like any read; it never writes to the source store.

pub mod all;
pub mod anonymised;
pub mod copy;
pub mod files;
pub mod handover;

use crate::data::{open_existing_store, progress_line, DataArgs};
use anonymised::Coarsen;
use anyhow::bail;
use copy::export_anonymised;
pub(crate) use files::{ensure_empty_dir, write_private};
use std::path::PathBuf;
use std::sync::Arc;

/// `lrs export ...` (the lead adds the Datatheek workbook here too).
#[derive(clap::Subcommand)]
pub enum ExportCommand {
    /// An anonymised copy for test and demo: people replaced by random
    /// pseudonyms, free text removed, ids re-randomised, attachments
    /// dropped, times coarsened if asked. The server must be stopped (or use
    /// GET /admin/exports/anonymised).
    Anonymised {
        #[command(flatten)]
        data: DataArgs,
        /// Directory for statements.jsonl and manifest.json (new or empty).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also (or instead) build a fresh data directory holding the
        /// anonymised statements, under a new master key written to
        /// NEW/master.key, for a demo LRS to start from.
        #[arg(long)]
        new_data_dir: Option<PathBuf>,
        /// Coarsen every time to the start of its (Dutch) day or month.
        #[arg(long, value_enum)]
        coarsen_times: Option<Coarsen>,
        #[command(flatten)]
        tenancy: crate::args::TenancyArgs,
    },
    /// Everything for another LRS: every statement (xAPI JSON as the API
    /// returns it, in stored order, with attachments) and every document.
    /// The server must be stopped. Import with `lrs import handover`.
    Handover {
        #[command(flatten)]
        data: DataArgs,
        /// Directory for the export (new or empty).
        #[arg(long)]
        out: PathBuf,
    },
}

/// `lrs import ...`.
#[derive(clap::Subcommand)]
pub enum ImportCommand {
    /// Sends a handover export to an LRS through its standard xAPI API:
    /// statements in batches (attachments as multipart/mixed), documents by PUT.
    Handover {
        /// The export directory (`lrs export handover --out`).
        #[arg(long)]
        from: PathBuf,
        /// The xAPI endpoint, e.g. https://lrs.example.nl/xapi
        #[arg(long)]
        to: String,
        /// Basic credential of the receiving LRS: key (user name).
        #[arg(long, env = "LRS_IMPORT_KEY")]
        key: String,
        /// Basic credential of the receiving LRS: secret.
        #[arg(long, env = "LRS_IMPORT_SECRET")]
        secret: String,
        /// Statements per request.
        #[arg(long, default_value_t = 100)]
        batch: usize,
    },
}

/// Runs `lrs export ...`.
pub async fn export(command: ExportCommand) -> anyhow::Result<()> {
    match command {
        ExportCommand::Anonymised {
            data,
            out,
            new_data_dir,
            coarsen_times,
            tenancy,
        } => {
            if out.is_none() && new_data_dir.is_none() {
                bail!("say where to: --out DIR, --new-data-dir NEW, or both");
            }
            for dir in out.iter().chain(new_data_dir.iter()) {
                ensure_empty_dir(dir)?;
            }
            let store = open_existing_store(&data)?;
            let extensions = tenancy.into_extensions();
            let keep = [extensions.isil, extensions.appid];
            let result = export_anonymised(
                &store,
                out.as_deref(),
                new_data_dir.as_deref(),
                coarsen_times,
                &keep,
                Arc::new(|phase, done, total| progress_line(phase, done, total, "")),
            )
            .await;
            store.close().await?;
            let summary = result?;
            let target = [out.as_deref(), new_data_dir.as_deref()]
                .into_iter()
                .flatten()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" and ");
            crate::audit::record_cli(&data.data_dir, None, "export.anonymised", &target)?;
            println!(
                "ok: {} statements of {} people, anonymised, in {target} ({} statements of erased people left out)",
                summary.statements, summary.people, summary.statements_of_erased_people
            );
            if let Some(new) = &new_data_dir {
                println!(
                    "start a demo LRS on it with: lrs serve --data-dir {} --master-key-file {}",
                    new.display(),
                    new.join("master.key").display()
                );
            }
            Ok(())
        }
        ExportCommand::Handover { data, out } => {
            ensure_empty_dir(&out)?;
            let store = open_existing_store(&data)?;
            let result = handover::export(&store, &out, |phase, done, total| {
                progress_line(phase, done, total, "")
            });
            store.close().await?;
            let summary = result?;
            crate::audit::record_cli(
                &data.data_dir,
                None,
                "export.handover",
                &out.display().to_string(),
            )?;
            println!(
                "ok: handover export in {}: {} statements ({} attachments), {} documents; left out: {} statements and {} documents of erased people, {} documents whose agent no statement names",
                out.display(),
                summary.statements,
                summary.attachments,
                summary.documents,
                summary.statements_of_erased_people,
                summary.documents_of_erased_people,
                summary.documents_without_agent
            );
            Ok(())
        }
    }
}

/// Runs `lrs import ...`.
pub async fn import(command: ImportCommand) -> anyhow::Result<()> {
    match command {
        ImportCommand::Handover {
            from,
            to,
            key,
            secret,
            batch,
        } => {
            let summary = handover::import(&from, &to, &key, &secret, batch.max(1)).await?;
            println!(
                "ok: imported {} statements ({} attachments) and {} documents into {to}",
                summary.statements, summary.attachments, summary.documents
            );
            Ok(())
        }
    }
}

// ---- the admin API ----
