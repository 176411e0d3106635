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
pub mod datatheek;
pub mod files;
pub mod handover;

use crate::data::{open_existing_store, progress_line, DataArgs};
use anonymised::Coarsen;
use anyhow::bail;
use copy::export_anonymised;
pub(crate) use files::{ensure_empty_dir, write_private};
use std::path::PathBuf;
use std::sync::Arc;

/// `lrs export ...`.
#[derive(clap::Subcommand)]
pub enum ExportCommand {
    /// The KB Datatheek workbook (xlsx or ods) of a month, or of a range of
    /// months in one workbook: the same workbook GET /api/figures/datatheek
    /// answers. The server must be stopped (while it runs, download it).
    Datatheek {
        #[command(flatten)]
        data: DataArgs,
        /// The month, YYYY-MM (Dutch time); with --to-month the first of a range.
        #[arg(long)]
        month: lrs_app::insight::Month,
        /// The last month of a range (at most 36 months).
        #[arg(long)]
        to_month: Option<lrs_app::insight::Month>,
        /// Whose workbook: a tenant id (a library or app gets its own row
        /// only); default the KB's, every library and app.
        #[arg(long)]
        tenant: Option<String>,
        /// Which figures: closed (the latest closed version, else live),
        /// live, or a closed version number.
        #[arg(long, default_value = "closed")]
        version: lrs_app::insight::FiguresVersion,
        /// Which hits: statements, launches or both.
        #[arg(long, default_value = "statements")]
        hits: lrs_app::insight::HitsChoice,
        /// The new file to write (never over an existing one).
        #[arg(long)]
        out: PathBuf,
        /// The file format: xlsx (Excel) or ods (OpenDocument, the same
        /// sheets and cells); default from --out's extension, else xlsx.
        #[arg(long)]
        format: Option<lrs_app::sheets::SheetFormat>,
    },
    /// Everything, in open formats, for the KB's exit (2.37, 2.38): every
    /// tenant's statements as xAPI JSON lines per month, attachments,
    /// documents, tenants, roles and credentials (no secrets), course
    /// models, the monthly figures as CSV, the Parquet files and a manifest
    /// with counts and the SHA-256 of every file. Running it again on an
    /// unfinished export resumes it. The server must be stopped.
    All {
        #[command(flatten)]
        data: DataArgs,
        /// The export directory: new or empty, or an unfinished export of
        /// this store to resume.
        #[arg(long)]
        to: PathBuf,
    },
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
        ExportCommand::Datatheek {
            data,
            month,
            to_month,
            tenant,
            version,
            hits,
            out,
            format,
        } => {
            let format = format.unwrap_or_else(|| datatheek::format_of(&out));
            if out.exists() {
                bail!("--out {} exists already: give a new file", out.display());
            }
            let store = open_existing_store(&data)?;
            let made = datatheek::access_of(&store, tenant.as_deref()).and_then(|access| {
                datatheek::build(
                    &store,
                    &access,
                    month,
                    to_month.unwrap_or(month),
                    version,
                    hits,
                    format,
                )
            });
            store.close().await?;
            let bytes = made?;
            datatheek::write_new(&out, &bytes)?;
            let months = match to_month {
                Some(to) if to != month => format!("{month} to {to}"),
                _ => month.to_string(),
            };
            crate::audit::record_cli(
                &data.data_dir,
                None,
                "export.datatheek",
                &format!("{months} {}", tenant.as_deref().unwrap_or("kb")),
            )?;
            println!(
                "ok: the Datatheek workbook of {months} in {} ({format}, {} bytes)",
                out.display(),
                bytes.len()
            );
            Ok(())
        }
        ExportCommand::All { data, to } => {
            let store = open_existing_store(&data)?;
            let result = all::export_all(
                &store,
                &to,
                Arc::new(|phase, done, total| progress_line(phase, done, total, "")),
            )
            .await;
            store.close().await?;
            let done = result?;
            let manifest = &done["manifest"];
            if done["already_complete"] == true {
                println!(
                    "ok: {} already holds a complete export (manifest.json); nothing was changed",
                    to.display()
                );
                return Ok(());
            }
            crate::audit::record_cli(
                &data.data_dir,
                None,
                "export.all",
                &to.display().to_string(),
            )?;
            println!(
                "ok: {}export of everything in {}: {} statements ({} voided) of {} tenants, {} files; manifest.json lists each with its SHA-256",
                if done["resumed"] == true { "resumed " } else { "" },
                to.display(),
                manifest["counts"]["statements"],
                manifest["counts"]["voided"],
                manifest["counts"]["per_tenant"].as_object().map_or(0, |t| t.len()),
                manifest["counts"]["files"],
            );
            Ok(())
        }
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
