//! Work the server does by itself, started by `run` with the other
//! background tasks (part of the composition root: it may use every room).
//!
//! - Privacy: on start, finish erasures a stop interrupted
//!   (`lrs_app::privacy::reconcile`); then apply the retention periods every
//!   `retention_every_hours` (the first run a minute after start), each run
//!   recorded in the audit trail as the system's.
//! - Figures: every hour (the first check a minute after start), close each
//!   month with figures that ended `figures_close_after_days` days ago and
//!   was never closed (`lrs_app::closing::close_due`), each closing recorded
//!   in the audit trail as the system's.
//! - The Datatheek (requirement 2.26, "periodiek"): with a target
//!   configured, every `datatheek_every` (the first check a minute after
//!   start, or sooner) deliver each closed month not yet delivered there:
//!   the KB's workbook and each library's of the month's latest closed
//!   version, then `<month>/delivered.json`, the delivery record that makes
//!   a later check (or a restart) skip the month; recorded in the audit
//!   trail as the system's.

use crate::security::audit::Audit;
use lrs_analytics::Target;
use lrs_app::privacy::{self, retention, RETENTION_ACTOR};
use lrs_store::Store;
use std::sync::Arc;
use std::time::Duration;

/// What the server does by itself, and when.
#[derive(Debug, Clone)]
pub struct TasksConfig {
    /// Hours between retention runs; 0: never by itself (`lrs privacy
    /// retention run` and the admin API still do).
    pub retention_every_hours: u64,
    /// Close a month's figures this many days after the month ended; 0:
    /// never by itself (`lrs figures close` and the API still do).
    pub figures_close_after_days: u32,
    /// Where closed months' Datatheek workbooks are delivered (a directory,
    /// S3-compatible or Azure); none: not by itself (`lrs export datatheek`
    /// and the API still give them).
    pub datatheek_to: Option<Target>,
    /// How often to look for a closed month not yet delivered.
    pub datatheek_every: Duration,
}

/// Days after a month's end that its figures are closed by default.
pub const DEFAULT_CLOSE_AFTER_DAYS: u32 = 10;

impl Default for TasksConfig {
    fn default() -> Self {
        Self {
            retention_every_hours: 24,
            figures_close_after_days: DEFAULT_CLOSE_AFTER_DAYS,
            datatheek_to: None,
            datatheek_every: Duration::from_secs(3600),
        }
    }
}

/// Starts the task that closes months by itself (none if switched off).
/// It ends when the handle is aborted.
pub fn start_closing(
    store: Arc<Store>,
    audit: Arc<Audit>,
    config: &TasksConfig,
) -> Option<tokio::task::JoinHandle<()>> {
    let after_days = config.figures_close_after_days;
    if after_days == 0 {
        return None;
    }
    Some(tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        loop {
            close_due(&store, &audit, after_days).await;
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    }))
}

async fn close_due(store: &Arc<Store>, audit: &Audit, after_days: u32) {
    let now = lrs_core::clock::now_micros();
    match lrs_app::closing::close_due(store, now, after_days).await {
        Ok(done) => {
            for closed in done {
                let lrs_app::closing::Closed::Closed { month, version } = closed else {
                    continue;
                };
                audit.submit(lrs_store::audit::AuditEntry {
                    time_micros: lrs_core::clock::now_micros(),
                    principal: Some(format!("system:{}", lrs_app::closing::AUTO)),
                    action: "figures.close".to_owned(),
                    resources: lrs_store::audit::AuditResources {
                        target: Some(format!("{month} version {version}")),
                        ..Default::default()
                    },
                    ..Default::default()
                });
                tracing::info!(%month, version, "figures closed");
            }
        }
        Err(error) => tracing::error!(%error, "closing months failed"),
    }
}

/// The delivery record of a month in the Datatheek target, next to its
/// workbooks: `<month>/delivered.json`.
pub const DELIVERY_RECORD: &str = "delivered.json";

/// Starts the task that delivers closed months' Datatheek workbooks (none
/// without a target). It ends when the handle is aborted.
pub fn start_datatheek(
    store: Arc<Store>,
    audit: Arc<Audit>,
    config: &TasksConfig,
) -> Option<tokio::task::JoinHandle<()>> {
    let target = config.datatheek_to.clone()?;
    let every = config.datatheek_every.max(Duration::from_millis(100));
    Some(tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(60).min(every)).await;
        loop {
            if let Err(error) = deliver_due(&store, &audit, &target).await {
                tracing::error!(%error, location = %target.url, "delivering the Datatheek failed");
            }
            tokio::time::sleep(every).await;
        }
    }))
}

/// Delivers every closed month that has no delivery record in `target`
/// yet; answers the months delivered.
pub async fn deliver_due(
    store: &Arc<Store>,
    audit: &Audit,
    target: &Target,
) -> Result<Vec<String>, String> {
    let reader = store.clone();
    let closed = tokio::task::spawn_blocking(move || lrs_app::datatheek::closed_months(&reader))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let mut delivered = Vec::new();
    for (month, version) in closed {
        let record = format!("{month}/{DELIVERY_RECORD}");
        if target
            .get_bytes(&record)
            .await
            .map_err(|e| e.to_string())?
            .is_some()
        {
            continue;
        }
        tracing::info!(%month, version, location = %target.url, "delivering the Datatheek workbooks");
        let reader = store.clone();
        let books = tokio::task::spawn_blocking(move || {
            lrs_app::datatheek::closed_workbooks(&reader, month, version)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        let mut files = Vec::new();
        for (name, bytes) in books {
            use sha2::Digest;
            files.push(serde_json::json!({
                "name": name,
                "bytes": bytes.len(),
                "sha256": hex::encode(sha2::Sha256::digest(&bytes)),
            }));
            target
                .put_bytes(&format!("{month}/{name}"), bytes)
                .await
                .map_err(|e| e.to_string())?;
        }
        let now = lrs_core::clock::now_micros();
        let record_body = serde_json::json!({
            "month": month.to_string(),
            "version": version,
            "delivered_at": chrono::DateTime::from_timestamp_micros(now)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "files": files,
        });
        let record_bytes = serde_json::to_vec_pretty(&record_body).map_err(|e| e.to_string())?;
        target
            .put_bytes(&record, record_bytes)
            .await
            .map_err(|e| e.to_string())?;
        audit.submit(lrs_store::audit::AuditEntry {
            time_micros: now,
            principal: Some("system:datatheek".to_owned()),
            action: "figures.datatheek.deliver".to_owned(),
            resources: lrs_store::audit::AuditResources {
                target: Some(format!(
                    "{month} version {version}: {} workbooks",
                    files.len()
                )),
                ..Default::default()
            },
            ..Default::default()
        });
        tracing::info!(%month, version, workbooks = files.len(), location = %target.url, "Datatheek delivered");
        delivered.push(month.to_string());
    }
    Ok(delivered)
}

/// Reconciles interrupted erasures now, then starts the retention task.
/// The task ends when the handle is aborted.
pub fn start_privacy(
    store: Arc<Store>,
    audit: Arc<Audit>,
    config: &TasksConfig,
) -> Result<Option<tokio::task::JoinHandle<()>>, lrs_app::AppError> {
    privacy::reconcile(&store)?;
    if config.retention_every_hours == 0 {
        return Ok(None);
    }
    let every = Duration::from_secs(config.retention_every_hours * 3600);
    Ok(Some(tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(60).min(every)).await;
        loop {
            run_retention(&store, &audit).await;
            tokio::time::sleep(every).await;
        }
    })))
}

async fn run_retention(store: &Store, audit: &Audit) {
    let now = lrs_core::clock::now_micros();
    match retention::run(store, now, false, RETENTION_ACTOR).await {
        Ok(outcome) => {
            audit.submit(lrs_store::audit::AuditEntry {
                time_micros: lrs_core::clock::now_micros(),
                principal: Some(format!("system:{RETENTION_ACTOR}")),
                action: "privacy.retention.run".to_owned(),
                resources: lrs_store::audit::AuditResources {
                    target: Some(outcome.summary().chars().take(200).collect()),
                    ..Default::default()
                },
                ..Default::default()
            });
            tracing::info!(summary = %outcome.summary(), "retention applied");
        }
        Err(error) => tracing::error!(%error, "retention run failed"),
    }
}
