//! `lrs report service --month YYYY-MM`: the monthly service report
//! (requirement 2.33: availability, latency percentiles, errors and
//! incidents, as the KB's periodic health report asks), from the operations
//! journal (`ops_journal.rs`) of the data directory. Dutch first, English
//! second; or JSON.
//!
//! Definitions (also in `docs/monitoring.md`):
//! - Months and times are UTC.
//! - The period is the month, from its first minute (or the store's first
//!   journal line, if later: minutes before the journal began are not
//!   counted as down, since nothing recorded them) to its end (or, for the
//!   month in progress, to two minutes ago: the minute in progress and the
//!   one just ended, whose line may not be written yet, are left out, unless
//!   their lines are there, as after a clean stop).
//! - A minute is available when the journal has a line for it (the server
//!   ran) and no readiness check in it failed. Availability = available
//!   minutes / minutes of the period.
//! - Requests and the error rate (5xx / all requests) count every line of
//!   the period. 4xx are the clients' errors and are not in the error rate.
//! - Latency percentiles are read from the merged histogram (the buckets of
//!   `lrs_http_request_duration_seconds`): the report gives the upper bound
//!   of the bucket holding the percentile (nearest rank), so "≤ 25 ms"
//!   means the percentile lies somewhere up to 25 ms, above the bound below.
//! - Incidents: each run of consecutive unavailable minutes (one or more),
//!   and each run of consecutive minutes in which more than 1 % of the
//!   requests answered 5xx; with start, end (exclusive) and duration.

use anyhow::{bail, Context};
use chrono::{Datelike, NaiveDate};
use lrs_server::ops::counters::LATENCY_BUCKETS;
use lrs_server::ops::journal::{self as ops_journal, StatusClasses, LATENCY_SLOTS};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// How the report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Dutch text first, English labels second.
    Text,
    /// One JSON object.
    Json,
}

/// The report for `month` (`YYYY-MM`) from the journal in `data_dir`.
pub fn service_report(
    data_dir: &Path,
    month: &str,
    format: ReportFormat,
) -> anyhow::Result<String> {
    service_report_at(data_dir, month, format, ops_journal::now_unix())
}

/// [`service_report`] as if run at `now_unix`.
pub fn service_report_at(
    data_dir: &Path,
    month: &str,
    format: ReportFormat,
    now_unix: i64,
) -> anyhow::Result<String> {
    let report = build(data_dir, month, now_unix)?;
    Ok(match format {
        ReportFormat::Text => report.text(),
        ReportFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
    })
}

#[derive(Debug, Serialize)]
struct Report {
    month: String,
    /// The period measured, Unix seconds, `[start, end)`; equal when nothing was.
    period_start: i64,
    period_end: i64,
    period_start_utc: String,
    period_end_utc: String,
    /// The first minute of the store's journal (its whole life), if any.
    journal_begins_utc: Option<String>,
    /// Whether minutes at the month's start were left out because the journal began later.
    starts_at_journal_begin: bool,
    /// Whether the period stops before the month's end (the month is in progress).
    month_in_progress: bool,
    minutes: u64,
    minutes_available: u64,
    minutes_without_journal: u64,
    minutes_not_ready: u64,
    availability_percent: Option<f64>,
    requests: u64,
    requests_by_status: StatusClasses,
    error_rate_percent: Option<f64>,
    latency: Latency,
    incidents: Vec<Incident>,
    /// Journal lines that did not parse (a line cut short by a crash).
    skipped_lines: usize,
}

#[derive(Debug, Serialize)]
struct Latency {
    p50: Option<Percentile>,
    p95: Option<Percentile>,
    p99: Option<Percentile>,
}

#[derive(Debug, Clone, Serialize)]
struct Percentile {
    /// Upper bound of the bucket holding the percentile, seconds; `None`
    /// when it lies above the last bound (10 s).
    le_seconds: Option<f64>,
    label: String,
}

#[derive(Debug, Serialize)]
struct Incident {
    /// `down` (unavailable minutes) or `errors` (5xx above 1 %).
    kind: &'static str,
    start: i64,
    end: i64,
    start_utc: String,
    end_utc: String,
    minutes: u64,
    /// For `down`: the minutes without a journal line (not running) and the
    /// minutes with a failed readiness check.
    #[serde(skip_serializing_if = "Option::is_none")]
    without_journal: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_ready: Option<u64>,
    /// For `errors`: the requests and the 5xx answers of the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    requests: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors_5xx: Option<u64>,
}

/// One minute, merged over every line for it (a restart within a minute
/// writes two).
#[derive(Default, Clone)]
struct Minute {
    status: StatusClasses,
    latency: [u64; LATENCY_SLOTS],
    ready_failures: u64,
}

fn parse_month(month: &str) -> anyhow::Result<(i64, i64)> {
    let start = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d")
        .ok()
        .filter(|_| month.len() == 7)
        .with_context(|| format!("--month {month:?}: expected YYYY-MM, e.g. 2026-03"))?;
    let next = if start.month() == 12 {
        NaiveDate::from_ymd_opt(start.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(start.year(), start.month() + 1, 1)
    }
    .context("month out of range")?;
    let unix = |date: NaiveDate| date.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp();
    Ok((unix(start), unix(next)))
}

fn utc(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| unix.to_string())
}

fn build(data_dir: &Path, month: &str, now_unix: i64) -> anyhow::Result<Report> {
    let (month_start, month_end) = parse_month(month)?;
    if month_start > now_unix {
        bail!("{month} has not begun yet");
    }
    let journal_begins = ops_journal::first_minute(data_dir)
        .with_context(|| format!("reading the journal in {}", data_dir.display()))?;
    let Some(journal_begins) = journal_begins else {
        bail!(
            "no operations journal in {}: it is written by `lrs serve` (one line a minute); \
             has a server run on this data directory?",
            ops_journal::ops_dir(data_dir).display()
        );
    };
    let start_date = chrono::DateTime::from_timestamp(month_start, 0).unwrap();
    let path = ops_journal::journal_path(data_dir, start_date.year(), start_date.month());
    let (records, skipped_lines) =
        ops_journal::read_file(&path).with_context(|| format!("reading {}", path.display()))?;
    // Leave out the minute in progress and the one just ended, unless
    // their lines are written already (a server stopped cleanly writes the
    // minute it was in).
    let now_minute = ops_journal::minute_of(now_unix);
    let last_written = records
        .iter()
        .map(|r| r.minute + 60)
        .filter(|&end| end <= now_minute + 60)
        .max();
    let cutoff = (now_minute - 60).max(last_written.unwrap_or(i64::MIN));
    let period_end = month_end.min(cutoff);
    let period_start = month_start
        .max(journal_begins)
        .min(period_end.max(month_start));
    let period_end = period_end.max(period_start);
    let mut minutes: BTreeMap<i64, Minute> = BTreeMap::new();
    for record in records {
        if record.minute < period_start || record.minute >= period_end {
            continue;
        }
        if record.latency_le_seconds != LATENCY_BUCKETS
            || record.latency_counts.len() != LATENCY_SLOTS
        {
            bail!(
                "the journal line for {} UTC uses other latency buckets ({:?}); \
                 this lrs merges only {:?}",
                utc(record.minute),
                record.latency_le_seconds,
                LATENCY_BUCKETS
            );
        }
        let minute = minutes.entry(record.minute).or_default();
        minute.status.add(&record.status);
        for (total, count) in minute.latency.iter_mut().zip(&record.latency_counts) {
            *total += count;
        }
        minute.ready_failures += record.ready_failures;
    }

    let mut requests_by_status = StatusClasses::default();
    let mut latency = [0u64; LATENCY_SLOTS];
    for minute in minutes.values() {
        requests_by_status.add(&minute.status);
        for (total, count) in latency.iter_mut().zip(&minute.latency) {
            *total += count;
        }
    }
    let requests = requests_by_status.total();

    let mut incidents = Vec::new();
    let mut down_run: Option<Incident> = None;
    let mut error_run: Option<Incident> = None;
    let (mut without_journal, mut not_ready) = (0u64, 0u64);
    let mut at = period_start;
    while at < period_end {
        let minute = minutes.get(&at);
        let missing = minute.is_none();
        let unready = minute.is_some_and(|m| m.ready_failures > 0);
        without_journal += u64::from(missing);
        not_ready += u64::from(unready);
        if missing || unready {
            let run = down_run.get_or_insert_with(|| incident("down", at));
            run.end = at + 60;
            *run.without_journal.get_or_insert(0) += u64::from(missing);
            *run.not_ready.get_or_insert(0) += u64::from(unready);
        } else if let Some(run) = down_run.take() {
            incidents.push(run);
        }
        let (total, errors) = minute.map_or((0, 0), |m| (m.status.total(), m.status.server_error));
        // More than 1 %: errors / total > 1 / 100, in integers.
        if total > 0 && errors * 100 > total {
            let run = error_run.get_or_insert_with(|| incident("errors", at));
            run.end = at + 60;
            *run.requests.get_or_insert(0) += total;
            *run.errors_5xx.get_or_insert(0) += errors;
        } else if let Some(run) = error_run.take() {
            incidents.push(run);
        }
        at += 60;
    }
    incidents.extend(down_run);
    incidents.extend(error_run);
    for incident in &mut incidents {
        incident.minutes = ((incident.end - incident.start) / 60) as u64;
        incident.end_utc = utc(incident.end);
    }
    incidents.sort_by_key(|i| (i.start, i.kind));

    let period_minutes = ((period_end - period_start) / 60) as u64;
    let available = period_minutes - without_journal - not_ready;
    let percent = |part: u64, whole: u64| (whole > 0).then(|| part as f64 * 100.0 / whole as f64);
    Ok(Report {
        month: month.to_owned(),
        period_start,
        period_end,
        period_start_utc: utc(period_start),
        period_end_utc: utc(period_end),
        journal_begins_utc: Some(utc(journal_begins)),
        starts_at_journal_begin: period_start > month_start,
        month_in_progress: period_end < month_end,
        minutes: period_minutes,
        minutes_available: available,
        minutes_without_journal: without_journal,
        minutes_not_ready: not_ready,
        availability_percent: percent(available, period_minutes),
        requests,
        requests_by_status,
        error_rate_percent: percent(requests_by_status.server_error, requests),
        latency: Latency {
            p50: percentile(&latency, 0.50),
            p95: percentile(&latency, 0.95),
            p99: percentile(&latency, 0.99),
        },
        incidents,
        skipped_lines,
    })
}

fn incident(kind: &'static str, start: i64) -> Incident {
    Incident {
        kind,
        start,
        end: start + 60,
        start_utc: utc(start),
        end_utc: String::new(),
        minutes: 0,
        without_journal: None,
        not_ready: None,
        requests: None,
        errors_5xx: None,
    }
}

/// The bucket holding the `p` quantile by nearest rank: the first bucket
/// whose cumulative count reaches ⌈p × n⌉.
fn percentile(counts: &[u64; LATENCY_SLOTS], p: f64) -> Option<Percentile> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((p * total as f64).ceil() as u64).max(1);
    let mut cumulative = 0;
    let slot = counts
        .iter()
        .position(|count| {
            cumulative += count;
            cumulative >= rank
        })
        .unwrap_or(LATENCY_SLOTS - 1);
    let le_seconds = LATENCY_BUCKETS.get(slot).copied();
    let label = match le_seconds {
        Some(bound) => format!("≤ {}", duration_label(bound)),
        None => format!(
            "> {}",
            duration_label(LATENCY_BUCKETS[LATENCY_BUCKETS.len() - 1])
        ),
    };
    Some(Percentile { le_seconds, label })
}

fn duration_label(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{} ms", (seconds * 10_000.0).round() / 10.0)
    } else {
        format!("{} s", (seconds * 10.0).round() / 10.0)
    }
}

fn percent_label(value: Option<f64>) -> String {
    value.map_or_else(|| "n.v.t. / n/a".to_owned(), |v| format!("{v:.2} %"))
}

impl Report {
    fn text(&self) -> String {
        let mut out = String::new();
        let w = &mut out;
        let _ = writeln!(w, "Servicerapport / Service report: {} (UTC)", self.month);
        let _ = writeln!(w);
        let _ = writeln!(
            w,
            "Periode / Period: {} – {} UTC ({} minuten / minutes)",
            self.period_start_utc, self.period_end_utc, self.minutes
        );
        let _ = writeln!(
            w,
            "Beschikbaarheid / Availability: {} ({} van / of {} minuten beschikbaar / minutes available)",
            percent_label(self.availability_percent),
            self.minutes_available,
            self.minutes
        );
        if self.minutes > self.minutes_available {
            let _ = writeln!(
                w,
                "  onbeschikbaar / unavailable: {} min zonder journaal (server draaide niet) / without journal (server not running), \
                 {} min niet gereed / not ready",
                self.minutes_without_journal, self.minutes_not_ready
            );
        }
        let s = &self.requests_by_status;
        let _ = writeln!(
            w,
            "Verzoeken / Requests: {} (2xx: {}, 3xx: {}, 4xx: {}, 5xx: {}, 1xx: {})",
            self.requests,
            s.success,
            s.redirection,
            s.client_error,
            s.server_error,
            s.informational
        );
        let _ = writeln!(
            w,
            "Foutpercentage (5xx) / Error rate (5xx): {}",
            percent_label(self.error_rate_percent)
        );
        let _ = writeln!(
            w,
            "Responstijd, bovengrens van de histogramklasse / Latency, histogram bucket upper bound:"
        );
        for (name, value) in [
            ("p50", &self.latency.p50),
            ("p95", &self.latency.p95),
            ("p99", &self.latency.p99),
        ] {
            let label = value
                .as_ref()
                .map_or("geen verzoeken / no requests", |p| p.label.as_str());
            let _ = writeln!(w, "  {name}: {label}");
        }
        let _ = writeln!(w, "Incidenten / Incidents: {}", self.incidents.len());
        for (number, incident) in self.incidents.iter().enumerate() {
            let what = match incident.kind {
                "down" => format!(
                    "Onbeschikbaar / Down: {} min zonder journaal / without journal, {} min niet gereed / not ready",
                    incident.without_journal.unwrap_or(0),
                    incident.not_ready.unwrap_or(0)
                ),
                _ => format!(
                    "Serverfouten > 1 % / Server errors > 1 %: {} van / of {} verzoeken / requests",
                    incident.errors_5xx.unwrap_or(0),
                    incident.requests.unwrap_or(0)
                ),
            };
            let _ = writeln!(
                w,
                "  {}. {} – {} UTC, {} min: {what}",
                number + 1,
                incident.start_utc,
                incident.end_utc,
                incident.minutes
            );
        }
        let _ = writeln!(w);
        let _ = writeln!(w, "Toelichting / Notes:");
        let _ = writeln!(
            w,
            "- Beschikbaar: een minuut waarin de server draaide en elke gereedheidscontrole slaagde. / \
             Available: a minute in which the server ran and every readiness check passed."
        );
        if self.starts_at_journal_begin {
            let _ = writeln!(
                w,
                "- Het journaal begint op {} UTC; eerdere minuten tellen niet mee (ook niet als onbeschikbaar). / \
                 The journal begins at {} UTC; earlier minutes are not counted (not as down either).",
                self.journal_begins_utc.as_deref().unwrap_or("?"),
                self.journal_begins_utc.as_deref().unwrap_or("?")
            );
        }
        if self.month_in_progress {
            let _ = writeln!(
                w,
                "- De maand loopt nog: gemeten tot {} UTC. / The month is in progress: measured up to {} UTC.",
                self.period_end_utc, self.period_end_utc
            );
        }
        if self.skipped_lines > 0 {
            let _ = writeln!(
                w,
                "- {} onleesbare journaalregels overgeslagen. / {} unreadable journal lines skipped.",
                self.skipped_lines, self.skipped_lines
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lrs_server::ops::journal::MinuteRecord;

    const FEB_28_2024: i64 = 1_709_078_400; // 2024-02-28 00:00 UTC
    const MAR_1_2024: i64 = 1_709_251_200;

    /// A small deterministic generator (xorshift), so the test needs no crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// The test's own bucketing, written apart from `ops_journal::latency_slot`.
    fn bucket_counts(samples: &[f64]) -> Vec<u64> {
        let mut counts = vec![0u64; LATENCY_BUCKETS.len() + 1];
        for sample in samples {
            let mut slot = LATENCY_BUCKETS.len();
            for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
                if *sample <= *bound {
                    slot = i;
                    break;
                }
            }
            counts[slot] += 1;
        }
        counts
    }

    fn line(
        minute: i64,
        ok: u64,
        errors: u64,
        samples: &[f64],
        ready_failures: u64,
    ) -> MinuteRecord {
        MinuteRecord {
            minute,
            status: StatusClasses {
                success: ok,
                server_error: errors,
                ..Default::default()
            },
            latency_le_seconds: LATENCY_BUCKETS.to_vec(),
            latency_counts: bucket_counts(samples),
            ready_checks: 4,
            ready_failures,
        }
    }

    /// Writes a journal for 2024-02-28 00:00 to the end of February (a leap
    /// year: 2 days, 2880 minutes), with: a 5-minute gap (not running), a
    /// minute with a failed readiness check, 3 minutes with 5 % 5xx, a
    /// minute with exactly 1 % 5xx (no incident), and one minute written
    /// twice (a restart). Returns every latency sample written.
    fn write_february(dir: &Path) -> Vec<f64> {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut all = Vec::new();
        let gap = FEB_28_2024 + 10 * 3600..FEB_28_2024 + 10 * 3600 + 5 * 60;
        let unready = FEB_28_2024 + 32 * 3600 + 30 * 60;
        let errors_from = FEB_28_2024 + 36 * 3600;
        let exactly_one_percent = FEB_28_2024 + 40 * 3600;
        let restart = FEB_28_2024 + 44 * 3600;
        let mut minute = FEB_28_2024;
        while minute < MAR_1_2024 {
            if gap.contains(&minute) {
                minute += 60;
                continue;
            }
            let count = 20 + rng.next() % 80;
            // Mostly fast, a long tail: 0.2 ms × 10^(5u³), u uniform in
            // [0, 1): the median near 1 ms, p95 near 4 s, p99 above 10 s.
            let samples: Vec<f64> = (0..count)
                .map(|_| {
                    let u = (rng.next() % 10_000) as f64 / 10_000.0;
                    0.0002 * 10f64.powf(5.0 * u * u * u)
                })
                .collect();
            let (ok, errors) = if (errors_from..errors_from + 180).contains(&minute) {
                (count - count / 20, count / 20)
            } else {
                (count, 0)
            };
            let (ok, errors, samples) = if minute == exactly_one_percent {
                (99, 1, samples.iter().cycle().take(100).copied().collect())
            } else {
                (ok, errors, samples)
            };
            all.extend(&samples);
            let failures = u64::from(minute == unready);
            if minute == restart {
                let (first, second) = samples.split_at(samples.len() / 2);
                ops_journal::append(dir, &line(minute, first.len() as u64, 0, first, 0)).unwrap();
                ops_journal::append(dir, &line(minute, second.len() as u64, 0, second, 0)).unwrap();
            } else {
                ops_journal::append(dir, &line(minute, ok, errors, &samples, failures)).unwrap();
            }
            minute += 60;
        }
        all
    }

    /// The bucket bound of the exact nearest-rank percentile of the samples.
    fn expected_bound(samples: &[f64], p: f64) -> Option<f64> {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = (p * sorted.len() as f64).ceil() as usize;
        let exact = sorted[rank - 1];
        LATENCY_BUCKETS
            .iter()
            .copied()
            .find(|bound| exact <= *bound)
    }

    fn json_report(dir: &Path, month: &str, now: i64) -> serde_json::Value {
        let text = service_report_at(dir, month, ReportFormat::Json, now).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn a_month_with_a_gap_an_unready_minute_and_an_error_burst() {
        let dir = tempfile::tempdir().unwrap();
        let samples = write_february(dir.path());
        let report = json_report(dir.path(), "2024-02", MAR_1_2024 + 86_400);

        assert_eq!(report["period_start_utc"], "2024-02-28 00:00");
        assert_eq!(report["period_end_utc"], "2024-03-01 00:00");
        assert_eq!(report["starts_at_journal_begin"], true);
        assert_eq!(report["month_in_progress"], false);
        assert_eq!(report["minutes"], 2880);
        assert_eq!(report["minutes_without_journal"], 5);
        assert_eq!(report["minutes_not_ready"], 1);
        assert_eq!(report["minutes_available"], 2874);
        let availability = report["availability_percent"].as_f64().unwrap();
        assert!((availability - 2874.0 * 100.0 / 2880.0).abs() < 1e-9);

        assert_eq!(report["requests"], samples.len() as u64);
        let errors = report["requests_by_status"]["5xx"].as_u64().unwrap();
        assert!(errors > 0);
        let rate = report["error_rate_percent"].as_f64().unwrap();
        assert!((rate - errors as f64 * 100.0 / samples.len() as f64).abs() < 1e-9);

        for (name, p) in [("p50", 0.50), ("p95", 0.95), ("p99", 0.99)] {
            let reported = report["latency"][name]["le_seconds"].as_f64();
            assert_eq!(reported, expected_bound(&samples, p), "{name}");
        }
        // The three percentiles fall in different buckets, p99 above the last.
        assert_eq!(report["latency"]["p50"]["label"], "≤ 1 ms");
        assert_eq!(report["latency"]["p95"]["label"], "≤ 5 s");
        assert_eq!(report["latency"]["p99"]["label"], "> 10 s");

        let incidents = report["incidents"].as_array().unwrap();
        let summary: Vec<(String, String, String, u64)> = incidents
            .iter()
            .map(|i| {
                (
                    i["kind"].as_str().unwrap().to_owned(),
                    i["start_utc"].as_str().unwrap().to_owned(),
                    i["end_utc"].as_str().unwrap().to_owned(),
                    i["minutes"].as_u64().unwrap(),
                )
            })
            .collect();
        let expect = |kind: &str, start: &str, end: &str, minutes| {
            (kind.to_owned(), start.to_owned(), end.to_owned(), minutes)
        };
        assert_eq!(
            summary,
            vec![
                expect("down", "2024-02-28 10:00", "2024-02-28 10:05", 5),
                expect("down", "2024-02-29 08:30", "2024-02-29 08:31", 1),
                expect("errors", "2024-02-29 12:00", "2024-02-29 12:03", 3),
            ]
        );
        assert_eq!(incidents[0]["without_journal"], 5);
        assert_eq!(incidents[1]["not_ready"], 1);
        assert!(
            incidents[2]["errors_5xx"].as_u64().unwrap() * 100
                > incidents[2]["requests"].as_u64().unwrap()
        );
    }

    #[test]
    fn the_text_report_is_dutch_first_with_english_labels() {
        let dir = tempfile::tempdir().unwrap();
        write_february(dir.path());
        let text = service_report_at(
            dir.path(),
            "2024-02",
            ReportFormat::Text,
            MAR_1_2024 + 86_400,
        )
        .unwrap();
        assert!(
            text.contains("Beschikbaarheid / Availability: 99.79 % (2874 van / of 2880"),
            "{text}"
        );
        assert!(text.contains("Incidenten / Incidents: 3"), "{text}");
        assert!(
            text.contains(
                "1. 2024-02-28 10:00 – 2024-02-28 10:05 UTC, 5 min: Onbeschikbaar / Down"
            ),
            "{text}"
        );
        assert!(
            text.contains("Het journaal begint op 2024-02-28 00:00 UTC"),
            "{text}"
        );
        assert!(text.contains("  p99: > 10 s"), "{text}");
    }

    #[test]
    fn the_month_in_progress_stops_two_minutes_ago_and_earlier_months_are_not_down() {
        let dir = tempfile::tempdir().unwrap();
        write_february(dir.path());
        // 2024-02-29 00:00:30, with lines written up to and including the
        // minute in progress (as a clean stop writes it): measured
        // 2024-02-28 00:00 to 2024-02-29 00:00 inclusive.
        let report = json_report(dir.path(), "2024-02", FEB_28_2024 + 86_430);
        assert_eq!(report["month_in_progress"], true);
        assert_eq!(report["minutes"], 1441);
        assert_eq!(report["minutes_without_journal"], 5);
        // January: before the journal began, nothing measured, nothing down.
        let january = json_report(dir.path(), "2024-01", MAR_1_2024);
        assert_eq!(january["minutes"], 0);
        assert_eq!(january["availability_percent"], serde_json::Value::Null);
        assert_eq!(january["incidents"].as_array().unwrap().len(), 0);
        // After the journal: March without any line is entirely down.
        // At 01:00:00 the minute 00:59 has just ended and is left out.
        let march = json_report(dir.path(), "2024-03", MAR_1_2024 + 3600);
        assert_eq!(march["minutes"], 59);
        assert_eq!(march["minutes_available"], 0);
        assert_eq!(march["incidents"][0]["minutes"], 59);
    }

    #[test]
    fn bad_months_and_a_missing_journal_are_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let error = service_report_at(dir.path(), "2024-02", ReportFormat::Text, MAR_1_2024)
            .unwrap_err()
            .to_string();
        assert!(error.contains("no operations journal"), "{error}");
        write_february(dir.path());
        for bad in ["2024-13", "2024-2", "februari", "2024-02-01"] {
            let error = service_report_at(dir.path(), bad, ReportFormat::Text, MAR_1_2024)
                .unwrap_err()
                .to_string();
            assert!(error.contains("YYYY-MM"), "{bad}: {error}");
        }
        let error = service_report_at(dir.path(), "2030-01", ReportFormat::Text, MAR_1_2024)
            .unwrap_err()
            .to_string();
        assert!(error.contains("has not begun"), "{error}");
    }

    #[test]
    fn lines_with_other_buckets_are_not_merged() {
        let dir = tempfile::tempdir().unwrap();
        let mut record = line(FEB_28_2024, 1, 0, &[0.01], 0);
        record.latency_le_seconds[0] = 0.002;
        ops_journal::append(dir.path(), &record).unwrap();
        let error = service_report_at(dir.path(), "2024-02", ReportFormat::Text, MAR_1_2024)
            .unwrap_err()
            .to_string();
        assert!(error.contains("other latency buckets"), "{error}");
    }

    #[test]
    fn percentiles_use_nearest_rank_over_the_buckets() {
        let mut counts = [0u64; LATENCY_SLOTS];
        counts[0] = 50; // ≤ 1 ms
        counts[3] = 45; // ≤ 10 ms
        counts[LATENCY_SLOTS - 1] = 5; // > 10 s
        assert_eq!(percentile(&counts, 0.50).unwrap().label, "≤ 1 ms");
        assert_eq!(percentile(&counts, 0.95).unwrap().label, "≤ 10 ms");
        let p99 = percentile(&counts, 0.99).unwrap();
        assert_eq!((p99.le_seconds, p99.label.as_str()), (None, "> 10 s"));
        assert!(percentile(&[0; LATENCY_SLOTS], 0.5).is_none());
        assert_eq!(duration_label(0.0025), "2.5 ms");
    }
}
