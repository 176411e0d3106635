//! The privacy admin API (audited with the rest of `/admin`):
//!
//! - `POST /admin/privacy/erasures` `{"agent": {...}, "request_id": "..."}`
//!   (`privacy.erase`, KB only): erases the person, answers the report;
//! - `POST /admin/privacy/access` `{"agent": {...}}` (`privacy.access`, KB
//!   only): everything held about the person;
//! - `GET|PUT /admin/privacy/retention/policies` (`privacy.retention`);
//! - `POST /admin/privacy/retention/runs` `{"as_of": "...", "dry_run": true}`
//!   (`privacy.retention`);
//! - `GET /admin/privacy/reports`, `GET /admin/privacy/reports/{id}`
//!   (`?format=markdown` for the readable document) (`privacy.reports`);
//!
//! An agent travels in a POST body, never in a URL (URLs end up in logs).

use crate::api::state::ApiState;
use crate::error::ApiError;
use crate::request::routes::{Operation, RouteTable};
use crate::security::audit::record_admin;
use crate::security::extract::{
    AuthState, Permitted, PrivacyAccess, PrivacyErase, PrivacyReports, PrivacyRetention,
};
use axum::body::Bytes;
use axum::extract::{FromRef, Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use lrs_app::principal::Credential;
use lrs_app::privacy;
use lrs_core::events::TenantKindV1;
use serde::Deserialize;
use serde_json::{json, Value};

/// The `/admin/v1/privacy` routes.
pub fn routes<S>(table: RouteTable<S>) -> RouteTable<S>
where
    ApiState: FromRef<S>,
    AuthState: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    const TAG: &str = "privacy";
    table
        .post(
            "/admin/v1/privacy/erasures",
            erase,
            Operation::new(TAG, "Erase a person (the KB's, permission privacy.erase)")
                .json_body("`{\"agent\": {...}, \"request_id\"?}`")
                .answers(200, "The erasure report"),
        )
        .post(
            "/admin/v1/privacy/access",
            access,
            Operation::new(
                TAG,
                "Everything held about a person (the KB's, permission privacy.access)",
            )
            .json_body("`{\"agent\": {...}}`")
            .answers(200, "The person's data"),
        )
        .get(
            "/admin/v1/privacy/retention/policies",
            get_policies,
            Operation::new(TAG, "The retention policies (permission privacy.retention)")
                .answers(200, "The policies"),
        )
        .put(
            "/admin/v1/privacy/retention/policies",
            put_policy,
            Operation::new(TAG, "Set a retention period (permission privacy.retention)")
                .json_body("The class and its period (null removes it)")
                .answers(200, "The policies"),
        )
        .post(
            "/admin/v1/privacy/retention/runs",
            run_retention,
            Operation::new(TAG, "Run retention now (permission privacy.retention)")
                .json_body("`{\"as_of\"?, \"dry_run\"?}`")
                .answers(200, "The run's report"),
        )
        .get(
            "/admin/v1/privacy/reports",
            list_reports,
            Operation::new(TAG, "The privacy reports (permission privacy.reports)")
                .answers(200, "The reports"),
        )
        .get(
            "/admin/v1/privacy/reports/{id}",
            get_report,
            Operation::new(TAG, "One privacy report (permission privacy.reports)")
                .query("format", "json (the default) or markdown")
                .answers(200, "The report")
                .answers_as(200, "text/markdown", "The report as a readable document"),
        )
}

fn body<T: for<'de> Deserialize<'de>>(bytes: &Bytes) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(
            format!("$ (line {}, column {})", e.line(), e.column()),
            "json.body",
            e.to_string(),
        )
    })
}

/// A person's data spans every tenant: only the KB (the controller) answers
/// requests about one person.
fn require_kb(state: &ApiState, caller: &Credential) -> Result<(), ApiError> {
    match state.store.tenant(&caller.tenant)? {
        Some(tenant) if tenant.kind == TenantKindV1::Kb => Ok(()),
        // Before any tenant is defined, the bootstrap tenant is the KB's.
        None if state.store.tenants()?.is_empty() => Ok(()),
        _ => Err(ApiError::Forbidden(
            "requests about one person are handled by the KB's privacy officer (a KB tenant credential)"
                .into(),
        )),
    }
}

fn who(caller: &Credential) -> String {
    caller.key.clone()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ErasureBody {
    agent: Value,
    #[serde(default)]
    request_id: Option<String>,
}

async fn erase(
    State(state): State<ApiState>,
    Permitted(caller, _): Permitted<PrivacyErase>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    require_kb(&state, &caller)?;
    let request: ErasureBody = body(&bytes)?;
    let ifi = privacy::ifi_of_agent(&request.agent)?;
    let request_id = match request.request_id {
        Some(id) => {
            privacy::erase::check_request_id(&id)?;
            id
        }
        None => privacy::erase::generated_request_id(),
    };
    let report =
        privacy::erase::erase_on_request(&state.store, &ifi, &request_id, &who(&caller)).await?;
    record_admin(
        &state.audit,
        &caller,
        "privacy.erase",
        &format!(
            "request {request_id}, report {}",
            report.report_id.hyphenated()
        ),
        200,
    );
    let (_, value) = privacy::report::load(&state.store, &report.report_id)?
        .ok_or_else(|| ApiError::internal("report missing after it was appended"))?;
    Ok(axum::Json(value).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessBody {
    agent: Value,
}

async fn access(
    State(state): State<ApiState>,
    Permitted(caller, _): Permitted<PrivacyAccess>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    require_kb(&state, &caller)?;
    let request: AccessBody = body(&bytes)?;
    let ifi = privacy::ifi_of_agent(&request.agent)?;
    let store = state.store.clone();
    let agent = request.agent.clone();
    let found = tokio::task::spawn_blocking(move || privacy::access::access(&store, &ifi, &agent))
        .await
        .map_err(ApiError::internal)??;
    record_admin(&state.audit, &caller, "privacy.access", "one person", 200);
    match found {
        Some(value) => {
            Ok(([(header::CACHE_CONTROL, "no-store")], axum::Json(value)).into_response())
        }
        None => Err(ApiError::NotFound("person (never seen, or erased)")),
    }
}

async fn get_policies(
    State(state): State<ApiState>,
    Permitted(_, _): Permitted<PrivacyRetention>,
) -> Result<Response, ApiError> {
    Ok(axum::Json(privacy::retention::policies_json(&state.store)?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyBody {
    tenant: String,
    kind: String,
    /// `null` removes the period.
    days: Option<u32>,
}

async fn put_policy(
    State(state): State<ApiState>,
    Permitted(caller, _): Permitted<PrivacyRetention>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let request: PolicyBody = body(&bytes)?;
    let kind = privacy::kinds::parse_kind(&request.kind).ok_or_else(|| {
        ApiError::bad_request(
            "$.kind",
            "retention.kind",
            "kind is one of people, documents, audit_trail, credential_use, operations_journal, backups",
        )
    })?;
    // A tenant's own administrator sets its own periods; the KB sets any.
    if request.tenant != caller.tenant {
        require_kb(&state, &caller)?;
    }
    privacy::retention::set_policy(
        &state.store,
        &request.tenant,
        kind,
        request.days,
        &who(&caller),
    )
    .await?;
    record_admin(
        &state.audit,
        &caller,
        "privacy.retention.policy",
        &format!("{} {} {:?}", request.tenant, request.kind, request.days),
        200,
    );
    Ok(axum::Json(privacy::retention::policies_json(&state.store)?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunBody {
    #[serde(default)]
    as_of: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

async fn run_retention(
    State(state): State<ApiState>,
    Permitted(caller, _): Permitted<PrivacyRetention>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    require_kb(&state, &caller)?;
    let request: RunBody = body(&bytes)?;
    let as_of = match &request.as_of {
        Some(text) => privacy::retention::parse_as_of(text).ok_or_else(|| {
            ApiError::bad_request(
                "$.as_of",
                "retention.as_of",
                "as_of is an RFC 3339 time or a date YYYY-MM-DD",
            )
        })?,
        None => lrs_core::clock::now_micros(),
    };
    let outcome =
        privacy::retention::run(&state.store, as_of, request.dry_run, &who(&caller)).await?;
    record_admin(
        &state.audit,
        &caller,
        if request.dry_run {
            "privacy.retention.dry_run"
        } else {
            "privacy.retention.run"
        },
        &outcome.summary(),
        200,
    );
    Ok(axum::Json(outcome).into_response())
}

async fn list_reports(
    State(state): State<ApiState>,
    Permitted(_, _): Permitted<PrivacyReports>,
) -> Result<Response, ApiError> {
    let reports = privacy::report::list(&state.store)?;
    Ok(axum::Json(json!({ "reports": reports })).into_response())
}

async fn get_report(
    State(state): State<ApiState>,
    Permitted(_, _): Permitted<PrivacyReports>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut format = None;
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "format" => format = Some(value.into_owned()),
            other => {
                return Err(ApiError::bad_request(
                    other.to_owned(),
                    "privacy.report_query",
                    "the only parameter is format (json or markdown)",
                ))
            }
        }
    }
    let id = uuid::Uuid::parse_str(&id)
        .map_err(|_| ApiError::bad_request("id", "privacy.report_id", "a report id is a UUID"))?;
    let (report, value) =
        privacy::report::load(&state.store, &id)?.ok_or(ApiError::NotFound("report"))?;
    match format.as_deref() {
        None | Some("json") => Ok(axum::Json(value).into_response()),
        Some("markdown") => {
            let position = value["log"]["position"].as_u64().unwrap_or_default();
            let hash = value["log"]["hash"].as_str().unwrap_or_default();
            Ok((
                [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
                privacy::report::markdown(&report, position, hash),
            )
                .into_response())
        }
        Some(_) => Err(ApiError::bad_request(
            "format",
            "privacy.report_format",
            "format is json or markdown",
        )),
    }
}
