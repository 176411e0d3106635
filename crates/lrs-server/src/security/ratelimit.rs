//! Rate limits and authentication lockouts, against floods, brute force and
//! enumeration (requirements 7.14, 7.44; docs/security-limits.md).
//!
//! - [`RateLimits`]: GCRA limiters (`governor`) keyed per client address
//!   (every request, [`limit_by_address`] middleware; `/health/*` and
//!   `/metrics` have their own limit) and per principal
//!   ([`RateLimits::check_credential`], right after authentication).
//! - [`AuthGuard`]: failed authentications counted per (client address, key)
//!   and per client address; past a threshold, every attempt from there is
//!   refused with 429 for a lockout period, before any secret is checked.
//!   A key attacked from many addresses is not locked (that would lock its
//!   owner out too) but raises an `auth.bruteforce` alert.
//! - [`client_of`]: the client address, the TCP peer or, behind a trusted
//!   proxy, the right-most untrusted `X-Forwarded-For` entry.
//!
//! Every refusal is counted in `lrs_rate_limited_total{limit}` and logged as
//! an alert line (`alert = "ratelimit.exceeded"`, `"auth.lockout"`,
//! `"auth.bruteforce"`), throttled to one line per limit and client a minute.
//! Every keyed table is bounded: the limiters drop idle keys on a timer
//! ([`spawn_upkeep`]), the failure book holds at most [`MAX_TRACKED`]
//! addresses. It never knows secrets, the store or credentials' contents.

use crate::error::ApiError;
use crate::request::client::ClientAddr;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use ipnet::IpNet;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most client addresses the failure book and the alert throttle track.
pub const MAX_TRACKED: usize = 100_000;

/// Most key ids tracked per client address (beyond them, only the address's
/// own count, which locks it long before).
const MAX_KEYS_PER_ADDRESS: usize = 1_000;

/// Most distinct addresses remembered per attacked key (for the alert).
const MAX_ADDRESSES_PER_KEY: usize = 1_000;

/// Longest key id kept in the failure book or a log line (real keys are 28).
const MAX_KEY_CHARS: usize = 64;

/// At most one `ratelimit.exceeded` line per limit and client this often.
const ALERT_EVERY: Duration = Duration::from_secs(60);

/// How often idle limiter keys and stale failure counts are dropped.
const UPKEEP_EVERY: Duration = Duration::from_secs(10);

/// A rate limit: `per_second` sustained, up to `burst` at once. A rate of 0
/// switches the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

impl Rate {
    pub fn quota(self) -> Option<Quota> {
        let per_second = NonZeroU32::new(self.per_second)?;
        let burst = NonZeroU32::new(self.burst.max(1))?;
        Some(Quota::per_second(per_second).allow_burst(burst))
    }
}

/// The failed-authentication limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthLimits {
    /// Failures from one address with one key id that lock that pair.
    pub failures_per_address_key: u32,
    /// Failures from one address, any keys, that lock the address.
    pub failures_per_address: u32,
    /// Failures of one existing key from all addresses together that raise
    /// `auth.bruteforce` (an alert, not a lockout).
    pub key_alert_failures: u32,
    /// Failures count within this window from the first one.
    pub window: Duration,
    /// How long a lockout lasts.
    pub lockout: Duration,
}

impl Default for AuthLimits {
    fn default() -> Self {
        Self {
            failures_per_address_key: 10,
            failures_per_address: 30,
            key_alert_failures: 50,
            window: Duration::from_secs(15 * 60),
            lockout: Duration::from_secs(15 * 60),
        }
    }
}

/// All limits of `lrs serve` (see [`LimitArgs`] for the defaults and why).
#[derive(Debug, Clone, PartialEq)]
pub struct LimitsConfig {
    pub per_address: Rate,
    pub per_credential: Rate,
    pub ops_per_address: Rate,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    pub auth: AuthLimits,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            per_address: Rate {
                per_second: 10_000,
                burst: 20_000,
            },
            per_credential: Rate {
                per_second: 5_000,
                burst: 10_000,
            },
            ops_per_address: Rate {
                per_second: 20,
                burst: 100,
            },
            trusted_proxies: Vec::new(),
            auth: AuthLimits::default(),
        }
    }
}

/// Why a request was refused and when to come back; becomes a 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The `limit` label of `lrs_rate_limited_total`.
    pub limit: &'static str,
    pub reason: &'static str,
    pub retry_after_secs: u64,
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        ApiError::TooManyRequests {
            reason: refusal.reason,
            retry_after_secs: refusal.retry_after_secs,
        }
    }
}

/// Whole seconds to wait, rounded up, at least 1 (`Retry-After`).
fn retry_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// The key a client address is limited under: IPv4 as is, IPv6 by its /64
/// (what one subscriber is usually given: per address, one client could
/// take 2^64 keys).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        v4 => v4,
    }
}

/// The client of a request: the TCP peer, or if the peer is a trusted proxy,
/// the right-most `X-Forwarded-For` entry that is not a trusted proxy
/// (entries left of it were written by the client and prove nothing). If an
/// entry does not parse, the last trusted hop before it is the client.
pub fn client_of(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| {
        let ip = ip.to_canonical();
        trusted.iter().any(|net| net.contains(&ip))
    };
    if !is_trusted(peer) {
        return peer;
    }
    // Parsed per comma-separated byte slice: a client's garbage on the left
    // must not hide the entries the proxies appended on the right.
    let hops: Vec<&[u8]> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|value| value.as_bytes().split(|b| *b == b','))
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let text = std::str::from_utf8(hop).unwrap_or("").trim();
        if text.is_empty() {
            continue;
        }
        match crate::request::client::parse_address(text) {
            Some(ip) if is_trusted(ip) => client = ip,
            Some(ip) => return ip,
            None => return client,
        }
    }
    client
}

type Limiter<K> = DefaultKeyedRateLimiter<K>;

/// The keyed request-rate limiters and the alert throttle.
pub struct RateLimits {
    per_address: Option<Limiter<IpAddr>>,
    per_credential: Option<Limiter<String>>,
    ops_per_address: Option<Limiter<IpAddr>>,
    trusted_proxies: Vec<IpNet>,
    alerts: AlertThrottle,
}

impl RateLimits {
    pub fn new(config: &LimitsConfig) -> Self {
        Self {
            per_address: config.per_address.quota().map(Limiter::keyed),
            per_credential: config.per_credential.quota().map(Limiter::keyed),
            ops_per_address: config.ops_per_address.quota().map(Limiter::keyed),
            trusted_proxies: config.trusted_proxies.clone(),
            alerts: AlertThrottle::default(),
        }
    }

    /// The client address of a request (see [`client_of`]).
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        client_of(peer, headers, &self.trusted_proxies)
    }

    /// One request from `client`, to an operations endpoint or not.
    pub fn check_address(&self, client: IpAddr, ops: bool) -> Result<(), Refusal> {
        let (limiter, limit, reason) = if ops {
            (
                &self.ops_per_address,
                "ops",
                "rate limit per client address for /health and /metrics",
            )
        } else {
            (
                &self.per_address,
                "address",
                "rate limit per client address",
            )
        };
        let Some(limiter) = limiter else {
            return Ok(());
        };
        check(limiter, &address_key(client), limit, reason).inspect_err(|refusal| {
            self.alerts
                .refused(refusal, &client.to_string(), Some(client))
        })
    }

    /// One request of an authenticated principal (its key), from `client`.
    pub fn check_credential(&self, key: &str, client: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(limiter) = &self.per_credential else {
            return Ok(());
        };
        // governor's keyed check takes `&K`; a principal key is short.
        let key = key.to_owned();
        check(limiter, &key, "credential", "rate limit per credential")
            // An authenticated principal's key: safe to log as it is.
            .inspect_err(|refusal| self.alerts.refused(refusal, &key, client))
            .map_err(ApiError::from)
    }

    /// Keys held by the limiters (address, credential, ops).
    pub fn tracked(&self) -> (usize, usize, usize) {
        (
            self.per_address.as_ref().map_or(0, Limiter::len),
            self.per_credential.as_ref().map_or(0, Limiter::len),
            self.ops_per_address.as_ref().map_or(0, Limiter::len),
        )
    }

    /// Drops keys whose state is back to fresh (their burst is whole again).
    fn upkeep(&self) {
        for limiter in [&self.per_address, &self.ops_per_address]
            .into_iter()
            .flatten()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.per_credential {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        self.alerts.flush(Instant::now());
    }
}

fn check<K: Clone + std::hash::Hash + Eq>(
    limiter: &Limiter<K>,
    key: &K,
    limit: &'static str,
    reason: &'static str,
) -> Result<(), Refusal> {
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(limiter.clock().now());
        Refusal {
            limit,
            reason,
            retry_after_secs: retry_secs(wait),
        }
    })
}

/// A client address as a log line shows it.
pub fn loggable_client(client: Option<IpAddr>) -> String {
    client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_canonical().to_string())
}

/// A key id as it may appear in a log line: as sent if it has the shape of
/// an issued key (`lrs_` and 24 hex digits), else only its length: a client
/// that swaps key and secret must not get its secret into the log.
pub fn loggable_key(key: &str) -> String {
    let issued_shape = key
        .strip_prefix("lrs_")
        .is_some_and(|rest| rest.len() == 24 && rest.bytes().all(|b| b.is_ascii_hexdigit()));
    if issued_shape {
        key.to_owned()
    } else {
        format!("(not a key id: {} characters)", key.chars().count())
    }
}

/// `ratelimit.exceeded` lines: the first refusal of a (limit, who) logs at
/// once, later ones are counted and summed up a minute later.
#[derive(Default)]
struct AlertThrottle(Mutex<HashMap<(&'static str, String), Throttled>>);

struct Throttled {
    logged_at: Instant,
    client: Option<IpAddr>,
    suppressed: u64,
}

impl AlertThrottle {
    fn refused(&self, refusal: &Refusal, who: &str, client: Option<IpAddr>) {
        crate::ops::counters::rate_limited(refusal.limit);
        let now = Instant::now();
        let mut seen = self.0.lock().expect("alert throttle");
        let full = seen.len() >= MAX_TRACKED;
        match seen.entry((refusal.limit, who.to_owned())) {
            std::collections::hash_map::Entry::Occupied(mut entry) => {
                let entry = entry.get_mut();
                if now.duration_since(entry.logged_at) < ALERT_EVERY {
                    entry.suppressed += 1;
                    return;
                }
                entry.logged_at = now;
                entry.suppressed = 0;
            }
            // Full: the metric still counts; the log waits for room.
            std::collections::hash_map::Entry::Vacant(_) if full => return,
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(Throttled {
                    logged_at: now,
                    client,
                    suppressed: 0,
                });
            }
        }
        drop(seen);
        tracing::warn!(
            alert = "ratelimit.exceeded",
            limit = refusal.limit,
            who,
            client = %loggable_client(client),
            refused = 1u64,
            retry_after_secs = refusal.retry_after_secs,
            "request refused by a rate limit"
        );
    }

    /// Logs the refusals counted since each line and forgets quiet entries.
    fn flush(&self, now: Instant) {
        let mut seen = self.0.lock().expect("alert throttle");
        seen.retain(|(limit, who), entry| {
            if now.duration_since(entry.logged_at) < ALERT_EVERY {
                return true;
            }
            if entry.suppressed > 0 {
                tracing::warn!(
                    alert = "ratelimit.exceeded",
                    limit = *limit,
                    who = who.as_str(),
                    client = %loggable_client(entry.client),
                    refused = entry.suppressed,
                    "requests refused by a rate limit in the last minute"
                );
            }
            false
        });
    }
}

/// Middleware around every route: resolves the client address (kept in the
/// request as [`ClientAddr`] for the handlers) and applies the per-address
/// limit, the operations endpoints' own one for `/health/*` and `/metrics`.
pub async fn limit_by_address(
    State(limits): State<Arc<RateLimits>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    if let Some(peer) = peer {
        let client = limits.client(peer, request.headers());
        request.extensions_mut().insert(ClientAddr(client));
        let path = request.uri().path();
        let ops = path == "/metrics" || path.starts_with("/health/");
        if let Err(refusal) = limits.check_address(client, ops) {
            return ApiError::from(refusal).into_response();
        }
    }
    next.run(request).await
}

/// Runs the upkeep of the limiters and the failure book every few seconds
/// until aborted.
pub fn spawn_upkeep(limits: Arc<RateLimits>, guard: Arc<AuthGuard>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            limits.upkeep();
            guard.sweep(Instant::now());
        }
    })
}

/// Failed authentications per client address and per (address, key id),
/// lockouts, and the per-key count behind `auth.bruteforce`.
pub struct AuthGuard {
    limits: AuthLimits,
    book: Mutex<FailureBook>,
}

#[derive(Default)]
struct FailureBook {
    addresses: HashMap<IpAddr, AddressRecord>,
    keys: HashMap<Box<str>, KeyRecord>,
    /// When the last "table full" alert was logged.
    full_alerted: Option<Instant>,
}

struct AddressRecord {
    tally: Tally,
    keys: HashMap<Box<str>, Tally>,
}

/// Failures within a window that starts at the first one, and a lockout.
#[derive(Clone, Copy)]
struct Tally {
    since: Instant,
    failures: u32,
    locked_until: Option<Instant>,
}

impl Tally {
    fn new(now: Instant) -> Self {
        Self {
            since: now,
            failures: 0,
            locked_until: None,
        }
    }

    fn locked(&self, now: Instant) -> Option<Duration> {
        self.locked_until
            .filter(|until| *until > now)
            .map(|until| until - now)
    }

    /// Counts a failure; true if it starts a lockout.
    fn fail(&mut self, now: Instant, max: u32, limits: &AuthLimits) -> bool {
        if now.duration_since(self.since) >= limits.window {
            self.since = now;
            self.failures = 0;
        }
        self.failures += 1;
        if self.failures >= max {
            self.locked_until = Some(now + limits.lockout);
            self.since = now;
            self.failures = 0;
            return true;
        }
        false
    }

    fn stale(&self, now: Instant, window: Duration) -> bool {
        self.locked(now).is_none() && now.duration_since(self.since) >= window
    }
}

struct KeyRecord {
    since: Instant,
    failures: u32,
    addresses: HashSet<IpAddr>,
    alerted: bool,
}

/// The client address a lockout is keyed on; without one (a router served
/// without connect info) all such requests share one.
fn book_address(client: Option<IpAddr>) -> IpAddr {
    client.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), address_key)
}

const LOCKED_REASON: &str = "authentication locked out after repeated failures";

impl AuthGuard {
    pub fn new(limits: AuthLimits) -> Self {
        Self {
            limits,
            book: Mutex::default(),
        }
    }

    /// Before a secret is checked: refused if `client` or (`client`, `key`)
    /// is locked out, whatever the secret.
    pub fn check(&self, client: Option<IpAddr>, key: &str) -> Result<(), Refusal> {
        self.check_at(client, key, Instant::now())
    }

    fn check_at(&self, client: Option<IpAddr>, key: &str, now: Instant) -> Result<(), Refusal> {
        let book = self.book.lock().expect("failure book");
        let Some(record) = book.addresses.get(&book_address(client)) else {
            return Ok(());
        };
        let pair = record
            .keys
            .get(truncate(key))
            .and_then(|tally| tally.locked(now));
        match record.tally.locked(now).max(pair) {
            None => Ok(()),
            Some(wait) => Err(Refusal {
                limit: "auth_lockout",
                reason: LOCKED_REASON,
                retry_after_secs: retry_secs(wait),
            }),
        }
    }

    /// A refused attempt (locked out): counted and logged (throttled by the
    /// lockout itself: one line when it starts, see [`AuthGuard::failed`]).
    pub fn refused(&self, refusal: Refusal) -> ApiError {
        crate::ops::counters::rate_limited(refusal.limit);
        refusal.into()
    }

    /// A successful authentication: the (address, key) count starts again.
    /// The address's own count does not: a client must not wash its
    /// guesses with a credential of its own.
    pub fn succeeded(&self, client: Option<IpAddr>, key: &str) {
        let mut book = self.book.lock().expect("failure book");
        if let Some(record) = book.addresses.get_mut(&book_address(client)) {
            record.keys.remove(truncate(key));
        }
    }

    /// A failed authentication; `known`: the key exists (only those are
    /// counted across addresses, so a flood of made-up keys cannot grow
    /// the table).
    pub fn failed(&self, client: Option<IpAddr>, key: &str, known: bool) {
        self.failed_at(client, key, known, Instant::now())
    }

    fn failed_at(&self, client: Option<IpAddr>, key: &str, known: bool, now: Instant) {
        let limits = self.limits;
        let address = book_address(client);
        let key = truncate(key);
        let mut book = self.book.lock().expect("failure book");
        if !book.addresses.contains_key(&address) && book.addresses.len() >= MAX_TRACKED {
            book.sweep(now, limits.window);
        }
        if !book.addresses.contains_key(&address) && book.addresses.len() >= MAX_TRACKED {
            if book
                .full_alerted
                .is_none_or(|at| now.duration_since(at) >= ALERT_EVERY)
            {
                book.full_alerted = Some(now);
                tracing::warn!(
                    alert = "auth.bruteforce",
                    tracked = MAX_TRACKED,
                    "failed authentications from more client addresses than the failure book holds: new addresses are not counted"
                );
            }
        } else {
            let record = book
                .addresses
                .entry(address)
                .or_insert_with(|| AddressRecord {
                    tally: Tally::new(now),
                    keys: HashMap::new(),
                });
            if record.keys.contains_key(key) || record.keys.len() < MAX_KEYS_PER_ADDRESS {
                let pair = record
                    .keys
                    .entry(key.into())
                    .or_insert_with(|| Tally::new(now));
                if pair.fail(now, limits.failures_per_address_key, &limits) {
                    lockout_alert("address_key", client, Some(key), &limits);
                }
            }
            if record.tally.fail(now, limits.failures_per_address, &limits) {
                lockout_alert("address", client, None, &limits);
            }
        }
        if known {
            let record = book.keys.entry(key.into()).or_insert_with(|| KeyRecord {
                since: now,
                failures: 0,
                addresses: HashSet::new(),
                alerted: false,
            });
            if now.duration_since(record.since) >= limits.window {
                *record = KeyRecord {
                    since: now,
                    failures: 0,
                    addresses: HashSet::new(),
                    alerted: false,
                };
            }
            record.failures += 1;
            if record.addresses.len() < MAX_ADDRESSES_PER_KEY {
                record.addresses.insert(address);
            }
            if record.failures >= limits.key_alert_failures && !record.alerted {
                record.alerted = true;
                crate::ops::counters::auth_bruteforce();
                tracing::warn!(
                    alert = "auth.bruteforce",
                    credential = %loggable_key(key),
                    failures = record.failures,
                    addresses = record.addresses.len(),
                    window_secs = limits.window.as_secs(),
                    "failed authentications of one credential from many addresses; the credential is not locked (its owner would be too)"
                );
            }
        }
    }

    /// Forgets counts whose window has passed and lockouts that are over.
    pub fn sweep(&self, now: Instant) {
        let window = self.limits.window;
        self.book.lock().expect("failure book").sweep(now, window);
    }

    /// Addresses and keys the book holds.
    pub fn tracked(&self) -> (usize, usize) {
        let book = self.book.lock().expect("failure book");
        (book.addresses.len(), book.keys.len())
    }
}

impl FailureBook {
    fn sweep(&mut self, now: Instant, window: Duration) {
        self.addresses.retain(|_, record| {
            record.keys.retain(|_, tally| !tally.stale(now, window));
            !record.tally.stale(now, window) || !record.keys.is_empty()
        });
        self.keys
            .retain(|_, record| now.duration_since(record.since) < window);
    }
}

fn truncate(key: &str) -> &str {
    match key.char_indices().nth(MAX_KEY_CHARS) {
        Some((end, _)) => &key[..end],
        None => key,
    }
}

fn lockout_alert(
    scope: &'static str,
    client: Option<IpAddr>,
    key: Option<&str>,
    limits: &AuthLimits,
) {
    crate::ops::counters::auth_lockout(scope);
    let failures = match scope {
        "address" => limits.failures_per_address,
        _ => limits.failures_per_address_key,
    };
    tracing::warn!(
        alert = "auth.lockout",
        scope,
        credential = key.map(loggable_key).as_deref(),
        client = %loggable_client(client),
        failures,
        window_secs = limits.window.as_secs(),
        lockout_secs = limits.lockout.as_secs(),
        "repeated failed authentications: locked out"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn nets(text: &str) -> Vec<IpNet> {
        crate::request::client::parse_allow_list(text).unwrap()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = nets("10.0.0.0/8, 127.0.0.1");
        let headers = forwarded(&["198.51.100.7, 203.0.113.9, 10.0.0.5"]);
        // Not behind a trusted proxy: the peer, whatever the header says.
        assert_eq!(
            client_of(ip("192.0.2.1"), &headers, &trusted),
            ip("192.0.2.1")
        );
        assert_eq!(client_of(ip("10.1.1.1"), &headers, &[]), ip("10.1.1.1"));
        // Behind two trusted hops: the right-most untrusted entry, not the
        // left-most one, which the client wrote itself.
        assert_eq!(
            client_of(ip("127.0.0.1"), &headers, &trusted),
            ip("203.0.113.9")
        );
        // Several header lines are one list.
        let headers = forwarded(&["198.51.100.7", "203.0.113.9:4711, [2001:db8::5]:80"]);
        assert_eq!(
            client_of(ip("10.9.9.9"), &headers, &trusted),
            ip("2001:db8::5")
        );
        // Garbage at the right end: the last trusted hop answers for it.
        let headers = forwarded(&["203.0.113.9, 10.0.0.5, nonsense"]);
        assert_eq!(
            client_of(ip("127.0.0.1"), &headers, &trusted),
            ip("127.0.0.1")
        );
        // Garbage the client wrote on the left does not hide its address.
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff\xfe, 203.0.113.9").unwrap(),
        );
        assert_eq!(
            client_of(ip("127.0.0.1"), &headers, &trusted),
            ip("203.0.113.9")
        );
        // No header, or all hops trusted.
        assert_eq!(
            client_of(ip("127.0.0.1"), &HeaderMap::new(), &trusted),
            ip("127.0.0.1")
        );
        let headers = forwarded(&["10.0.0.1, 10.0.0.2"]);
        assert_eq!(
            client_of(ip("127.0.0.1"), &headers, &trusted),
            ip("10.0.0.1")
        );
        // An IPv4-mapped peer is its IPv4 address.
        assert_eq!(
            client_of(
                ip("::ffff:127.0.0.1"),
                &forwarded(&["203.0.113.9"]),
                &trusted
            ),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        assert_eq!(
            address_key(ip("2001:db8:1:2:3:4:5:6")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            address_key(ip("2001:db8:1:2:ffff::1")),
            ip("2001:db8:1:2::")
        );
        assert_ne!(address_key(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
        assert_eq!(address_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(address_key(ip("192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn only_key_shaped_ids_reach_the_log() {
        let key = "lrs_0123456789abcdef01234567";
        assert_eq!(loggable_key(key), key);
        assert_eq!(
            loggable_key("ksdAe0YtUQSB0dMDWXrMYx1vsaBOM0pUXl5M4s1dHoo"),
            "(not a key id: 43 characters)"
        );
        assert_eq!(loggable_key("lrs_nobody"), "(not a key id: 10 characters)");
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_secs(Duration::ZERO), 1);
        assert_eq!(retry_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_secs(Duration::from_millis(1_000)), 1);
        assert_eq!(retry_secs(Duration::from_millis(1_001)), 2);
        assert_eq!(retry_secs(Duration::from_secs(900)), 900);
    }

    #[test]
    fn address_limit_refuses_past_the_burst_and_keeps_addresses_apart() {
        let config = LimitsConfig {
            per_address: Rate {
                per_second: 1,
                burst: 3,
            },
            ..LimitsConfig::default()
        };
        let limits = RateLimits::new(&config);
        let client = ip("192.0.2.1");
        for _ in 0..3 {
            limits.check_address(client, false).unwrap();
        }
        let refusal = limits.check_address(client, false).unwrap_err();
        assert_eq!(refusal.limit, "address");
        assert_eq!(refusal.retry_after_secs, 1);
        limits.check_address(ip("192.0.2.2"), false).unwrap();
        // The operations endpoints have their own limit.
        limits.check_address(client, true).unwrap();
        // Off at rate 0.
        let off = RateLimits::new(&LimitsConfig {
            per_address: Rate {
                per_second: 0,
                burst: 0,
            },
            ..LimitsConfig::default()
        });
        for _ in 0..100 {
            off.check_address(client, false).unwrap();
        }
        assert_eq!(off.tracked().0, 0);
    }

    fn short() -> AuthLimits {
        AuthLimits {
            failures_per_address_key: 3,
            failures_per_address: 5,
            key_alert_failures: 6,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(30),
        }
    }

    #[test]
    fn failures_lock_the_address_and_key_then_the_address() {
        let guard = AuthGuard::new(short());
        let t0 = Instant::now();
        let a = Some(ip("192.0.2.1"));
        for _ in 0..2 {
            guard.failed_at(a, "lrs_k1", false, t0);
            guard.check_at(a, "lrs_k1", t0).unwrap();
        }
        guard.failed_at(a, "lrs_k1", false, t0);
        let refusal = guard.check_at(a, "lrs_k1", t0).unwrap_err();
        assert_eq!(refusal.retry_after_secs, 30);
        assert_eq!(refusal.limit, "auth_lockout");
        // Another key from there is still allowed, until the address's own
        // count runs out; another address is never affected.
        guard.check_at(a, "lrs_k2", t0).unwrap();
        guard.failed_at(a, "lrs_k2", false, t0);
        guard.check_at(a, "lrs_k2", t0).unwrap();
        guard.failed_at(a, "lrs_k2", false, t0);
        assert!(guard.check_at(a, "lrs_k2", t0).is_err());
        assert!(guard.check_at(a, "lrs_k3", t0).is_err());
        guard.check_at(Some(ip("192.0.2.2")), "lrs_k1", t0).unwrap();
        // Over when the lockout is.
        let later = t0 + Duration::from_secs(31);
        guard.check_at(a, "lrs_k1", later).unwrap();
        guard.check_at(a, "lrs_k3", later).unwrap();
    }

    #[test]
    fn a_success_resets_the_pair_but_not_the_address() {
        let guard = AuthGuard::new(short());
        let t0 = Instant::now();
        let a = Some(ip("192.0.2.1"));
        for _ in 0..2 {
            guard.failed_at(a, "lrs_k1", true, t0);
        }
        guard.succeeded(a, "lrs_k1");
        for _ in 0..2 {
            guard.failed_at(a, "lrs_k1", true, t0);
        }
        guard.check_at(a, "lrs_k1", t0).unwrap();
        // 4 address failures so far; the fifth locks the address.
        guard.failed_at(a, "lrs_k1", true, t0);
        assert!(guard.check_at(a, "lrs_other", t0).is_err());
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let guard = AuthGuard::new(short());
        let t0 = Instant::now();
        let a = Some(ip("192.0.2.1"));
        for minute in 0..10u64 {
            let at = t0 + Duration::from_secs(61 * minute);
            guard.failed_at(a, "lrs_k1", false, at);
            guard.failed_at(a, "lrs_k1", false, at);
            guard.check_at(a, "lrs_k1", at).unwrap();
        }
    }

    #[test]
    fn a_key_attacked_from_many_addresses_is_not_locked_for_its_owner() {
        let guard = AuthGuard::new(short());
        let t0 = Instant::now();
        for n in 0..20u8 {
            let attacker = Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, n)));
            guard.failed_at(attacker, "lrs_k1", true, t0);
            guard.failed_at(attacker, "lrs_k1", true, t0);
        }
        guard.check_at(Some(ip("192.0.2.1")), "lrs_k1", t0).unwrap();
        let (addresses, keys) = guard.tracked();
        assert_eq!((addresses, keys), (20, 1));
        // Unknown keys are counted per address only.
        guard.failed_at(Some(ip("192.0.2.9")), "lrs_nope", false, t0);
        assert_eq!(guard.tracked(), (21, 1));
        // All of it is forgotten once the window has passed.
        guard.sweep(t0 + Duration::from_secs(61));
        assert_eq!(guard.tracked(), (0, 0));
    }

    #[test]
    fn the_failure_book_is_bounded() {
        let guard = AuthGuard::new(AuthLimits {
            failures_per_address_key: 1_000,
            failures_per_address: 1_000,
            ..short()
        });
        let t0 = Instant::now();
        let many = MAX_TRACKED as u32 + 10;
        for n in 0..many {
            let client = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
            guard.failed_at(Some(client), "lrs_k1", false, t0);
        }
        assert_eq!(guard.tracked().0, MAX_TRACKED);
        // A long key id from one address: many ids, bounded per address.
        for n in 0..(MAX_KEYS_PER_ADDRESS + 10) {
            guard.failed_at(
                Some(ip("10.0.0.1")),
                &format!("{n}{}", "x".repeat(500)),
                false,
                t0,
            );
        }
        let book = guard.book.lock().unwrap();
        let record = &book.addresses[&ip("10.0.0.1")];
        assert_eq!(record.keys.len(), MAX_KEYS_PER_ADDRESS);
        assert!(record
            .keys
            .keys()
            .all(|k| k.chars().count() <= MAX_KEY_CHARS));
    }
}
