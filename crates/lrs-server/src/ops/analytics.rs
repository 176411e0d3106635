//! The analytics follower (docs/analytics.md): the Parquet projection as a
//! background task of `lrs serve` that follows the log, and the settings it
//! shares with `POST /api/sql`. The work itself is in `lrs-analytics`.

use super::background::{lowest_priority, Stop};
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

/// Starts following the log (unless switched off) on a thread of its own
/// at the lowest CPU priority: the Parquet projection is the heaviest fold
/// and the least urgent, so requests and the log writer always come first
/// and the follower takes the CPU they leave (docs/performance.md, "Lever
/// 9").
///
/// Dropping the guard stops the follower after its current entry (what it
/// folded is written and checkpointed; the files and the checkpoint stay
/// consistent at any point, even if the process ends first).
pub fn start(store: Arc<Store>, config: &AnalyticsConfig) -> Stop {
    let stop = Arc::new(AtomicBool::new(false));
    if !config.follow {
        return Stop(stop);
    }
    let exporter = Exporter::new(config.target.clone(), tokio::runtime::Handle::current());
    exporter.set_stop(stop.clone());
    let interval = config.interval;
    let follower = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("lrs-analytics".into())
            .spawn(move || {
                lowest_priority("analytics follower");
                follow(&store, &exporter, interval, &stop)
            })
    };
    if let Err(error) = follower {
        tracing::warn!(%error, "analytics: could not start the follower thread");
    }
    Stop(stop)
}

fn follow(store: &Store, exporter: &Exporter, interval: Duration, stop: &AtomicBool) {
    let stopped = || stop.load(Ordering::SeqCst);
    while !stopped() {
        let reached = match exporter.run(store, &mut |_| {}) {
            Ok(report) => {
                if report.statements > 0 || report.rewritten > 0 {
                    tracing::info!(
                        from = report.from,
                        to = report.to,
                        statements = report.statements,
                        files = report.files,
                        rewritten = report.rewritten,
                        "analytics: Parquet files written"
                    );
                }
                report.to
            }
            Err(error) => {
                tracing::warn!(%error, "analytics: export failed; retrying later");
                store.head()
            }
        };
        // Wait for the log to grow past what the run folded (no tokio
        // timer: the runtime may be shutting down around this thread), then
        // gather: a burst of statements goes into one set of files.
        while store.head() <= reached {
            if stopped() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        gather(store, interval, &stopped);
    }
}

/// While the log grows by at least this many positions per second, the
/// follower keeps gathering (up to [`GATHER_INTERVALS`] intervals): a run
/// writes a file per library, tenant and month it touches, so frequent runs
/// under heavy ingest make many small files, each costing a zstd context
/// per column and ~2.5x the bytes of the same rows in one file
/// (docs/performance.md, "Lever 6" and "Lever 9").
const BUSY_POSITIONS_PER_SECOND: f64 = 1_000.0;

/// The longest the follower gathers a busy log, in intervals (60 s at the
/// default 10 s interval): the Parquet files are at most that far behind.
const GATHER_INTERVALS: u32 = 6;

/// Waits `interval`, then, while the log keeps growing fast (a bulk
/// import, a peak), another interval, up to [`GATHER_INTERVALS`] in all
/// or until a run would fill a file ([`lrs_analytics::FLUSH_ROWS`]).
fn gather(store: &Store, interval: Duration, stopped: &dyn Fn() -> bool) {
    let started = store.head();
    let mut before = started;
    for _ in 0..GATHER_INTERVALS {
        if !pause(interval, stopped) {
            return;
        }
        let now = store.head();
        if !keep_gathering(started, before, now, interval) {
            return;
        }
        before = now;
    }
}

/// Sleeps `interval` in steps of at most a second; false if stopped meanwhile.
fn pause(interval: Duration, stopped: &dyn Fn() -> bool) -> bool {
    let until = std::time::Instant::now() + interval;
    loop {
        if stopped() {
            return false;
        }
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_secs(1)));
    }
}

/// Whether the log, at `now` after one more `interval` (it was at `before`
/// then, at `started` when the gathering began), grows fast enough to wait
/// another interval, and not yet by a whole file's worth.
fn keep_gathering(started: u64, before: u64, now: u64, interval: Duration) -> bool {
    let grown = now.saturating_sub(before) as f64;
    let busy = grown >= BUSY_POSITIONS_PER_SECOND * interval.as_secs_f64();
    busy && now.saturating_sub(started) < lrs_analytics::FLUSH_ROWS as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathers_while_the_log_grows_fast_and_until_a_file_is_full() {
        let ten = Duration::from_secs(10);
        // 10,000 positions in 10 s is busy; 9,999 is not
        assert!(keep_gathering(0, 0, 10_000, ten));
        assert!(!keep_gathering(0, 0, 9_999, ten));
        // the rate of the last interval counts, not the average
        assert!(!keep_gathering(0, 40_000, 45_000, ten));
        assert!(keep_gathering(0, 40_000, 50_000, ten));
        // a shorter interval needs proportionally fewer
        assert!(keep_gathering(0, 0, 200, Duration::from_millis(200)));
        // a whole file's worth is written at once
        let full = lrs_analytics::FLUSH_ROWS as u64;
        assert!(!keep_gathering(0, full - 20_000, full, ten));
        assert!(keep_gathering(0, full - 20_000, full - 1, ten));
    }
}
