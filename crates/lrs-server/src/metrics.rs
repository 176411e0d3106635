//! Monitoring for operators: the Prometheus metrics at `GET /metrics`, the
//! per-request middleware (metrics, access log, request id, the operations
//! journal) and the background task that keeps the scrape-time figures,
//! the readiness probe and the journal going.
//!
//! The metric names and labels are a contract with the Grafana dashboard in
//! `ops/grafana/` and with `docs/monitoring.md`; change them in all three.
//!
//! `/metrics` holds no personal data (no agents, no ids, no paths beyond the
//! route templates), but it is still answered only to loopback and to the
//! networks of `--metrics-allow` ([`metrics_access`]).

use crate::app::AppState;
use crate::ops_journal::{self, MinuteCounters};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use lrs_store::Store;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tracing::Instrument;

/// Upper bounds of the request-latency histogram, seconds: 1 ms to 10 s.
/// The operations journal uses the same ones, so its minutes merge exactly.
pub const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub const HTTP_REQUESTS: &str = "lrs_http_requests_total";
pub const HTTP_DURATION: &str = "lrs_http_request_duration_seconds";
pub const STATEMENTS_INGESTED: &str = "lrs_statements_ingested_total";
pub const LOG_HEAD: &str = "lrs_log_head_position";
pub const LOG_SIZE: &str = "lrs_log_size_bytes";
pub const PROJECTION_LAG: &str = "lrs_projection_lag_entries";
pub const AUTH_FAILURES: &str = "lrs_auth_failures_total";
pub const RATE_LIMITED: &str = "lrs_rate_limited_total";
pub const AUTH_LOCKOUTS: &str = "lrs_auth_lockouts_total";
pub const AUTH_BRUTEFORCE: &str = "lrs_auth_bruteforce_total";
pub const BACKUP_LAST_SUCCESS: &str = "lrs_backup_last_success_timestamp_seconds";
pub const BACKUP_AGE: &str = "lrs_backup_age_seconds";
pub const BUILD_INFO: &str = "lrs_build_info";

/// The route label of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

/// The projections whose lag is reported (the store's projection names).
const PROJECTIONS: &[&str] = &["statement_index", "credentials", "documents"];

/// The rate limits that exist (`ratelimit.rs`): per client address, per
/// credential, the operations endpoints' per address, and attempts refused
/// during an authentication lockout. Each series exists from start-up at 0.
pub const RATE_LIMITS: &[&str] = &["address", "credential", "ops", "auth_lockout"];

/// What an authentication lockout locks: the `scope` label of
/// `lrs_auth_lockouts_total`.
pub const LOCKOUT_SCOPES: &[&str] = &["address_key", "address"];

/// How long the size of `log/` is reused between scrapes.
const LOG_SIZE_TTL: Duration = Duration::from_secs(5);

/// The background task's period: readiness probe, statement count, histogram upkeep.
const TICK: Duration = Duration::from_secs(15);

/// Why an authentication failed: the `reason` label of `lrs_auth_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization` header.
    Missing,
    /// Not HTTP Basic, not base64, not UTF-8, or no `key:secret`.
    Malformed,
    /// No credential has that key.
    UnknownKey,
    /// The key exists, the secret is wrong.
    BadSecret,
    /// The credential has expired.
    Expired,
    /// The credential was revoked.
    Revoked,
    /// The credential may not be used from the client's address.
    AddressNotAllowed,
    /// A bearer token that does not verify (signature, issuer, audience,
    /// expiry, algorithm, unknown key).
    InvalidToken,
}

impl AuthFailure {
    pub const ALL: [AuthFailure; 8] = [
        AuthFailure::Missing,
        AuthFailure::Malformed,
        AuthFailure::UnknownKey,
        AuthFailure::BadSecret,
        AuthFailure::Expired,
        AuthFailure::Revoked,
        AuthFailure::AddressNotAllowed,
        AuthFailure::InvalidToken,
    ];

    pub fn label(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Malformed => "malformed",
            AuthFailure::UnknownKey => "unknown_key",
            AuthFailure::BadSecret => "bad_secret",
            AuthFailure::Expired => "expired",
            AuthFailure::Revoked => "revoked",
            AuthFailure::AddressNotAllowed => "address_not_allowed",
            AuthFailure::InvalidToken => "invalid_token",
        }
    }
}

/// Counts a failed authentication.
pub fn auth_failure(reason: AuthFailure) {
    metrics::counter!(AUTH_FAILURES, "reason" => reason.label()).increment(1);
}

/// Counts a request refused by a rate limit (`limit`: which one, e.g.
/// `"credential"`; keep the set small and list it in [`RATE_LIMITS`]).
pub fn rate_limited(limit: &'static str) {
    metrics::counter!(RATE_LIMITED, "limit" => limit).increment(1);
}

/// Counts a lockout that starts (`scope`: one of [`LOCKOUT_SCOPES`]).
pub fn auth_lockout(scope: &'static str) {
    metrics::counter!(AUTH_LOCKOUTS, "scope" => scope).increment(1);
}

/// Counts an `auth.bruteforce` alert: a credential failed from many addresses.
pub fn auth_bruteforce() {
    metrics::counter!(AUTH_BRUTEFORCE).increment(1);
}

/// The process-wide Prometheus recorder, installed on first use. `None` if
/// another `metrics` recorder was installed first (then nothing is exported).
fn prometheus() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), &LATENCY_BUCKETS)
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        Matcher::Full(crate::audit::FLUSH_DURATION.into()),
                        &crate::audit::FLUSH_BUCKETS,
                    )
                })
                .expect("the buckets are not empty");
            match builder.install_recorder() {
                Ok(handle) => {
                    describe();
                    Some(handle)
                }
                Err(error) => {
                    tracing::warn!(%error, "another metrics recorder is installed: /metrics stays empty");
                    None
                }
            }
        })
        .as_ref()
}

/// HELP texts, and the series that must exist at 0 from the start (so a
/// dashboard's `rate()` and an alert see 0, not "no data").
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route template, method and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time from request to response headers, by route template and method"
    );
    describe_counter!(
        STATEMENTS_INGESTED,
        "Statements newly stored in the log since the process started (idempotent repeats not counted)"
    );
    describe_gauge!(LOG_HEAD, "Position of the last entry of the event log");
    describe_gauge!(
        LOG_SIZE,
        Unit::Bytes,
        "Disk space used by the data directory's log/ (sled), computed at scrape time"
    );
    describe_gauge!(
        PROJECTION_LAG,
        "Log entries not yet folded into the projection (log head minus its checkpoint)"
    );
    describe_counter!(AUTH_FAILURES, "Failed authentications, by reason");
    describe_counter!(RATE_LIMITED, "Requests refused by a rate limit, by limit");
    describe_counter!(
        AUTH_LOCKOUTS,
        "Authentication lockouts started, by scope (a client address and key id, or a client address)"
    );
    describe_counter!(
        AUTH_BRUTEFORCE,
        "Credentials whose failed authentications from all addresses crossed the alert threshold"
    );
    describe_gauge!(BUILD_INFO, "Always 1; the label says the version");
    metrics::counter!(STATEMENTS_INGESTED).increment(0);
    for reason in AuthFailure::ALL {
        metrics::counter!(AUTH_FAILURES, "reason" => reason.label()).increment(0);
    }
    for limit in RATE_LIMITS {
        metrics::counter!(RATE_LIMITED, "limit" => *limit).increment(0);
    }
    for scope in LOCKOUT_SCOPES {
        metrics::counter!(AUTH_LOCKOUTS, "scope" => *scope).increment(0);
    }
    metrics::counter!(AUTH_BRUTEFORCE).increment(0);
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// Per-server monitoring state: the journal's counters of the minute in
/// progress, the figures computed at scrape time, and the configuration.
pub struct Monitor {
    store: Arc<Store>,
    data_dir: PathBuf,
    allow: Vec<IpNet>,
    min_free_bytes: u64,
    pub journal: MinuteCounters,
    log_size: Mutex<Option<(Instant, u64)>>,
    process: metrics_process::Collector,
}

impl Monitor {
    pub fn new(store: Arc<Store>, config: &crate::ServeConfig) -> Self {
        let enabled = prometheus().is_some();
        let process = metrics_process::Collector::default();
        if enabled {
            process.describe();
        }
        Self {
            data_dir: store.data_dir().to_path_buf(),
            store,
            allow: config.metrics_allow.clone(),
            min_free_bytes: config.ready_min_free_bytes,
            journal: MinuteCounters::new(ops_journal::now_unix()),
            log_size: Mutex::new(None),
            process,
        }
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn min_free_bytes(&self) -> u64 {
        self.min_free_bytes
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
        self.process.collect();
        handle.run_upkeep();
        let mut text = handle.render();
        text.push_str(&backup_gauges(&self.data_dir, ops_journal::now_unix()));
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
                let now = ops_journal::now_unix();
                if ops_journal::minute_of(now) != monitor.journal.current_minute() {
                    monitor.write_minute(now).await;
                }
                let ready = crate::health::check(&monitor).await.is_ready();
                monitor.journal.record_readiness(ready);
                if let Some(handle) = prometheus() {
                    handle.run_upkeep();
                }
            }
            monitor.write_minute(ops_journal::now_unix()).await;
        });
        Background { stop, task }
    }

    async fn write_minute(&self, now: i64) {
        let record = self.journal.take(now);
        let dir = self.data_dir.clone();
        let written = tokio::task::spawn_blocking(move || ops_journal::append(&dir, &record)).await;
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

/// `GET /metrics`: the Prometheus text exposition, to loopback and the
/// allowed networks only; anyone else gets a JSON 403.
pub async fn metrics_endpoint(State(state): State<AppState>, request: Request) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    if let Err(refusal) = metrics_access(peer, request.headers(), &state.monitor.allow) {
        return forbidden(&refusal);
    }
    let monitor = state.monitor.clone();
    match tokio::task::spawn_blocking(move || monitor.render()).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )],
            text,
        )
            .into_response(),
        Err(error) => crate::error::ApiError::internal(error).into_response(),
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

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]:5678`.
pub(crate) fn parse_address(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(socket) = text.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    text.strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(ip, _)| ip.parse().ok())
}

/// One entry of `--metrics-allow`: a CIDR (`10.0.0.0/8`, `fd00::/8`) or a
/// single address.
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{text:?} is neither a CIDR (10.0.0.0/8) nor an IP address"))
}

/// A comma-separated allow-list, as in `LRS_METRICS_ALLOW`.
pub fn parse_allow_list(text: &str) -> Result<Vec<IpNet>, String> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(parse_cidr)
        .collect()
}

/// The monitoring options of `lrs serve`; flatten into its arguments and
/// [`MonitoringArgs::apply`] them to the [`crate::ServeConfig`].
#[derive(clap::Args, Debug, Clone)]
pub struct MonitoringArgs {
    /// Networks besides loopback whose clients may read /metrics: CIDRs or
    /// addresses, comma-separated (e.g. 172.16.0.0/12,10.1.2.3).
    #[arg(long = "metrics-allow", env = "LRS_METRICS_ALLOW", value_delimiter = ',', value_parser = parse_cidr)]
    pub metrics_allow: Vec<IpNet>,
    /// /health/ready fails when the data directory's filesystem has less free space than this, MiB.
    #[arg(long, env = "LRS_READY_MIN_FREE_MB", default_value_t = 512)]
    pub ready_min_free_mb: u64,
}

impl MonitoringArgs {
    pub fn apply(self, mut config: crate::ServeConfig) -> crate::ServeConfig {
        config.metrics_allow = self.metrics_allow;
        config.ready_min_free_bytes = self.ready_min_free_mb.saturating_mul(1024 * 1024);
        config
    }
}

/// Where the inner route layer leaves the matched route template for the
/// outer middleware, which runs before routing and so cannot see it.
#[derive(Clone, Default)]
struct RouteSlot(Arc<OnceLock<String>>);

/// Route layer (runs only for matched routes): records the route template.
pub async fn record_route(request: Request, next: Next) -> Response {
    if let (Some(path), Some(slot)) = (
        request.extensions().get::<MatchedPath>(),
        request.extensions().get::<RouteSlot>(),
    ) {
        let _ = slot.0.set(path.as_str().to_owned());
    }
    next.run(request).await
}

/// The 405 answer, which also records the route template: route layers do
/// not run for a method the route lacks, but the path did match a route.
pub async fn method_not_allowed(request: Request) -> Response {
    if let (Some(path), Some(slot)) = (
        request.extensions().get::<MatchedPath>(),
        request.extensions().get::<RouteSlot>(),
    ) {
        let _ = slot.0.set(path.as_str().to_owned());
    }
    crate::error::ApiError::MethodNotAllowed.into_response()
}

/// The outermost middleware: request id, the request's tracing span, and
/// once answered the metrics, the journal and one access-log event. It logs
/// the method, the route template, the status, the latency and the request
/// id; never headers (Authorization), bodies or query strings (agents in a
/// query are personal data), nor the raw path.
pub async fn observe(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let request_id = request_id_of(request.headers());
    let slot = RouteSlot::default();
    request.extensions_mut().insert(slot.clone());
    request
        .extensions_mut()
        .insert(RequestId(request_id.clone()));
    let span = tracing::info_span!(
        target: "lrs_server::access",
        "http_request",
        otel.name = tracing::field::Empty,
        otel.kind = "server",
        http.request.method = method,
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        request_id = %request_id,
    );
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let route = slot.0.get().map_or(UNMATCHED, String::as_str);
    let status = response.status().as_u16();
    metrics::counter!(
        HTTP_REQUESTS,
        "route" => route.to_owned(),
        "method" => method,
        "status" => status.to_string(),
    )
    .increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => route.to_owned(), "method" => method)
        .record(elapsed.as_secs_f64());
    state.monitor.journal.record_request(status, elapsed);
    let latency_ms = (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0;
    span.record("otel.name", format!("{method} {route}").as_str());
    span.record("http.route", route);
    span.record("http.response.status_code", status);
    tracing::info!(
        target: "lrs_server::access",
        method,
        route,
        status,
        latency_ms,
        request_id = %request_id,
        "request"
    );
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

pub const REQUEST_ID: &str = "x-request-id";

/// The request's id (the one [`REQUEST_ID`] answers with), in the request's
/// extensions for inner middleware (the audit trail).
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// The client's `X-Request-Id` if it is a sane token (1–128 characters of
/// letters, digits and `-_.:`), else a new UUID: an id is echoed into logs
/// and headers, so nothing else from the client is.
fn request_id_of(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            (1..=128).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().hyphenated().to_string())
}

/// The method as a label: the standard ones, else `other` (a client must not
/// be able to mint label values).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(text: &str) -> Vec<IpNet> {
        parse_allow_list(text).unwrap()
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
    fn allow_lists_parse_cidrs_and_addresses_and_reject_garbage() {
        assert_eq!(
            nets("10.0.0.0/8,::1, 192.168.1.7/24"),
            vec![
                "10.0.0.0/8".parse::<IpNet>().unwrap(),
                "::1/128".parse().unwrap(),
                "192.168.1.0/24".parse().unwrap()
            ]
        );
        assert!(nets("").is_empty());
        assert!(parse_allow_list("10.0.0.0/33").is_err());
        assert!(parse_allow_list("intranet").is_err());
    }

    #[test]
    fn monitoring_flags_and_environment_reach_the_config() {
        use clap::Parser;
        #[derive(Parser)]
        struct Serve {
            #[command(flatten)]
            monitoring: MonitoringArgs,
        }
        let args = Serve::try_parse_from([
            "serve",
            "--metrics-allow",
            "10.0.0.0/8,172.20.0.0/16",
            "--ready-min-free-mb",
            "2",
        ])
        .unwrap();
        let config = args.monitoring.apply(crate::ServeConfig::new(
            "/tmp/x".into(),
            "127.0.0.1:1".parse().unwrap(),
        ));
        assert_eq!(config.metrics_allow.len(), 2);
        assert_eq!(config.ready_min_free_bytes, 2 * 1024 * 1024);
        assert!(Serve::try_parse_from(["serve", "--metrics-allow", "everyone"]).is_err());
    }

    #[test]
    fn request_ids_are_echoed_only_when_sane() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, "abc-123_x.y:z".parse().unwrap());
        assert_eq!(request_id_of(&headers), "abc-123_x.y:z");
        headers.insert(REQUEST_ID, "has space".parse().unwrap());
        let generated = request_id_of(&headers);
        assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
        headers.insert(REQUEST_ID, "x".repeat(129).parse().unwrap());
        assert_ne!(request_id_of(&headers).len(), 129);
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

    /// The whole router in process, with a real store: the peer address is
    /// what `into_make_service_with_connect_info` would insert.
    mod served {
        use super::*;
        use axum::body::Body;
        use lrs_store::{MasterKey, StoreConfig};
        use tower::ServiceExt;

        async fn call(
            app: &axum::Router,
            method: &str,
            uri: &str,
            peer: &str,
        ) -> (StatusCode, HeaderMap, String) {
            let mut request = Request::builder()
                .method(method)
                .uri(uri)
                .header(REQUEST_ID, "test-rid-1")
                .body(Body::empty())
                .unwrap();
            let peer: SocketAddr = peer.parse().unwrap();
            request.extensions_mut().insert(ConnectInfo(peer));
            let response = app.clone().oneshot(request).await.unwrap();
            let (parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            (
                parts.status,
                parts.headers,
                String::from_utf8_lossy(&bytes).into_owned(),
            )
        }

        fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
            text.lines()
                .filter(|line| {
                    line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
                })
                .find(|line| labels.iter().all(|label| line.contains(label)))
                .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        }

        #[tokio::test]
        async fn routes_are_labelled_by_template_and_metrics_are_guarded() {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(StoreConfig::new(dir.path(), MasterKey([3; 32]))).unwrap();
            let mut config = crate::ServeConfig::new(
                dir.path().to_path_buf(),
                "127.0.0.1:8080".parse().unwrap(),
            );
            config.metrics_allow = parse_allow_list("10.9.0.0/16").unwrap();
            let app = crate::router(AppState::new(store.clone(), config));

            let (status, headers, _) = call(
                &app,
                "GET",
                "/xapi/statements?agent=zz-query-marker",
                "127.0.0.1:5000",
            )
            .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert_eq!(headers[REQUEST_ID], "test-rid-1");
            let (status, _, _) = call(&app, "GET", "/no/such/path/42", "127.0.0.1:5000").await;
            assert_eq!(status, StatusCode::NOT_FOUND);
            let (status, _, _) = call(&app, "DELETE", "/xapi/about", "127.0.0.1:5000").await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
            let (status, _, body) = call(&app, "GET", "/health/live", "192.0.2.1:5000").await;
            assert_eq!(
                (status, body.as_str()),
                (StatusCode::OK, r#"{"status":"ok"}"#)
            );

            let (status, _, body) = call(&app, "GET", "/metrics", "192.0.2.1:5000").await;
            assert_eq!(status, StatusCode::FORBIDDEN);
            let refusal: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(refusal["error"]["code"], "forbidden");
            assert!(refusal["error"]["message"]
                .as_str()
                .unwrap()
                .contains("192.0.2.1"));

            let (status, headers, text) = call(&app, "GET", "/metrics", "10.9.3.4:5000").await;
            assert_eq!(status, StatusCode::OK);
            assert!(headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/plain"));
            let unauthorized = [
                r#"route="/xapi/statements""#,
                r#"method="GET""#,
                r#"status="401""#,
            ];
            assert!(
                sample(&text, HTTP_REQUESTS, &unauthorized).unwrap() >= 1.0,
                "{text}"
            );
            let unmatched = [r#"route="unmatched""#, r#"status="404""#];
            assert!(
                sample(&text, HTTP_REQUESTS, &unmatched).unwrap() >= 1.0,
                "{text}"
            );
            assert!(
                !text.contains("/no/such/path"),
                "raw paths never become labels"
            );
            assert!(
                !text.contains("zz-query-marker"),
                "query strings never become labels"
            );
            let not_allowed = [
                r#"route="/xapi/about""#,
                r#"method="DELETE""#,
                r#"status="405""#,
            ];
            assert!(
                sample(&text, HTTP_REQUESTS, &not_allowed).unwrap() >= 1.0,
                "{text}"
            );
            let live = [r#"route="/health/live""#, r#"status="200""#];
            assert!(
                sample(&text, HTTP_REQUESTS, &live).unwrap() >= 1.0,
                "{text}"
            );
            let forbidden = [r#"route="/metrics""#, r#"status="403""#];
            assert!(
                sample(&text, HTTP_REQUESTS, &forbidden).unwrap() >= 1.0,
                "{text}"
            );
            let bucket = [r#"route="/xapi/statements""#, r#"le="10""#];
            assert!(
                sample(&text, &format!("{HTTP_DURATION}_bucket"), &bucket).unwrap() >= 1.0,
                "{text}"
            );
            assert!(sample(&text, AUTH_FAILURES, &[r#"reason="missing""#]).unwrap() >= 1.0);
            assert!(sample(&text, AUTH_FAILURES, &[r#"reason="expired""#]).is_some());
            assert!(sample(&text, RATE_LIMITED, &[r#"limit="credential""#]).is_some());
            assert_eq!(sample(&text, LOG_HEAD, &[]), Some(store.head() as f64));
            assert!(sample(&text, LOG_SIZE, &[]).unwrap() > 0.0);
            let lag = [r#"projection="statement_index""#];
            assert_eq!(sample(&text, PROJECTION_LAG, &lag), Some(0.0));
            assert_eq!(sample(&text, BUILD_INFO, &[r#"version=""#]), Some(1.0));
            assert!(sample(&text, "process_resident_memory_bytes", &[]).unwrap() > 0.0);
            assert!(sample(&text, "process_cpu_seconds_total", &[]).is_some());
            assert!(
                sample(&text, BACKUP_AGE, &[]).is_none(),
                "no backup recorded yet"
            );
            store.close().await.unwrap();
        }
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
