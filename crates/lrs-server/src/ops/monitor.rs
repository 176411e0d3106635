//! Monitoring for operators: the Prometheus metrics at `GET /metrics` and
//! the background task that keeps the scrape-time figures, the readiness
//! probe and the operations journal going. The names are in `counters.rs`,
//! the per-request middleware in `observe.rs`.
//!
//! `/metrics` holds no personal data (no agents, no ids, no paths beyond the
//! route templates), but it is still answered only to loopback and to the
//! networks of `--metrics-allow` ([`metrics_access`]).

use crate::error::ApiError;
use crate::ops::counters::{
    prometheus, BACKUP_AGE, BACKUP_LAST_SUCCESS, COMMIT_BUSY, COMMIT_ENTRIES, COMMIT_GROUPS,
    COMMIT_SYNC, FOLD_CACHE_HITS, FOLD_CACHE_MISSES, LOG_HEAD, LOG_SIZE, PROJECTION_LAG,
    RESIDENT_BYTES, RESIDENT_RECORDS, STATEMENTS_INGESTED, TREE_WRITES, TREE_WRITTEN_BYTES,
};
use crate::ops::health::{check, Probe};
use crate::ops::journal::{self, MinuteCounters};
use crate::request::client::parse_address;
use crate::request::routes::{Operation, RouteTable};
use axum::extract::{ConnectInfo, FromRef, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use lrs_store::Store;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The projections whose lag is reported (the store's projection names).
const PROJECTIONS: &[&str] = &["statement_index", "credentials", "documents"];

/// How long the size of `log/` is reused between scrapes.
const LOG_SIZE_TTL: Duration = Duration::from_secs(5);

/// The background task's period: readiness probe, statement count, histogram upkeep.
const TICK: Duration = Duration::from_secs(15);

/// The operations room's settings (`lrs serve` flags: `--metrics-allow`,
/// `--ready-min-free-mb`).
#[derive(Debug, Clone)]
pub struct OpsConfig {
    /// Networks besides loopback whose clients may read `/metrics`; empty:
    /// loopback only.
    pub metrics_allow: Vec<IpNet>,
    /// `/health/ready` fails below this much free space on the data
    /// directory's filesystem, bytes: sled needs room to write and compact,
    /// and a full disk fails every write.
    pub ready_min_free_bytes: u64,
}

impl Default for OpsConfig {
    fn default() -> Self {
        Self {
            metrics_allow: Vec::new(),
            ready_min_free_bytes: 512 * 1024 * 1024,
        }
    }
}

/// Per-server monitoring state: the journal's counters of the minute in
/// progress, the figures computed at scrape time, and the configuration.
pub struct Monitor {
    store: Arc<Store>,
    data_dir: PathBuf,
    allow: Vec<IpNet>,
    /// What the readiness checks look at (`health.rs`).
    pub probe: Probe,
    pub journal: MinuteCounters,
    log_size: Mutex<Option<(Instant, u64)>>,
    process: metrics_process::Collector,
}

impl Monitor {
    pub fn new(store: Arc<Store>, config: &OpsConfig) -> Self {
        let enabled = prometheus().is_some();
        let process = metrics_process::Collector::default();
        if enabled {
            process.describe();
        }
        let data_dir = store.data_dir().to_path_buf();
        Self {
            probe: Probe {
                store: store.clone(),
                data_dir: data_dir.clone(),
                min_free_bytes: config.ready_min_free_bytes,
            },
            data_dir,
            store,
            allow: config.metrics_allow.clone(),
            journal: MinuteCounters::new(journal::now_unix()),
            log_size: Mutex::new(None),
            process,
        }
    }

    /// `lrs_statements_ingested_total`: the statements the writer newly
    /// appended since start (`Store::statements_appended`); an idempotent
    /// repeat appends nothing and a conflict is refused, so neither counts.
    /// The writer counts before the head moves, so a client that has its
    /// 200 and then scrapes sees its statements counted.
    pub fn count_statements(&self) {
        metrics::counter!(STATEMENTS_INGESTED).absolute(self.store.statements_appended());
    }

    /// Disk space of `log/` (allocated blocks, as `du` counts them), reused for a few seconds.
    fn log_size(&self) -> u64 {
        let mut cached = self.log_size.lock().expect("log size lock");
        if let Some((at, size)) = *cached {
            if at.elapsed() < LOG_SIZE_TTL {
                return size;
            }
        }
        let size = disk_usage(&self.data_dir.join("log"));
        *cached = Some((Instant::now(), size));
        size
    }

    /// Sets the scrape-time gauges and renders the exposition text.
    fn render(&self) -> String {
        let Some(handle) = prometheus() else {
            return String::new();
        };
        self.count_statements();
        let head = self.store.head();
        metrics::gauge!(LOG_HEAD).set(head as f64);
        metrics::gauge!(LOG_SIZE).set(self.log_size() as f64);
        // The store folds every projection on the writer thread in the same
        // group commit as the log entries, and moves the head only after
        // that: a projection's checkpoint always equals the head the readers
        // see, so the lag is 0 by construction. lrs-store offers no public
        // reading of the checkpoints, so this is the head minus the head;
        // when projections move off the writer (followers of `Store::follow`),
        // report head minus their checkpoint here.
        for projection in PROJECTIONS {
            metrics::gauge!(PROJECTION_LAG, "projection" => *projection).set(0.0);
        }
        for tree in self.store.tree_writes() {
            metrics::counter!(TREE_WRITES, "tree" => tree.name.clone()).absolute(tree.writes);
            metrics::counter!(TREE_WRITTEN_BYTES, "tree" => tree.name).absolute(tree.bytes);
        }
        let commits = self.store.commits();
        metrics::counter!(COMMIT_GROUPS).absolute(commits.groups);
        metrics::counter!(COMMIT_ENTRIES).absolute(commits.entries);
        metrics::counter!(COMMIT_BUSY).absolute(commits.busy_micros);
        metrics::counter!(COMMIT_SYNC).absolute(commits.sync_micros);
        let cache = self.store.fold_cache();
        metrics::counter!(FOLD_CACHE_HITS, "cache" => "buckets").absolute(cache.bucket_hits);
        metrics::counter!(FOLD_CACHE_MISSES, "cache" => "buckets").absolute(cache.bucket_misses);
        metrics::counter!(FOLD_CACHE_HITS, "cache" => "values").absolute(cache.value_hits);
        metrics::counter!(FOLD_CACHE_MISSES, "cache" => "values").absolute(cache.value_misses);
        for tree in self.store.resident_sizes() {
            let bytes = tree.key_bytes + tree.value_bytes;
            metrics::gauge!(RESIDENT_RECORDS, "tree" => tree.name.clone()).set(tree.entries as f64);
            metrics::gauge!(RESIDENT_BYTES, "tree" => tree.name).set(bytes as f64);
        }
        self.process.collect();
        handle.run_upkeep();
        let mut text = handle.render();
        text.push_str(&backup_gauges(&self.data_dir, journal::now_unix()));
        text
    }

    /// The background task: every 15 s (on the wall clock's quarter
    /// minutes) it probes readiness and drains the
    /// histograms; at each minute boundary it first appends the finished
    /// minute to the journal. [`Background::finish`] writes the last,
    /// partial minute.
    pub fn spawn_background(self: &Arc<Self>) -> Background {
        let stop = Arc::new(tokio::sync::Notify::new());
        let monitor = self.clone();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            loop {
                let wait = until_next_tick(std::time::SystemTime::now());
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stopped.notified() => break,
                }
                let now = journal::now_unix();
                if journal::minute_of(now) != monitor.journal.current_minute() {
                    monitor.write_minute(now).await;
                }
                let ready = check(&monitor.probe).await.is_ready();
                monitor.journal.record_readiness(ready);
                if let Some(handle) = prometheus() {
                    handle.run_upkeep();
                }
            }
            monitor.write_minute(journal::now_unix()).await;
        });
        Background { stop, task }
    }

    async fn write_minute(&self, now: i64) {
        let record = self.journal.take(now);
        let dir = self.data_dir.clone();
        let written = tokio::task::spawn_blocking(move || journal::append(&dir, &record)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "operations journal: cannot append"),
            Err(error) => tracing::error!(%error, "operations journal: writer task failed"),
        }
    }
}

/// The running background task of a [`Monitor`].
pub struct Background {
    stop: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Background {
    /// Stops the task after it has written the minute in progress.
    pub async fn finish(self) {
        self.stop.notify_one();
        let _ = self.task.await;
    }
}

fn until_next_tick(now: std::time::SystemTime) -> Duration {
    let since_epoch = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let period = TICK.as_millis() as u64;
    let into = since_epoch.as_millis() as u64 % period;
    Duration::from_millis(period - into)
}

/// Bytes allocated to the files under `dir` (`st_blocks` × 512).
fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => disk_usage(&entry.path()),
            Ok(meta) => meta.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// The backup gauges, read from `<data dir>/ops/last-backup.json` (written
/// by `lrs backup`). No backup recorded (or an unreadable record): no
/// series at all, so alert on `absent(lrs_backup_last_success_timestamp_seconds)`
/// as well as on the age. Rendered here rather than through the recorder so
/// that a series disappears with its file instead of keeping its last value.
fn backup_gauges(data_dir: &Path, now_unix: i64) -> String {
    let path = data_dir.join(lrs_store::backup::LAST_BACKUP_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return String::new();
    };
    let Some(finished) = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["finished_at_unix"].as_i64())
    else {
        tracing::warn!(path = %path.display(), "last-backup record unreadable: no backup gauges");
        return String::new();
    };
    format!(
        "# HELP {BACKUP_LAST_SUCCESS} When the last successful backup finished, Unix seconds\n\
         # TYPE {BACKUP_LAST_SUCCESS} gauge\n\
         {BACKUP_LAST_SUCCESS} {finished}\n\
         # HELP {BACKUP_AGE} Seconds since the last successful backup finished\n\
         # TYPE {BACKUP_AGE} gauge\n\
         {BACKUP_AGE} {}\n",
        (now_unix - finished).max(0)
    )
}

/// `/metrics` and `/health/*`: no credential, outside the xAPI layers.
pub fn routes<S>() -> RouteTable<S>
where
    Arc<Monitor>: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    const TAG: &str = "operations";
    RouteTable::new()
        .get(
            "/metrics",
            metrics_endpoint,
            Operation::new(
                TAG,
                "Prometheus metrics, to loopback and the allowed networks only",
            )
            .public()
            .answers_as(200, "text/plain", "The Prometheus text exposition"),
        )
        .get(
            "/health/live",
            live,
            Operation::new(TAG, "Liveness")
                .public()
                .answers(200, "`{\"status\": \"ok\"}`"),
        )
        .get(
            "/health/ready",
            ready,
            Operation::new(TAG, "Readiness, with every check")
                .public()
                .answers(200, "`{\"status\": \"ready\", \"checks\"}`")
                .answers(
                    503,
                    "`{\"status\": \"not_ready\", \"failing\", \"checks\"}`",
                ),
        )
}

/// `GET /metrics`: the Prometheus text exposition, to loopback and the
/// allowed networks only; anyone else gets a JSON 403.
pub async fn metrics_endpoint(State(monitor): State<Arc<Monitor>>, request: Request) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    if let Err(refusal) = metrics_access(peer, request.headers(), &monitor.allow) {
        return forbidden(&refusal);
    }
    match tokio::task::spawn_blocking(move || monitor.render()).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )],
            text,
        )
            .into_response(),
        Err(error) => ApiError::internal(error).into_response(),
    }
}

/// A JSON 403 in the shape of every error body (`error.rs`), whose
/// `Forbidden` speaks of credential scopes, which this is not about.
fn forbidden(message: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        axum::Json(serde_json::json!({"error": {
            "status": 403, "code": "forbidden", "message": message
        }})),
    )
        .into_response()
}

/// `GET /health/live`.
pub async fn live() -> Response {
    no_store((
        StatusCode::OK,
        axum::Json(serde_json::json!({"status": "ok"})),
    ))
}

/// `GET /health/ready`; every answer also counts in the operations journal.
pub async fn ready(State(monitor): State<Arc<Monitor>>) -> Response {
    let readiness = check(&monitor.probe).await;
    let ready = readiness.is_ready();
    monitor.journal.record_readiness(ready);
    if ready {
        no_store((
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ready", "checks": readiness.checks})),
        ))
    } else {
        no_store((
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "status": "not_ready",
                "failing": readiness.failing(),
                "checks": readiness.checks,
            })),
        ))
    }
}

fn no_store(response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Whether a client may read `/metrics`: its address must be loopback or in
/// `allow`; and if the request names an original client (`X-Forwarded-For`,
/// `X-Real-IP`, `Forwarded`: it came through a proxy, perhaps one on this
/// host, which would make every client look like loopback), that client
/// must be allowed too. Without a known peer address (the router served
/// without connect info) nobody is.
pub fn metrics_access(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    allow: &[IpNet],
) -> Result<(), String> {
    let allowed = |ip: IpAddr| {
        let ip = ip.to_canonical();
        ip.is_loopback() || allow.iter().any(|net| net.contains(&ip))
    };
    let refuse = |ip: &dyn std::fmt::Display| {
        format!(
            "/metrics answers only loopback and the networks in LRS_METRICS_ALLOW \
             (--metrics-allow); {ip} is not among them"
        )
    };
    let peer = peer.ok_or("/metrics: the client's address is unknown")?;
    if !allowed(peer) {
        return Err(refuse(&peer));
    }
    for forwarded in forwarded_clients(headers) {
        match forwarded {
            Some(ip) if allowed(ip) => {}
            Some(ip) => return Err(refuse(&format!("{ip} (forwarded by a proxy)"))),
            None => {
                return Err(
                    "/metrics: the request came through a proxy that names its client in a form not understood"
                        .into(),
                )
            }
        }
    }
    Ok(())
}

/// The original clients a proxy named: the last `X-Forwarded-For` entry
/// (the one the nearest proxy appended), `X-Real-IP`, and the last
/// `Forwarded` element's `for=`. `None` for a value that does not parse.
fn forwarded_clients(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let mut clients = Vec::new();
    let text = |value: &HeaderValue| value.to_str().ok().map(str::to_owned);
    for value in headers.get_all("x-forwarded-for") {
        let last = text(value).and_then(|v| v.rsplit(',').next().map(|s| s.trim().to_owned()));
        clients.push(last.and_then(|s| parse_address(&s)));
    }
    for value in headers.get_all("x-real-ip") {
        clients.push(text(value).and_then(|s| parse_address(s.trim())));
    }
    for value in headers.get_all(header::FORWARDED) {
        let last_for = text(value).and_then(|v| {
            let element = v.rsplit(',').next()?.to_owned();
            element.split(';').find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                key.eq_ignore_ascii_case("for")
                    .then(|| value.trim().trim_matches('"').to_owned())
            })
        });
        clients.push(last_for.and_then(|s| parse_address(&s)));
    }
    clients
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(text: &str) -> Vec<IpNet> {
        crate::request::client::parse_allow_list(text).unwrap()
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn loopback_is_always_allowed_and_others_only_when_listed() {
        let none = HeaderMap::new();
        assert!(metrics_access(ip("127.0.0.1"), &none, &[]).is_ok());
        assert!(metrics_access(ip("127.8.9.10"), &none, &[]).is_ok());
        assert!(metrics_access(ip("::1"), &none, &[]).is_ok());
        assert!(metrics_access(ip("::ffff:127.0.0.1"), &none, &[]).is_ok());
        let refused = metrics_access(ip("172.18.0.5"), &none, &[]).unwrap_err();
        assert!(refused.contains("172.18.0.5"), "{refused}");
        let allow = nets("172.16.0.0/12, 10.1.2.3");
        assert!(metrics_access(ip("172.18.0.5"), &none, &allow).is_ok());
        assert!(metrics_access(ip("::ffff:172.18.0.5"), &none, &allow).is_ok());
        assert!(metrics_access(ip("10.1.2.3"), &none, &allow).is_ok());
        assert!(metrics_access(ip("10.1.2.4"), &none, &allow).is_err());
        assert!(metrics_access(ip("192.168.1.1"), &none, &allow).is_err());
        assert!(metrics_access(None, &none, &allow).is_err());
    }

    #[test]
    fn a_proxy_on_loopback_does_not_open_metrics_to_its_clients() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9, 10.0.0.7".parse().unwrap());
        assert!(metrics_access(ip("127.0.0.1"), &headers, &[]).is_err());
        assert!(metrics_access(ip("127.0.0.1"), &headers, &nets("10.0.0.0/8")).is_ok());
        let mut headers = HeaderMap::new();
        headers.insert(
            header::FORWARDED,
            "for=192.0.2.60;proto=http, for=\"[2001:db8::1]:4711\""
                .parse()
                .unwrap(),
        );
        assert!(metrics_access(ip("::1"), &headers, &nets("192.0.2.0/24")).is_err());
        assert!(metrics_access(ip("::1"), &headers, &nets("2001:db8::/32")).is_ok());
        let mut headers = HeaderMap::new();
        headers.insert("x-real-ip", "unknown".parse().unwrap());
        assert!(metrics_access(ip("127.0.0.1"), &headers, &[]).is_err());
    }

    #[test]
    fn backup_gauges_come_from_the_last_backup_record_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(backup_gauges(dir.path(), 1_000), "");
        std::fs::create_dir_all(dir.path().join("ops")).unwrap();
        std::fs::write(
            dir.path().join("ops/last-backup.json"),
            r#"{"finished_at_unix": 900, "head": 12, "to": "/backup/lrs"}"#,
        )
        .unwrap();
        let text = backup_gauges(dir.path(), 1_000);
        assert!(
            text.contains("\nlrs_backup_last_success_timestamp_seconds 900\n"),
            "{text}"
        );
        assert!(text.contains("\nlrs_backup_age_seconds 100\n"), "{text}");
        assert!(
            text.contains("# TYPE lrs_backup_age_seconds gauge"),
            "{text}"
        );
        std::fs::write(dir.path().join("ops/last-backup.json"), "{").unwrap();
        assert_eq!(backup_gauges(dir.path(), 1_000), "");
    }

    #[test]
    fn ticks_fall_on_quarter_minutes() {
        let at = |secs: u64, millis: u64| {
            std::time::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
        };
        assert_eq!(
            until_next_tick(at(1_700_000_040, 0)),
            Duration::from_secs(15)
        );
        assert_eq!(
            until_next_tick(at(1_700_000_041, 500)),
            Duration::from_millis(13_500)
        );
        assert_eq!(
            until_next_tick(at(1_700_000_054, 999)),
            Duration::from_millis(1)
        );
    }
}
