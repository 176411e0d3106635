//! Whole-store exports and the import that goes with one: the anonymised
//! copy for test and demo (6.8, `anonymised.rs`) and the handover to another
//! LRS (6.12, `handover.rs`); `lrs export ...` and `lrs import ...`.
//! docs/exports.md describes the formats.
//!
//! An export reads the log through `lrs_store::Store` and opens statements
//! with the vault like any read; it never writes to the source store.

pub mod anonymised;
pub mod handover;

use crate::data::{open_existing_store, progress_line, DataArgs};
use anonymised::{anonymise_store, AnonymisedLine, AnonymisedSummary, Anonymiser, Coarsen, Item};
use anyhow::{bail, Context};
use lrs_store::{MasterKey, Store, StoreConfig};
use std::io::Write;
use std::path::{Path, PathBuf};

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

/// An output directory must be new or empty: an export never mixes with
/// (or overwrites) files that were there.
fn ensure_empty_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let mut entries =
            std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} is not empty: give a new or empty directory",
                dir.display()
            );
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Writes `text` to a new file that only the owner may read.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// The anonymised copy into `out` (JSON lines) and/or `new_data_dir`.
async fn export_anonymised(
    store: &std::sync::Arc<Store>,
    out: Option<&Path>,
    new_data_dir: Option<&Path>,
    coarsen: Option<Coarsen>,
    keep_extensions: &[String],
) -> anyhow::Result<AnonymisedSummary> {
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Item>(1024);
    let reader = {
        let store = store.clone();
        let keep = keep_extensions.to_vec();
        let out = out.map(Path::to_path_buf);
        tokio::task::spawn_blocking(move || -> anyhow::Result<AnonymisedSummary> {
            let mut anonymiser = Anonymiser::new(coarsen, &keep);
            let mut lines = match &out {
                Some(dir) => Some(std::io::BufWriter::new(
                    std::fs::File::create(dir.join("statements.jsonl"))
                        .context("creating statements.jsonl")?,
                )),
                None => None,
            };
            let summary = anonymise_store(
                &store,
                &mut anonymiser,
                |item| {
                    if let (Some(lines), Item::Statement(line)) = (&mut lines, &item) {
                        serde_json::to_writer(&mut *lines, line)?;
                        lines.write_all(b"\n")?;
                    }
                    // No data directory to fill: nobody listens, nothing to send.
                    if !sender.is_closed() {
                        sender
                            .blocking_send(item)
                            .map_err(|_| anyhow::anyhow!("the data directory writer stopped"))?;
                    }
                    Ok(())
                },
                |done, total| progress_line("anonymising", done, total, ""),
            )?;
            if let (Some(mut lines), Some(dir)) = (lines, &out) {
                lines.flush()?;
                lines.get_ref().sync_all()?;
                let manifest = serde_json::json!({
                    "format": "lrs-anonymised",
                    "version": 1,
                    "created": lrs_core::statement::format_micros(lrs_core::clock::now_micros()),
                    "summary": &summary,
                    "pseudonym_home_page": anonymised::PSEUDONYM_HOME_PAGE,
                });
                std::fs::write(
                    dir.join("manifest.json"),
                    serde_json::to_vec_pretty(&manifest)?,
                )?;
            }
            Ok(summary)
        })
    };
    let filled = match new_data_dir {
        Some(dir) => fill_data_dir(dir, &mut receiver).await,
        None => {
            drop(receiver);
            Ok(0)
        }
    };
    let summary = reader.await.context("the anonymiser stopped")??;
    let written = filled?;
    if new_data_dir.is_some() && written != summary.statements {
        bail!(
            "the new data directory holds {written} statements, the export {}",
            summary.statements
        );
    }
    Ok(summary)
}

/// Appends the anonymised statements (and tenants, roles, course models)
/// to a fresh store under a new master key. Returns the statements written.
async fn fill_data_dir(
    dir: &Path,
    items: &mut tokio::sync::mpsc::Receiver<Item>,
) -> anyhow::Result<u64> {
    let mut key = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
    write_private(
        &dir.join("master.key"),
        format!("{}\n", hex::encode(key)).as_bytes(),
    )?;
    let store = Store::open(StoreConfig::new(dir, MasterKey(key)))
        .with_context(|| format!("opening the new data directory {}", dir.display()))?;
    let filled = fill(&store, items).await;
    store.close().await?;
    filled
}

const COPY_CREDENTIAL: &str = "anonymised-copy";

async fn fill(store: &Store, items: &mut tokio::sync::mpsc::Receiver<Item>) -> anyhow::Result<u64> {
    let mut batch: Vec<lrs_store::PreparedStatement> = Vec::new();
    let mut batch_tenant = String::new();
    let mut written = 0u64;
    while let Some(item) = items.recv().await {
        match item {
            Item::Administrative(event) => {
                written += flush_batch(store, &batch_tenant, &mut batch).await?;
                store
                    .append_event(*event)
                    .await
                    .map_err(|e| anyhow::anyhow!("appending to the new data directory: {e}"))?;
            }
            Item::Statement(line) => {
                let AnonymisedLine {
                    tenant,
                    app,
                    library,
                    statement,
                } = line;
                if tenant != batch_tenant || batch.len() >= 500 {
                    written += flush_batch(store, &batch_tenant, &mut batch).await?;
                    batch_tenant = tenant;
                }
                let authority = statement
                    .get("authority")
                    .cloned()
                    .unwrap_or(serde_json::Value::Null);
                let prepared = lrs_app::ingest::prepare(
                    store,
                    statement,
                    &authority,
                    xapi::XapiVersion::V1_0_3,
                    "$",
                    &[],
                    lrs_core::events::OriginV1 { app, library },
                )
                .map_err(|e| anyhow::anyhow!("preparing an anonymised statement: {e}"))?;
                batch.push(prepared);
            }
        }
    }
    written += flush_batch(store, &batch_tenant, &mut batch).await?;
    Ok(written)
}

async fn flush_batch(
    store: &Store,
    tenant: &str,
    batch: &mut Vec<lrs_store::PreparedStatement>,
) -> anyhow::Result<u64> {
    if batch.is_empty() {
        return Ok(0);
    }
    let statements = std::mem::take(batch);
    let count = statements.len() as u64;
    store
        .append_statements(tenant.to_owned(), COPY_CREDENTIAL.to_owned(), statements)
        .await
        .map_err(|e| anyhow::anyhow!("appending to the new data directory: {e}"))?;
    Ok(count)
}

// ---- the admin API ----
