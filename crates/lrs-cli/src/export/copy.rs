//! The anonymised copy written out (6.8): as JSON lines (`lrs export
//! anonymised --out`) and as a new data directory under a new master key
//! (`lrs privacy anonymised-copy --to`, `--new-data-dir`) that `lrs serve`
//! opens. The anonymiser itself is `anonymised.rs`.

use super::anonymised::{
    self, anonymise_store, AnonymisedLine, AnonymisedSummary, Anonymiser, Coarsen, Item,
};
use super::files::write_private;
use anyhow::{bail, Context};
use lrs_store::{MasterKey, Store, StoreConfig};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// Called with (phase, done, total) as long work goes on.
pub type ProgressFn = Arc<dyn Fn(&'static str, u64, u64) + Send + Sync>;

/// The anonymised copy into `out` (JSON lines) and/or `new_data_dir`.
pub async fn export_anonymised(
    store: &Arc<Store>,
    out: Option<&Path>,
    new_data_dir: Option<&Path>,
    coarsen: Option<Coarsen>,
    keep_extensions: &[String],
    progress: ProgressFn,
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
                |done, total| progress("anonymising", done, total),
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

/// Appends the anonymised statements (and tenants, roles, course models,
/// assignments) to a fresh store under a new master key. Returns the
/// statements written.
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
            Item::Assignment { event, learners } => {
                written += flush_batch(store, &batch_tenant, &mut batch).await?;
                let mut event = *event;
                // The copy's own token of each pseudonymous learner.
                event.learners = learners
                    .iter()
                    .filter_map(xapi::agent::ifi_of)
                    .map(|ifi| store.vault().person(&ifi).0)
                    .collect();
                store
                    .append_event(lrs_core::Event::ModulesAssignedV1(event))
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
