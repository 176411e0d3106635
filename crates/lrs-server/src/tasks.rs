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

use crate::security::audit::Audit;
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
}

/// Days after a month's end that its figures are closed by default.
pub const DEFAULT_CLOSE_AFTER_DAYS: u32 = 10;

impl Default for TasksConfig {
    fn default() -> Self {
        Self {
            retention_every_hours: 24,
            figures_close_after_days: DEFAULT_CLOSE_AFTER_DAYS,
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
