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

use crate::error::ApiError;
use crate::ops::counters::{
    AUDIT_FLUSH_DURATION, AUDIT_RECORDS_DROPPED, AUDIT_RECORDS_WRITTEN, UNMATCHED,
};
use crate::request::id::RequestId;
use crate::security::extract::PrincipalSlot;
use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use lrs_app::principal::{AuthMethod, Credential};
use lrs_store::audit::{
    AuditConfig, AuditEntry, AuditPage, AuditQuery, AuditResources, AuditTrail,
};
use lrs_store::{Store, StoreError};
use sha2::Sha256;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Who may read the audit trail by configuration, and its segment size.
#[derive(Debug, Clone, Default)]
pub struct AuditSettings {
    /// Credential keys granted `audit.read.all` by configuration
    /// (`--audit-reader`, `LRS_AUDIT_READERS`): the bootstrap reader.
    pub readers: Vec<String>,
    /// A segment file is closed at this size (`--audit-segment-max-bytes`),
    /// else at 64 MiB, and always when the UTC day changes. Retention
    /// removes whole closed segments only.
    pub segment_max_bytes: Option<u64>,
}

/// Statement ids listed in one record; beyond it only the count.
const MAX_STATEMENT_IDS: usize = 100;
/// Longest identifier value recorded (longer ones are cut, marked with `…`).
const MAX_VALUE_CHARS: usize = 512;

/// The server's audit trail.
pub struct Audit {
    trail: AuditTrail,
    /// To tell a tried key that is a credential from one that is not.
    store: Arc<Store>,
    /// Credential keys granted `audit.read.all` by configuration (the bootstrap).
    readers: Vec<String>,
    /// Key of the keyed hash of unknown keys tried in failed logins.
    unknown_key_key: [u8; 32],
    last_drop_warning: Mutex<Option<Instant>>,
}

impl Audit {
    /// Opens `<data dir>/audit/`, continuing its chain.
    pub fn open(store: &Arc<Store>, settings: &AuditSettings) -> Result<Self, StoreError> {
        describe_metrics();
        let mut audit_config = AuditConfig::new(store.data_dir());
        if let Some(bytes) = settings.segment_max_bytes {
            audit_config.segment_max_bytes = bytes;
        }
        audit_config.on_flush = Some(Arc::new(|report: lrs_store::audit::FlushReport| {
            metrics::counter!(AUDIT_RECORDS_WRITTEN).increment(report.records);
            metrics::histogram!(AUDIT_FLUSH_DURATION).record(report.duration.as_secs_f64());
        }));
        let trail = AuditTrail::open(audit_config)?;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(store.digest_key()).expect("any key");
        mac.update(b"lrs audit: unknown credential keys");
        Ok(Self {
            trail,
            store: store.clone(),
            readers: settings.readers.clone(),
            unknown_key_key: mac.finalize().into_bytes().into(),
            last_drop_warning: Mutex::new(None),
        })
    }

    /// Queues a record. Never blocks: a full queue drops the record, which
    /// is counted here (`lrs_audit_records_dropped_total`, a warning at most
    /// every 10 s) and noted in the chain by the writer.
    pub fn submit(&self, entry: AuditEntry) {
        if let Err(error) = self.trail.submit(entry) {
            metrics::counter!(AUDIT_RECORDS_DROPPED).increment(1);
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

    /// Whether configuration (not a role) lets `credential` read every tenant's records.
    pub fn is_configured_reader(&self, credential: &Credential) -> bool {
        self.readers.contains(&credential.key)
    }

    /// A page of records (blocking: run it off the async workers). Reads
    /// what earlier requests queued first, e.g. the caller's own last request.
    pub fn read(&self, query: &AuditQuery, limit: usize) -> Result<AuditPage, StoreError> {
        self.trail.barrier();
        lrs_store::audit::read(self.trail.dir(), query, limit)
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
        AUDIT_RECORDS_WRITTEN,
        "Audit records made durable (fdatasync) since start"
    );
    describe_counter!(
        AUDIT_RECORDS_DROPPED,
        "Audit records dropped because the audit queue was full (each gap is also noted in the trail)"
    );
    describe_histogram!(
        AUDIT_FLUSH_DURATION,
        Unit::Seconds,
        "Time of one fdatasync of the audit trail"
    );
    metrics::counter!(AUDIT_RECORDS_WRITTEN).increment(0);
    metrics::counter!(AUDIT_RECORDS_DROPPED).increment(0);
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
    audit: &Audit,
    credential: &Credential,
    action: &str,
    target: &str,
    outcome: u16,
) {
    let (client, request_id) = REQUEST
        .try_with(|context| (context.client.clone(), context.request_id.clone()))
        .unwrap_or_default();
    audit.submit(AuditEntry {
        time_micros: lrs_core::clock::now_micros(),
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
        AuthMethod::LearnerOidcSession => "learner_oidc_session",
    }
}

pub fn bounded(value: &str) -> String {
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
    State(audit): State<Arc<Audit>>,
    mut request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| UNMATCHED.to_owned());
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
            .get::<RequestId>()
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
            Some(key) => match audit.store.credential(&key) {
                Ok(Some(known)) => (Some(known.tenant), Some(known.key), Some("basic".into())),
                _ => (None, Some(audit.unknown_key(&key)), Some("basic".into())),
            },
        },
    };
    audit.submit(AuditEntry {
        time_micros: lrs_core::clock::now_micros(),
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

    #[test]
    fn long_values_are_cut() {
        let long = "x".repeat(2000);
        let cut = bounded(&long);
        assert_eq!(cut.chars().count(), MAX_VALUE_CHARS + 1);
        assert!(cut.ends_with('…'));
    }
}
