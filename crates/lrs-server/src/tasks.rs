//! Work the server does by itself, started by `run` with the other
//! background tasks (part of the composition root: it may use every room).
//!
//! - Privacy: on start, finish erasures a stop interrupted
//!   (`lrs_app::privacy::reconcile`); then apply the retention periods every
//!   `retention_every_hours` (the first run a minute after start), each run
//!   recorded in the audit trail as the system's.

use crate::security::audit::Audit;
use lrs_app::privacy::{self, retention, RETENTION_ACTOR};
use lrs_store::Store;
use std::sync::Arc;
use std::time::Duration;

/// How often the server applies the retention periods by itself.
#[derive(Debug, Clone)]
pub struct TasksConfig {
    /// Hours between retention runs; 0: never by itself (`lrs privacy
    /// retention run` and the admin API still do).
    pub retention_every_hours: u64,
}

impl Default for TasksConfig {
    fn default() -> Self {
        Self {
            retention_every_hours: 24,
        }
    }
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
