//! The analytics follower (docs/analytics.md): the Parquet projection as a
//! background task of `lrs serve` that follows the log, and the settings it
//! shares with `POST /api/sql`. The work itself is in `lrs-analytics`.

use lrs_analytics::{Exporter, QueryLimits, Target};
use lrs_store::Store;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Where the Parquet files are and how SQL over them is limited: the
/// follower writes there, `POST /api/sql` reads there.
#[derive(Clone, Debug)]
pub struct AnalyticsConfig {
    pub target: Target,
    pub limits: QueryLimits,
    /// How long the follower waits after the log grows before it writes
    /// (statements arriving meanwhile go into the same files).
    pub interval: Duration,
    /// Whether `lrs serve` follows the log at all (`--no-analytics`: no).
    pub follow: bool,
}

impl AnalyticsConfig {
    /// The files in `<data dir>/analytics` with the default limits, not
    /// followed: what a server configured without analytics settings reads.
    pub fn in_data_dir(data_dir: &std::path::Path) -> Result<Self, lrs_analytics::AnalyticsError> {
        Ok(Self {
            target: Target::open(&data_dir.join("analytics").display().to_string())?,
            limits: QueryLimits::default(),
            interval: Duration::from_secs(10),
            follow: false,
        })
    }
}

/// Starts following the log (unless switched off). The returned guard
/// stops the task.
pub fn start(store: Arc<Store>, config: &AnalyticsConfig) -> Running {
    let stop = Arc::new(AtomicBool::new(false));
    if !config.follow {
        return Running { stop, task: None };
    }
    let exporter = Arc::new(Exporter::new(
        config.target.clone(),
        tokio::runtime::Handle::current(),
    ));
    exporter.set_stop(stop.clone());
    let task = tokio::spawn(follow(store, exporter, config.interval, stop.clone()));
    Running {
        stop,
        task: Some(task),
    }
}

/// The background export; dropping it stops the task after its current
/// batch (the files and checkpoint stay consistent at any point).
pub struct Running {
    stop: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn follow(
    store: Arc<Store>,
    exporter: Arc<Exporter>,
    interval: Duration,
    stop: Arc<AtomicBool>,
) {
    let mut head = store.follow();
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let run = {
            let store = store.clone();
            let exporter = exporter.clone();
            tokio::task::spawn_blocking(move || exporter.run(&store, &mut |_| {}))
        };
        match run.await {
            Ok(Ok(report)) if report.statements > 0 || report.rewritten > 0 => {
                tracing::info!(
                    from = report.from,
                    to = report.to,
                    statements = report.statements,
                    files = report.files,
                    rewritten = report.rewritten,
                    "analytics: Parquet files written"
                );
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "analytics: export failed; retrying later"),
            Err(error) => tracing::warn!(%error, "analytics: export task failed"),
        }
        // Wait for the log to grow, then a little longer so that a burst of
        // statements goes into one set of files.
        if head.changed().await.is_err() {
            return;
        }
        tokio::time::sleep(interval).await;
        head.borrow_and_update();
    }
}
