//! The audit trail's HTTP side: the middleware that writes one record per
//! request on the audited routes (authenticated or not), [`record_admin`]
//! for administrative actions, `GET /admin/audit` to read the trail, the
//! trail's metrics and the `lrs audit` commands. The trail itself (files,
//! hash chain, batching) is `lrs_store::audit`.
//!
//! A record holds identifiers only: the principal's key, the client's
//! address, the route template, statement/activity/document ids and the
//! status. Never an agent, a name, a mailbox or a body: a request that
//! names an agent is recorded as "an agent was given". A key tried in a
//! failed login that matches no credential is recorded as a keyed hash of
//! it (people type their e-mail address as user name).

use crate::app::AppState;
use crate::auth::{AuthMethod, Credential};
use crate::error::ApiError;
use crate::params::Params;
use crate::xapi_request::PrincipalSlot;
use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hmac::{Hmac, Mac};
use lrs_store::audit::{AuditConfig, AuditEntry, AuditQuery, AuditResources, AuditTrail};
use serde_json::json;
use sha2::Sha256;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Read the audit records of one's own tenant.
pub const PERMISSION_READ: &str = "audit.read";
/// Read the audit records of every tenant, and the trail's own records.
pub const PERMISSION_READ_ALL: &str = "audit.read.all";

pub const RECORDS_WRITTEN: &str = "lrs_audit_records_written_total";
pub const RECORDS_DROPPED: &str = "lrs_audit_records_dropped_total";
pub const FLUSH_DURATION: &str = "lrs_audit_flush_duration_seconds";
/// Buckets of [`FLUSH_DURATION`], seconds: 0.5 ms to 1 s.
pub const FLUSH_BUCKETS: [f64; 11] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Statement ids listed in one record; beyond it only the count.
const MAX_STATEMENT_IDS: usize = 100;
/// Longest identifier value recorded (longer ones are cut, marked with `…`).
const MAX_VALUE_CHARS: usize = 512;
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// The server's audit trail.
pub struct Audit {
    trail: AuditTrail,
    /// Credential keys granted `audit.read.all` by configuration (the bootstrap).
    readers: Vec<String>,
    /// Key of the keyed hash of unknown keys tried in failed logins.
    unknown_key_key: [u8; 32],
    last_drop_warning: Mutex<Option<Instant>>,
}

impl Audit {
    /// Opens `<data dir>/audit/`, continuing its chain.
    pub fn open(
        store: &lrs_store::Store,
        config: &crate::ServeConfig,
    ) -> Result<Self, lrs_store::StoreError> {
        describe_metrics();
        let mut audit_config = AuditConfig::new(store.data_dir());
        audit_config.on_flush = Some(Arc::new(|report: lrs_store::audit::FlushReport| {
            metrics::counter!(RECORDS_WRITTEN).increment(report.records);
            metrics::histogram!(FLUSH_DURATION).record(report.duration.as_secs_f64());
        }));
        let trail = AuditTrail::open(audit_config)?;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(store.digest_key()).expect("any key");
        mac.update(b"lrs audit: unknown credential keys");
        Ok(Self {
            trail,
            readers: config.audit_readers.clone(),
            unknown_key_key: mac.finalize().into_bytes().into(),
            last_drop_warning: Mutex::new(None),
        })
    }

    /// Queues a record. Never blocks: a full queue drops the record, which
    /// is counted here (`lrs_audit_records_dropped_total`, a warning at most
    /// every 10 s) and noted in the chain by the writer.
    pub fn submit(&self, entry: AuditEntry) {
        if let Err(error) = self.trail.submit(entry) {
            metrics::counter!(RECORDS_DROPPED).increment(1);
            let mut last = self.last_drop_warning.lock().expect("audit warning lock");
            if last.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                *last = Some(Instant::now());
                tracing::error!(
                    %error,
                    dropped_total = self.trail.dropped_total(),
                    "audit record dropped; the gap will be noted in the audit trail"
                );
            }
        }
    }

    /// Writes the clean-stop record and syncs (after the server has drained).
    pub async fn close(self: &Arc<Self>) {
        let audit = self.clone();
        match tokio::task::spawn_blocking(move || audit.trail.close()).await {
            Ok(Ok(tip)) => tracing::info!(seq = tip.seq, "audit trail closed"),
            Ok(Err(error)) => tracing::error!(%error, "audit trail: cannot close cleanly"),
            Err(error) => tracing::error!(%error, "audit trail: close task failed"),
        }
    }

    fn is_configured_reader(&self, credential: &Credential) -> bool {
        self.readers.contains(&credential.key)
    }

    /// How a tried key that is no credential is recorded.
    fn unknown_key(&self, key: &str) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.unknown_key_key).expect("any key");
        mac.update(key.as_bytes());
        format!("unknown:{}", hex::encode(&mac.finalize().into_bytes()[..8]))
    }
}

fn describe_metrics() {
    use metrics::{describe_counter, describe_histogram, Unit};
    describe_counter!(
        RECORDS_WRITTEN,
        "Audit records made durable (fdatasync) since start"
    );
    describe_counter!(
        RECORDS_DROPPED,
        "Audit records dropped because the audit queue was full (each gap is also noted in the trail)"
    );
    describe_histogram!(
        FLUSH_DURATION,
        Unit::Seconds,
        "Time of one fdatasync of the audit trail"
    );
    metrics::counter!(RECORDS_WRITTEN).increment(0);
    metrics::counter!(RECORDS_DROPPED).increment(0);
}

/// The audit options of `lrs serve`; flatten into its arguments and
/// [`AuditArgs::apply`] them to the [`crate::ServeConfig`].
#[derive(clap::Args, Debug, Clone)]
pub struct AuditArgs {
    /// Credential keys that may read every tenant's audit records
    /// (`audit.read.all`), comma-separated: the bootstrap until roles grant it.
    #[arg(
        long = "audit-reader",
        env = "LRS_AUDIT_READERS",
        value_delimiter = ','
    )]
    pub audit_readers: Vec<String>,
}

impl AuditArgs {
    pub fn apply(self, mut config: crate::ServeConfig) -> crate::ServeConfig {
        config.audit_readers = self
            .audit_readers
            .into_iter()
            .map(|key| key.trim().to_owned())
            .filter(|key| !key.is_empty())
            .collect();
        config
    }
}

tokio::task_local! {
    /// The audited request the current task serves, for [`record_admin`] and [`note_target`].
    static REQUEST: RequestContext;
}

#[derive(Clone)]
struct RequestContext {
    client: Option<String>,
    request_id: Option<String>,
    target: Arc<OnceLock<String>>,
}

/// Says what the audited request in progress acted on (e.g. which tenant's
/// audit records it read); the request's record carries it as `target`.
/// Nothing outside an audited request.
pub fn note_target(target: &str) {
    let _ = REQUEST.try_with(|context| context.target.set(bounded(target)));
}

/// Records an administrative action (`action`: a name such as
/// `credential.revoke`, `target`: what it acted on, e.g. a credential key;
/// `outcome`: the HTTP status it answers with). Called inside an audited
/// request it also records that request's client address and request id.
pub fn record_admin(
    state: &AppState,
    credential: &Credential,
    action: &str,
    target: &str,
    outcome: u16,
) {
    let (client, request_id) = REQUEST
        .try_with(|context| (context.client.clone(), context.request_id.clone()))
        .unwrap_or_default();
    state.audit.submit(AuditEntry {
        time_micros: crate::auth::now_micros(),
        tenant: Some(credential.tenant.clone()),
        principal: Some(credential.key.clone()),
        auth_method: Some(method_name(credential.method).to_owned()),
        client,
        action: bounded(action),
        resources: AuditResources {
            target: Some(bounded(target)),
            ..Default::default()
        },
        outcome: Some(outcome),
        request_id,
        note: None,
    });
}

fn method_name(method: AuthMethod) -> &'static str {
    match method {
        AuthMethod::Basic => "basic",
        AuthMethod::LocalToken => "local_token",
        AuthMethod::ExternalToken => "external_token",
        AuthMethod::StaffSession => "staff_session",
        AuthMethod::StaffOidcSession => "staff_oidc_session",
    }
}

fn bounded(value: &str) -> String {
    if value.chars().count() <= MAX_VALUE_CHARS {
        value.to_owned()
    } else {
        let mut cut: String = value.chars().take(MAX_VALUE_CHARS).collect();
        cut.push('…');
        cut
    }
}

/// The identifiers a request names in its query. `agent` only as a flag.
fn resources_of(query: Option<&str>) -> AuditResources {
    let mut resources = AuditResources::default();
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let value = || Some(bounded(&value));
        match key.as_ref() {
            "statementId" => resources.statement_ids = value().into_iter().collect(),
            "voidedStatementId" => resources.voided_statement_id = value(),
            "activityId" | "activity" => resources.activity_id = value(),
            "registration" => resources.registration = value(),
            "stateId" => resources.state_id = value(),
            "profileId" => resources.profile_id = value(),
            "agent" => resources.agent_filter = true,
            _ => {}
        }
    }
    resources
}

/// The key of HTTP Basic credentials, without the secret.
fn basic_key(headers: &HeaderMap) -> Option<String> {
    use base64::Engine;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (key, _) = decoded.split_once(':')?;
    (!key.is_empty()).then(|| key.to_owned())
}

/// Route layer on the audited routes: one record per request, written
/// after the response is known. The handler's authentication fills the
/// [`PrincipalSlot`] put into the request here; a request that did not
/// authenticate is recorded with the key it tried (if it sent one).
pub async fn audit_request(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| crate::metrics::UNMATCHED.to_owned());
    if route == "/xapi/about" {
        // No authentication, no personal data: nothing to audit.
        return next.run(request).await;
    }
    let method = request.method().clone();
    let action = format!("{} {route}", method.as_str());
    let slot = match request.extensions().get::<PrincipalSlot>() {
        Some(slot) => slot.clone(),
        None => {
            let slot = PrincipalSlot::default();
            request.extensions_mut().insert(slot.clone());
            slot
        }
    };
    let context = RequestContext {
        client: request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip().to_canonical().to_string()),
        request_id: request
            .extensions()
            .get::<crate::metrics::RequestId>()
            .map(|id| id.0.clone()),
        target: Arc::default(),
    };
    let mut resources = resources_of(request.uri().query());
    let tried_key = basic_key(request.headers());
    let response = REQUEST.scope(context.clone(), next.run(request)).await;
    let status = response.status();
    let response =
        if method == Method::POST && route == "/xapi/statements" && status == StatusCode::OK {
            let (response, ids) = statement_ids_of(response).await;
            if ids.len() > MAX_STATEMENT_IDS {
                resources.statements_total = Some(ids.len() as u64);
            }
            resources.statement_ids = ids.into_iter().take(MAX_STATEMENT_IDS).collect();
            response
        } else {
            response
        };
    if let Some(target) = context.target.get() {
        resources.target = Some(target.clone());
    }
    let (tenant, principal, auth_method) = match slot.0.get() {
        Some(credential) => (
            Some(credential.tenant.clone()),
            Some(credential.key.clone()),
            Some(method_name(credential.method).to_owned()),
        ),
        None => match tried_key {
            None => (None, None, None),
            Some(key) => match state.store.credential(&key) {
                Ok(Some(known)) => (Some(known.tenant), Some(known.key), Some("basic".into())),
                _ => (
                    None,
                    Some(state.audit.unknown_key(&key)),
                    Some("basic".into()),
                ),
            },
        },
    };
    state.audit.submit(AuditEntry {
        time_micros: crate::auth::now_micros(),
        tenant,
        principal,
        auth_method,
        client: context.client,
        action,
        resources,
        outcome: Some(status.as_u16()),
        request_id: context.request_id,
        note: None,
    });
    response
}

/// The ids a `POST /statements` answered with (the body is read and put back).
async fn statement_ids_of(response: Response) -> (Response, Vec<String>) {
    let (parts, body) = response.into_parts();
    match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
        Ok(bytes) => {
            let ids: Vec<String> = serde_json::from_slice(&bytes).unwrap_or_default();
            (Response::from_parts(parts, Body::from(bytes)), ids)
        }
        Err(error) => (ApiError::internal(error).into_response(), Vec::new()),
    }
}

/// The `/admin/audit` route, itself audited.
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/admin/audit", get(get_audit))
        .route_layer(middleware::from_fn_with_state(state, audit_request))
}

/// `GET /admin/audit?since=&until=&tenant=&principal=&action=&limit=&after=`:
/// a page of records in sequence order, and `more` (the next page's URL,
/// or null). `audit.read` reads the caller's own tenant only,
/// `audit.read.all` (or a key in `--audit-reader`) every tenant.
pub async fn get_audit(State(state): State<AppState>, request: Request) -> Response {
    match read_audit(&state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn read_audit(state: &AppState, request: Request) -> Result<Response, ApiError> {
    let (parts, _) = request.into_parts();
    let credential = crate::xapi_request::authenticate_principal(&parts, state).await?;
    let configured_reader = state.audit.is_configured_reader(&credential);
    // Refuse before looking at the parameters: no hints for non-readers.
    reader_scope(&credential, configured_reader, None)?;
    let params = Params::parse(
        parts.uri.query(),
        &[
            "since",
            "until",
            "tenant",
            "principal",
            "action",
            "limit",
            "after",
        ],
    )?;
    let tenant = reader_scope(&credential, configured_reader, params.get("tenant"))?;
    let number = |key: &str| -> Result<Option<u64>, ApiError> {
        params
            .get(key)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(
                        format!("?{key}"),
                        "parameter.integer",
                        format!("expected a non-negative integer, got {v:?}"),
                    )
                })
            })
            .transpose()
    };
    let limit = match number("limit")? {
        None | Some(0) => DEFAULT_PAGE,
        Some(n) => (n as usize).min(MAX_PAGE),
    };
    let query = AuditQuery {
        since_micros: params.timestamp("since")?,
        until_micros: params.timestamp("until")?,
        tenant: tenant.clone(),
        principal: params.get("principal").map(str::to_owned),
        action: params.get("action").map(str::to_owned),
        after: number("after")?.unwrap_or(0),
    };
    note_target(&match &tenant {
        Some(tenant) => format!("audit records of tenant {tenant}"),
        None => "audit records of every tenant".to_owned(),
    });
    let audit = state.audit.clone();
    let page = {
        let query = query.clone();
        tokio::task::spawn_blocking(move || {
            // Read what earlier requests queued, e.g. the caller's own last request.
            audit.trail.barrier();
            lrs_store::audit::read(audit.trail.dir(), &query, limit)
        })
        .await
        .map_err(ApiError::internal)??
    };
    let more = page.next_after.map(|after| {
        let mut url = form_urlencoded::Serializer::new(String::new());
        for (key, value) in params.iter().filter(|(key, _)| *key != "after") {
            url.append_pair(key, value);
        }
        url.append_pair("after", &after.to_string());
        format!("/admin/audit?{}", url.finish())
    });
    let records: Vec<_> = page.records.iter().map(|r| r.to_json()).collect();
    Ok(axum::Json(json!({"records": records, "more": more})).into_response())
}

/// Whose records a reader may read, given the tenant it asked for: `None`
/// is every tenant. `audit.read.all` (or `--audit-reader`) reads any
/// tenant, `audit.read` only its own; anyone else is refused.
fn reader_scope(
    credential: &Credential,
    configured_reader: bool,
    asked: Option<&str>,
) -> Result<Option<String>, ApiError> {
    let has = |permission: &str| credential.permissions.iter().any(|p| p == permission);
    if configured_reader || has(PERMISSION_READ_ALL) {
        return Ok(asked.map(str::to_owned));
    }
    if !has(PERMISSION_READ) {
        return Err(ApiError::Forbidden(format!(
            "permission {PERMISSION_READ} or {PERMISSION_READ_ALL}"
        )));
    }
    match asked {
        Some(tenant) if tenant != credential.tenant => Err(ApiError::Forbidden(format!(
            "permission {PERMISSION_READ_ALL} ({PERMISSION_READ} reads only your own tenant's records)"
        ))),
        _ => Ok(Some(credential.tenant.clone())),
    }
}

/// Who runs the command line: the OS user name, else the process's uid.
pub fn cli_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| {
            use std::os::unix::fs::MetadataExt;
            // No user name in the environment: the process's uid (Linux).
            std::fs::metadata("/proc/self")
                .map_or_else(|_| "unknown".to_owned(), |m| format!("uid {}", m.uid()))
        })
}

/// Records an administrative action done on the command line (the server
/// stopped, so the trail is free): opens the trail, writes the record,
/// closes it. The principal is `cli:<OS user>`; written after the action
/// succeeded.
pub fn record_cli(
    data_dir: &std::path::Path,
    tenant: Option<&str>,
    action: &str,
    target: &str,
) -> anyhow::Result<()> {
    let trail = AuditTrail::open(AuditConfig::new(data_dir))?;
    let user = cli_user();
    let submitted = trail.submit(AuditEntry {
        time_micros: crate::auth::now_micros(),
        tenant: tenant.map(str::to_owned),
        principal: Some(format!("cli:{}", bounded(&user))),
        auth_method: Some("os_user".to_owned()),
        client: None,
        action: bounded(action),
        resources: AuditResources {
            target: Some(bounded(target)),
            ..Default::default()
        },
        outcome: None,
        request_id: None,
        note: None,
    });
    trail.close()?;
    submitted?;
    Ok(())
}

/// `lrs audit ...`: check and export the audit trail of a data directory.
/// Both only read files, so they work while a server runs (a record being
/// written at that moment is reported as in flight).
#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain of every segment; exit 2 and name the first
    /// broken record if it is broken.
    Verify {
        /// Data directory.
        #[arg(long, env = "LRS_DATA_DIR", default_value = "./lrs-data")]
        data_dir: PathBuf,
    },
    /// Print records, one JSON object a line, in sequence order.
    Export {
        /// Data directory.
        #[arg(long, env = "LRS_DATA_DIR", default_value = "./lrs-data")]
        data_dir: PathBuf,
        /// Only records after this time (RFC 3339, or a date YYYY-MM-DD meaning its start, UTC).
        #[arg(long)]
        since: Option<String>,
        /// Only records up to this time (same forms).
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
        /// A credential key.
        #[arg(long)]
        principal: Option<String>,
        /// Exact, or a prefix ending in `*` (e.g. 'GET /xapi/*').
        #[arg(long)]
        action: Option<String>,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ExportFormat {
    /// One JSON object per line, with `hash` and `prev_hash` to check against the chain.
    Jsonl,
}

fn parse_time(text: &str) -> anyhow::Result<i64> {
    if let Some(time) = xapi::validate::parse_timestamp(text) {
        return Ok(time.timestamp_micros());
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        anyhow::anyhow!("{text:?} is neither an RFC 3339 time nor a date YYYY-MM-DD")
    })?;
    Ok(date
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
        .timestamp_micros())
}

/// Runs an `lrs audit` command.
pub fn run_command(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify { data_dir } => verify_command(&data_dir),
        AuditCommand::Export {
            data_dir,
            since,
            until,
            tenant,
            principal,
            action,
            format: ExportFormat::Jsonl,
        } => {
            use std::io::Write;
            let query = AuditQuery {
                since_micros: since.as_deref().map(parse_time).transpose()?,
                until_micros: until.as_deref().map(parse_time).transpose()?,
                tenant,
                principal,
                action,
                after: 0,
            };
            let dir = data_dir.join(lrs_store::audit::AUDIT_DIR);
            if !dir.is_dir() {
                anyhow::bail!("no audit trail in {}", data_dir.display());
            }
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let mut failed = None;
            lrs_store::audit::scan(&dir, &query, |record| {
                match writeln!(out, "{}", record.to_json()) {
                    Ok(()) => true,
                    Err(error) => {
                        failed = Some(error);
                        false
                    }
                }
            })?;
            if let Some(error) = failed {
                return Err(error.into());
            }
            out.flush()?;
            Ok(())
        }
    }
}

fn verify_command(data_dir: &std::path::Path) -> anyhow::Result<()> {
    let dir = data_dir.join(lrs_store::audit::AUDIT_DIR);
    if !dir.is_dir() {
        anyhow::bail!("no audit trail in {}", data_dir.display());
    }
    eprintln!("verifying the audit trail in {}", dir.display());
    let report = lrs_store::audit::verify(&dir, |records| {
        eprintln!("  {records} records");
    })?;
    if report.writer_active {
        eprintln!("  a server is writing this trail; its newest records may still be in flight");
    }
    if let Some(broken) = &report.broken {
        println!("BROKEN at {broken}");
        if report.records > 0 {
            println!(
                "  the {} records before it are intact (records {}..={})",
                report.records,
                report.first_seq.unwrap_or(0),
                report.tip.map_or(0, |t| t.seq)
            );
        }
        std::process::exit(2);
    }
    match (report.first_seq, report.tip) {
        (Some(first), Some(tip)) => {
            println!(
                "ok: {} audit records in {} segment{} (records {first}..={}), hash chain intact; head hash {}",
                report.records,
                report.segments,
                if report.segments == 1 { "" } else { "s" },
                tip.seq,
                hex::encode(tip.hash)
            );
            if first > 1 {
                println!(
                    "  records before {first} were removed (retention); record {first} anchors the chain"
                );
            }
            match report.last_action.as_deref() {
                Some(lrs_store::audit::actions::STOPPED) => {
                    println!("  the trail ends with a clean stop")
                }
                _ if report.writer_active => {}
                _ => println!(
                    "  the trail does not end with a clean stop: the server was killed, or is running"
                ),
            }
        }
        _ => println!("ok: the audit trail is empty"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_identifiers_are_taken_from_the_query_and_agents_only_as_a_flag() {
        let query = "statementId=8f2f0a5e-2c7e-4c43-9d2b-2b7b4c6c1a11&agent=%7B%22mbox%22%3A%22mailto%3Aanna%40example.nl%22%7D\
                     &activityId=https%3A%2F%2Fcourses.example.nl%2Fa&registration=r&stateId=s&since=2024-01-01T00:00:00Z";
        let resources = resources_of(Some(query));
        assert_eq!(
            resources.statement_ids,
            vec!["8f2f0a5e-2c7e-4c43-9d2b-2b7b4c6c1a11"]
        );
        assert!(resources.agent_filter);
        assert_eq!(
            resources.activity_id.as_deref(),
            Some("https://courses.example.nl/a")
        );
        assert_eq!(resources.state_id.as_deref(), Some("s"));
        let encoded = serde_json::to_string(&resources).unwrap();
        assert!(!encoded.contains("anna"), "{encoded}");
        assert!(!encoded.contains("2024"), "{encoded}");
    }

    #[test]
    fn basic_keys_are_read_without_the_secret() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            "Basic bHJzX2FiYzpzM2NyZXQ=".parse().unwrap(), // lrs_abc:s3cret
        );
        assert_eq!(basic_key(&headers).as_deref(), Some("lrs_abc"));
        headers.insert(header::AUTHORIZATION, "Bearer x.y.z".parse().unwrap());
        assert_eq!(basic_key(&headers), None);
    }

    fn credential(tenant: &str, permissions: &[&str]) -> Credential {
        Credential {
            key: "lrs_k".into(),
            name: "n".into(),
            tenant: tenant.into(),
            scopes: vec!["all".into()],
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
            expires_micros: None,
            method: AuthMethod::Basic,
        }
    }

    #[test]
    fn audit_read_covers_the_own_tenant_and_audit_read_all_every_tenant() {
        let own = credential("library-a", &[PERMISSION_READ]);
        assert_eq!(
            reader_scope(&own, false, None).unwrap().as_deref(),
            Some("library-a")
        );
        assert_eq!(
            reader_scope(&own, false, Some("library-a"))
                .unwrap()
                .as_deref(),
            Some("library-a")
        );
        assert!(matches!(
            reader_scope(&own, false, Some("library-b")),
            Err(ApiError::Forbidden(_))
        ));
        let all = credential("kb", &[PERMISSION_READ_ALL]);
        assert_eq!(reader_scope(&all, false, None).unwrap(), None);
        assert_eq!(
            reader_scope(&all, false, Some("library-b"))
                .unwrap()
                .as_deref(),
            Some("library-b")
        );
        let none = credential("library-a", &["admin.credentials"]);
        assert!(matches!(
            reader_scope(&none, false, None),
            Err(ApiError::Forbidden(_))
        ));
        assert_eq!(reader_scope(&none, true, None).unwrap(), None);
    }

    #[test]
    fn long_values_are_cut() {
        let long = "x".repeat(2000);
        let cut = bounded(&long);
        assert_eq!(cut.chars().count(), MAX_VALUE_CHARS + 1);
        assert!(cut.ends_with('…'));
    }
}
