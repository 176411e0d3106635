//! The metric names, their labels and the counters every room adds to: the
//! contract with the Grafana dashboard in `ops/grafana/` and with
//! `docs/monitoring.md` (change them in all three), and the process-wide
//! Prometheus recorder they go to. Any room may count here; nothing here
//! imports another room.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

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

pub const TREE_WRITES: &str = "lrs_store_tree_writes_total";

pub const TREE_WRITTEN_BYTES: &str = "lrs_store_tree_written_bytes_total";

pub const COMMIT_GROUPS: &str = "lrs_store_commit_groups_total";

pub const COMMIT_ENTRIES: &str = "lrs_store_commit_entries_total";

pub const COMMIT_BUSY: &str = "lrs_store_commit_busy_microseconds_total";

pub const COMMIT_SYNC: &str = "lrs_store_commit_sync_microseconds_total";

pub const FOLD_CACHE_HITS: &str = "lrs_store_fold_cache_hits_total";

pub const FOLD_CACHE_MISSES: &str = "lrs_store_fold_cache_misses_total";

pub const RESIDENT_RECORDS: &str = "lrs_store_resident_records";

pub const RESIDENT_BYTES: &str = "lrs_store_resident_bytes";

pub const AUTH_FAILURES: &str = "lrs_auth_failures_total";

pub const RATE_LIMITED: &str = "lrs_rate_limited_total";

pub const AUTH_LOCKOUTS: &str = "lrs_auth_lockouts_total";

pub const AUTH_BRUTEFORCE: &str = "lrs_auth_bruteforce_total";

pub const BACKUP_LAST_SUCCESS: &str = "lrs_backup_last_success_timestamp_seconds";

pub const BACKUP_AGE: &str = "lrs_backup_age_seconds";

pub const BUILD_INFO: &str = "lrs_build_info";

/// The route label of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

/// The rate limits that exist (`ratelimit.rs`): per client address, per
/// credential, the operations endpoints' per address, and attempts refused
/// during an authentication lockout. Each series exists from start-up at 0.
pub const RATE_LIMITS: &[&str] = &["address", "credential", "ops", "auth_lockout"];

/// What an authentication lockout locks: the `scope` label of
/// `lrs_auth_lockouts_total`.
pub const LOCKOUT_SCOPES: &[&str] = &["address_key", "address"];

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
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), &LATENCY_BUCKETS)
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        Matcher::Full(AUDIT_FLUSH_DURATION.into()),
                        &AUDIT_FLUSH_BUCKETS,
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
    describe_counter!(
        TREE_WRITES,
        "Keys written to each sled tree (the log's entries, each read model's keys or packed buckets) since the process started, by tree"
    );
    describe_counter!(
        TREE_WRITTEN_BYTES,
        Unit::Bytes,
        "Bytes of the keys and values written to each sled tree since the process started, by tree"
    );
    describe_counter!(
        COMMIT_GROUPS,
        "Group commits of the log writer since the process started, each made durable with one flush"
    );
    describe_counter!(
        COMMIT_ENTRIES,
        "Log entries (statements, documents, other events) those group commits appended"
    );
    describe_counter!(
        COMMIT_BUSY,
        Unit::Microseconds,
        "The log writer's time on group commits, from a group's checks until it is durable: its rate over 1e6 is the writer's utilisation"
    );
    describe_counter!(
        COMMIT_SYNC,
        Unit::Microseconds,
        "Of that time, waiting for the disk (the vault's and sled's syncs)"
    );
    describe_counter!(
        FOLD_CACHE_HITS,
        "Reads of the log writer's fold that its caches answered (decoded packed buckets, plain trees' values), by cache"
    );
    describe_counter!(
        FOLD_CACHE_MISSES,
        "Reads of the log writer's fold that went to sled (and then into the cache), by cache"
    );
    describe_gauge!(
        RESIDENT_RECORDS,
        "Records of each read-model tree kept in memory instead of sled, by tree"
    );
    describe_gauge!(
        RESIDENT_BYTES,
        Unit::Bytes,
        "Bytes of the keys and values of each read-model tree kept in memory, by tree"
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

pub const AUDIT_RECORDS_WRITTEN: &str = "lrs_audit_records_written_total";

pub const AUDIT_RECORDS_DROPPED: &str = "lrs_audit_records_dropped_total";

pub const AUDIT_FLUSH_DURATION: &str = "lrs_audit_flush_duration_seconds";

/// Buckets of [`AUDIT_FLUSH_DURATION`], seconds: 0.5 ms to 1 s.
pub const AUDIT_FLUSH_BUCKETS: [f64; 11] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];
