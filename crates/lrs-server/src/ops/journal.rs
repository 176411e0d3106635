//! The operations journal: `<data dir>/ops/journal-YYYY-MM.jsonl`, one JSON
//! line per minute in which the server ran, for the monthly service report
//! (`service_report.rs`). It holds no personal data: counts by status class,
//! a latency histogram, and how many readiness checks ran and failed.
//!
//! The request path only adds to atomics ([`MinuteCounters::record_request`]:
//! two relaxed `fetch_add`s, no lock); once a minute the background task of
//! `metrics::Monitor` takes the counters ([`MinuteCounters::take`]) and
//! appends the line. A request that finishes while the line is being taken
//! may land in the next minute's line; nothing is lost or counted twice.
//!
//! The latency buckets are the Prometheus histogram's
//! ([`crate::ops::counters::LATENCY_BUCKETS`]), and every line names them, so the
//! report merges minutes exactly and refuses lines made with other buckets.

use crate::ops::counters::LATENCY_BUCKETS;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Number of latency counts in a line: one per bucket bound, plus one for
/// everything above the last bound.
pub const LATENCY_SLOTS: usize = LATENCY_BUCKETS.len() + 1;

/// One minute of the server's life, as written to the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinuteRecord {
    /// Start of the minute, Unix seconds (UTC), a multiple of 60.
    pub minute: i64,
    /// Requests answered in the minute, by status class: `[1xx, 2xx, 3xx, 4xx, 5xx]`.
    pub status: StatusClasses,
    /// Upper bounds of the latency buckets, seconds (Prometheus `le`).
    pub latency_le_seconds: Vec<f64>,
    /// Requests per latency bucket, not cumulative; the last count is for
    /// requests slower than the last bound.
    pub latency_counts: Vec<u64>,
    /// Readiness checks run in the minute (the background probe every 15 s,
    /// plus every `GET /health/ready`), and how many of them failed.
    pub ready_checks: u64,
    pub ready_failures: u64,
}

/// Requests by status class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusClasses {
    #[serde(rename = "1xx")]
    pub informational: u64,
    #[serde(rename = "2xx")]
    pub success: u64,
    #[serde(rename = "3xx")]
    pub redirection: u64,
    #[serde(rename = "4xx")]
    pub client_error: u64,
    #[serde(rename = "5xx")]
    pub server_error: u64,
}

impl StatusClasses {
    pub fn total(&self) -> u64 {
        self.informational + self.success + self.redirection + self.client_error + self.server_error
    }

    pub fn add(&mut self, other: &StatusClasses) {
        self.informational += other.informational;
        self.success += other.success;
        self.redirection += other.redirection;
        self.client_error += other.client_error;
        self.server_error += other.server_error;
    }
}

/// The index of the latency slot a duration falls in: the first bucket
/// whose bound is at least the duration (Prometheus' `le`), else the last.
pub fn latency_slot(seconds: f64) -> usize {
    LATENCY_BUCKETS
        .iter()
        .position(|bound| seconds <= *bound)
        .unwrap_or(LATENCY_BUCKETS.len())
}

/// The counters of the minute in progress. Lock-free: the request path
/// only increments.
pub struct MinuteCounters {
    by_class: [AtomicU64; 5],
    latency: [AtomicU64; LATENCY_SLOTS],
    ready_checks: AtomicU64,
    ready_failures: AtomicU64,
    /// The minute the counters were last taken in (Unix seconds).
    started: AtomicI64,
}

impl MinuteCounters {
    pub fn new(now_unix: i64) -> Self {
        Self {
            by_class: Default::default(),
            latency: Default::default(),
            ready_checks: AtomicU64::new(0),
            ready_failures: AtomicU64::new(0),
            started: AtomicI64::new(minute_of(now_unix)),
        }
    }

    /// Counts one answered request.
    pub fn record_request(&self, status: u16, elapsed: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        self.latency[latency_slot(elapsed.as_secs_f64())].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one readiness check.
    pub fn record_readiness(&self, ready: bool) {
        self.ready_checks.fetch_add(1, Ordering::Relaxed);
        if !ready {
            self.ready_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The line for the minute that began when the counters were last
    /// taken, and resets them; the next line starts at `now_unix`'s minute.
    pub fn take(&self, now_unix: i64) -> MinuteRecord {
        let minute = self.started.swap(minute_of(now_unix), Ordering::Relaxed);
        let class = |i: usize| self.by_class[i].swap(0, Ordering::Relaxed);
        MinuteRecord {
            minute,
            status: StatusClasses {
                informational: class(0),
                success: class(1),
                redirection: class(2),
                client_error: class(3),
                server_error: class(4),
            },
            latency_le_seconds: LATENCY_BUCKETS.to_vec(),
            latency_counts: self
                .latency
                .iter()
                .map(|count| count.swap(0, Ordering::Relaxed))
                .collect(),
            ready_checks: self.ready_checks.swap(0, Ordering::Relaxed),
            ready_failures: self.ready_failures.swap(0, Ordering::Relaxed),
        }
    }

    /// The minute the counters are collecting for.
    pub fn current_minute(&self) -> i64 {
        self.started.load(Ordering::Relaxed)
    }
}

/// The start of the minute holding `unix` seconds.
pub fn minute_of(unix: i64) -> i64 {
    unix.div_euclid(60) * 60
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn ops_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("ops")
}

/// The journal file of a month: `ops/journal-YYYY-MM.jsonl`.
pub fn journal_path(data_dir: &Path, year: i32, month: u32) -> PathBuf {
    ops_dir(data_dir).join(format!("journal-{year:04}-{month:02}.jsonl"))
}

/// The journal file the line of `minute` belongs in (by its UTC month).
pub fn journal_path_for(data_dir: &Path, minute: i64) -> PathBuf {
    use chrono::Datelike;
    let date = chrono::DateTime::from_timestamp(minute, 0).unwrap_or_default();
    journal_path(data_dir, date.year(), date.month())
}

/// Appends one line (one `write` of the whole line, then `fdatasync`: once a
/// minute, so the record of availability survives a crash).
pub fn append(data_dir: &Path, record: &MinuteRecord) -> std::io::Result<()> {
    std::fs::create_dir_all(ops_dir(data_dir))?;
    let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(journal_path_for(data_dir, record.minute))?;
    file.write_all(&line)?;
    file.sync_data()
}

/// The lines of one journal file that parse; and how many did not (a line
/// cut short by a crash, say).
pub fn read_file(path: &Path) -> std::io::Result<(Vec<MinuteRecord>, usize)> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(error) => return Err(error),
    };
    let mut records = Vec::new();
    let mut skipped = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<MinuteRecord>(line) {
            Ok(record) => records.push(record),
            Err(_) => skipped += 1,
        }
    }
    Ok((records, skipped))
}

/// The first minute the journal knows of, over the store's whole life: the
/// earliest line of the earliest journal file.
pub fn first_minute(data_dir: &Path) -> std::io::Result<Option<i64>> {
    let dir = ops_dir(data_dir);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("journal-") && n.ends_with(".jsonl"))
        })
        .collect();
    files.sort();
    for file in files {
        let (records, _) = read_file(&file)?;
        if let Some(first) = records.iter().map(|r| r.minute).min() {
            return Ok(Some(first));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_lands_in_the_bucket_prometheus_would_count_it_in() {
        // `le` is inclusive: exactly 1 ms is in the 1 ms bucket.
        assert_eq!(latency_slot(0.0), 0);
        assert_eq!(latency_slot(0.001), 0);
        assert_eq!(latency_slot(0.0011), 1);
        assert_eq!(latency_slot(10.0), LATENCY_BUCKETS.len() - 1);
        assert_eq!(latency_slot(10.5), LATENCY_BUCKETS.len());
    }

    #[test]
    fn taking_a_minute_resets_the_counters_and_starts_the_next_minute() {
        let counters = MinuteCounters::new(1_700_000_030);
        counters.record_request(200, Duration::from_millis(3));
        counters.record_request(204, Duration::from_millis(30));
        counters.record_request(503, Duration::from_secs(20));
        counters.record_request(404, Duration::from_micros(10));
        counters.record_readiness(true);
        counters.record_readiness(false);
        let first = counters.take(1_700_000_065);
        assert_eq!(first.minute, 1_699_999_980);
        assert_eq!(first.status.success, 2);
        assert_eq!(first.status.client_error, 1);
        assert_eq!(first.status.server_error, 1);
        assert_eq!(first.status.total(), 4);
        assert_eq!(first.latency_counts.iter().sum::<u64>(), 4);
        assert_eq!(
            first.latency_counts[LATENCY_BUCKETS.len()],
            1,
            "20 s is above 10 s"
        );
        assert_eq!((first.ready_checks, first.ready_failures), (2, 1));
        let second = counters.take(1_700_000_125);
        assert_eq!(second.minute, 1_700_000_040);
        assert_eq!(second.status.total(), 0);
        assert_eq!(second.ready_checks, 0);
    }

    #[test]
    fn lines_go_to_their_month_and_read_back_skipping_broken_ones() {
        let dir = tempfile::tempdir().unwrap();
        let counters = MinuteCounters::new(1_714_521_540); // 2024-04-30 23:59 UTC
        counters.record_request(200, Duration::from_millis(1));
        append(dir.path(), &counters.take(1_714_521_600)).unwrap();
        append(dir.path(), &counters.take(1_714_521_660)).unwrap(); // 2024-05-01 00:00
        let april = journal_path(dir.path(), 2024, 4);
        let may = journal_path(dir.path(), 2024, 5);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&may)
            .unwrap()
            .write_all(b"{\"minute\": 17145216")
            .unwrap();
        let (records, skipped) = read_file(&april).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].status.success, 1);
        assert_eq!(skipped, 0);
        let (records, skipped) = read_file(&may).unwrap();
        assert_eq!(records[0].minute, 1_714_521_600);
        assert_eq!(skipped, 1);
        assert_eq!(first_minute(dir.path()).unwrap(), Some(1_714_521_540));
    }
}
