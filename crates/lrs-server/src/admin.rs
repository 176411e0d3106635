//! Administration of tenants, roles and credentials: the operations (shared
//! by the HTTP API under `/admin` and the `lrs` command line) and the routes.
//!
//! Every change is an event in the log; the read models in
//! `lrs_projections::credentials` answer the lookups. Least privilege: an
//! administrator manages credentials of their own tenant unless they hold
//! `admin.credentials.all`, and never grants a role with a permission they
//! do not hold themselves.

use crate::app::AppState;
use crate::auth::{self, Credential, CredentialSpec};
use crate::error::ApiError;
use crate::tenancy::{is_appid, is_isil};
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use lrs_core::events::{
    CredentialRevokedV1, CredentialRotatedV1, RoleDefinedV1, RoleGrantV1, TenantDefinedV1,
    TenantKindV1,
};
use lrs_core::Event;
use lrs_projections::credentials::{CredentialRecord, RoleRecord, TenantRecord};
use lrs_store::Store;
use serde::Deserialize;
use serde_json::{json, Value};

/// Every administrative permission there is.
pub const PERMISSIONS: &[&str] = &[
    "admin.tenants",
    "admin.roles",
    "admin.credentials",
    "admin.credentials.all",
    "audit.read",
    "audit.read.all",
    // Progress and figures (docs/progress-and-figures.md).
    "figures.read",
    "progress.read",
    "progress.read.own",
    "progress.assign",
    "course_model.read",
    "course_model.write",
    // SQL over the analytics Parquet files (docs/analytics.md).
    "analytics.sql",
];

const DAY_MICROS: i64 = 86_400 * 1_000_000;
/// Longest a credential may live: keys must be rotated at least yearly.
pub const MAX_EXPIRY_DAYS: i64 = 366;
/// Longest grace period of a rotation, seconds.
pub const MAX_GRACE_SECONDS: i64 = 30 * 86_400;

/// The administrator behind a request to `/admin` (no xAPI version header).
pub struct Admin(pub Credential);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        crate::xapi_request::authenticate_principal(parts, state)
            .await
            .map(Admin)
    }
}

impl Admin {
    fn require(&self, permission: &str) -> Result<(), ApiError> {
        self.0.require_permission(permission)
    }

    /// May this administrator manage credentials of `tenant`?
    fn require_credentials_of(&self, tenant: &str) -> Result<(), ApiError> {
        if self.0.may("admin.credentials.all")
            || (self.0.may("admin.credentials") && self.0.tenant == tenant)
        {
            Ok(())
        } else if self.0.may("admin.credentials") {
            // Another tenant's credential looks like no credential at all.
            Err(ApiError::NotFound("credential"))
        } else {
            Err(ApiError::Forbidden("permission admin.credentials".into()))
        }
    }
}

// ---- operations (HTTP and CLI) ----

/// A tenant's kind as the API and CLI spell it.
pub fn tenant_kind(
    kind: &str,
    isil: Option<&str>,
    appid: Option<&str>,
) -> Result<TenantKindV1, ApiError> {
    match (kind, isil, appid) {
        ("kb", None, None) => Ok(TenantKindV1::Kb),
        ("library", Some(isil), None) if is_isil(isil) => Ok(TenantKindV1::Library {
            isil: isil.to_owned(),
        }),
        ("library", Some(isil), None) => Err(ApiError::bad_request(
            "$.isil",
            "tenant.isil",
            format!("{isil:?} is not an ISIL (ISO 15511, e.g. NL-0100030000)"),
        )),
        ("app", None, Some(appid)) if is_appid(appid) => Ok(TenantKindV1::App {
            appid: appid.to_owned(),
        }),
        ("app", None, Some(_)) => Err(ApiError::bad_request(
            "$.appid",
            "tenant.appid",
            "an appid is 1 to 128 printable characters without spaces",
        )),
        _ => Err(ApiError::bad_request(
            "$.kind",
            "tenant.kind",
            "kind is \"kb\" (no isil, no appid), \"library\" (with isil) or \"app\" (with appid)",
        )),
    }
}

fn check_id(path: &str, what: &str, id: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            path,
            format!("{what}.id"),
            format!("a {what} id is 1 to 64 letters, digits, '-', '_', '.' or ':'"),
        ))
    }
}

/// Defines a tenant, or renames one; its kind never changes.
pub async fn define_tenant(
    store: &Store,
    id: &str,
    name: &str,
    kind: TenantKindV1,
) -> Result<TenantRecord, ApiError> {
    check_id("tenant", "tenant", id)?;
    if let Some(existing) = store.tenant(id)? {
        if existing.kind != kind {
            return Err(ApiError::Conflict(format!(
                "tenant {id:?} is already defined with another kind ({:?}); a tenant's kind never changes",
                existing.kind
            )));
        }
    }
    if let TenantKindV1::Library { isil } = &kind {
        if let Some(other) = store.tenants()?.into_iter().find(|t| {
            t.id != id && matches!(&t.kind, TenantKindV1::Library { isil: i } if i == isil)
        }) {
            return Err(ApiError::Conflict(format!(
                "ISIL {isil} already belongs to tenant {:?}",
                other.id
            )));
        }
    }
    let event = TenantDefinedV1 {
        id: id.to_owned(),
        name: name.to_owned(),
        kind,
        defined_micros: auth::now_micros(),
    };
    append(store, Event::TenantDefinedV1(event)).await?;
    store
        .tenant(id)?
        .ok_or_else(|| ApiError::internal("tenant missing after definition"))
}

/// Defines a role (its whole permission set); an empty set retires it.
pub async fn define_role(
    store: &Store,
    name: &str,
    permissions: Vec<String>,
) -> Result<(), ApiError> {
    check_id("role", "role", name)?;
    if let Some((i, unknown)) = permissions
        .iter()
        .enumerate()
        .find(|(_, p)| !PERMISSIONS.contains(&p.as_str()))
    {
        return Err(ApiError::bad_request(
            format!("$.permissions[{i}]"),
            "role.permission",
            format!(
                "unknown permission {unknown:?}; known: {}",
                PERMISSIONS.join(", ")
            ),
        ));
    }
    let mut permissions = permissions;
    permissions.sort();
    permissions.dedup();
    let event = RoleDefinedV1 {
        name: name.to_owned(),
        permissions,
        defined_micros: auth::now_micros(),
    };
    append(store, Event::RoleDefinedV1(event)).await?;
    Ok(())
}

/// What to issue: the API body and the CLI flags.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    pub name: String,
    pub tenant: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub roles: Vec<RoleGrantRequest>,
    #[serde(default)]
    pub allowed_networks: Vec<String>,
    #[serde(default = "default_expiry_days")]
    pub expires_in_days: i64,
    /// RFC 3339; instead of `expires_in_days`, an exact end (within a year).
    #[serde(default)]
    pub expires_at: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleGrantRequest {
    pub role: String,
    /// RFC 3339; the grant ends then.
    #[serde(default)]
    pub until: Option<String>,
}

fn default_expiry_days() -> i64 {
    365
}

fn parse_time(path: &str, value: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_micros())
        .map_err(|e| {
            ApiError::bad_request(
                path,
                "time.format",
                format!("{value:?} is not an RFC 3339 time: {e}"),
            )
        })
}

/// Issues a credential; `granter` (None: the command line, which has the
/// master key and the data directory and so every power) may only grant
/// roles whose permissions it holds.
pub async fn issue_credential(
    store: &Store,
    request: IssueRequest,
    granter: Option<&Credential>,
) -> Result<(String, String, CredentialRecord), ApiError> {
    if request.name.trim().is_empty() || request.name.len() > 200 {
        return Err(ApiError::bad_request(
            "$.name",
            "credential.name",
            "name is 1 to 200 characters",
        ));
    }
    check_id("$.tenant", "tenant", &request.tenant)?;
    if let Some((i, unknown)) = request
        .scopes
        .iter()
        .enumerate()
        .find(|(_, s)| !auth::SCOPES.contains(&s.as_str()))
    {
        return Err(ApiError::bad_request(
            format!("$.scopes[{i}]"),
            "credential.scope",
            format!(
                "unknown scope {unknown:?}; known: {}",
                auth::SCOPES.join(", ")
            ),
        ));
    }
    for (i, network) in request.allowed_networks.iter().enumerate() {
        if network.parse::<ipnet::IpNet>().is_err() && network.parse::<std::net::IpAddr>().is_err()
        {
            return Err(ApiError::bad_request(
                format!("$.allowed_networks[{i}]"),
                "credential.network",
                format!("{network:?} is not an address or CIDR network (e.g. 192.0.2.0/24)"),
            ));
        }
    }
    let now = auth::now_micros();
    let expires_micros = match &request.expires_at {
        Some(at) => {
            let at_micros = parse_time("$.expires_at", at)?;
            if at_micros <= now || at_micros > now + MAX_EXPIRY_DAYS * DAY_MICROS {
                return Err(ApiError::bad_request(
                    "$.expires_at",
                    "credential.expiry",
                    format!("a credential expires in the future, within {MAX_EXPIRY_DAYS} days"),
                ));
            }
            at_micros
        }
        None if (1..=MAX_EXPIRY_DAYS).contains(&request.expires_in_days) => {
            now + request.expires_in_days * DAY_MICROS
        }
        None => {
            return Err(ApiError::bad_request(
                "$.expires_in_days",
                "credential.expiry",
                format!("a credential expires within 1 to {MAX_EXPIRY_DAYS} days"),
            ))
        }
    };
    let mut roles = Vec::new();
    for (i, grant) in request.roles.iter().enumerate() {
        let Some(role) = store.role(&grant.role)? else {
            return Err(ApiError::bad_request(
                format!("$.roles[{i}].role"),
                "credential.role",
                format!("no role {:?}; define it first", grant.role),
            ));
        };
        if let Some(granter) = granter {
            if let Some(missing) = role.permissions.iter().find(|p| !granter.may(p)) {
                return Err(ApiError::Forbidden(format!(
                    "permission {missing} (granting role {} needs every permission it holds)",
                    role.name
                )));
            }
        }
        let until_micros = match &grant.until {
            Some(until) => {
                let until = parse_time(&format!("$.roles[{i}].until"), until)?;
                if until <= now {
                    return Err(ApiError::bad_request(
                        format!("$.roles[{i}].until"),
                        "credential.role-until",
                        "a grant's end lies in the future",
                    ));
                }
                Some(until)
            }
            None => None,
        };
        roles.push(RoleGrantV1 {
            role: role.name,
            until_micros,
        });
    }
    let allowed_networks = request
        .allowed_networks
        .iter()
        .map(|n| match n.parse::<std::net::IpAddr>() {
            Ok(ip) => ipnet::IpNet::from(ip).to_string(),
            Err(_) => n
                .parse::<ipnet::IpNet>()
                .expect("checked")
                .trunc()
                .to_string(),
        })
        .collect();
    let scopes = request.scopes;
    let (key, secret, event) = auth::issue(CredentialSpec {
        name: request.name,
        tenant: request.tenant,
        scopes,
        roles,
        allowed_networks,
        expires_micros,
    });
    append(store, Event::CredentialIssuedV2(event)).await?;
    let record = store
        .credential(&key)?
        .ok_or_else(|| ApiError::internal("credential missing after issue"))?;
    Ok((key, secret, record))
}

/// A new secret for a credential; the old one works `grace_seconds` more.
/// The expiry moves to a year (at most) from now.
pub async fn rotate_credential(
    store: &Store,
    key: &str,
    grace_seconds: i64,
    expires_in_days: i64,
) -> Result<(String, CredentialRecord), ApiError> {
    if !(0..=MAX_GRACE_SECONDS).contains(&grace_seconds) {
        return Err(ApiError::bad_request(
            "$.grace_seconds",
            "rotation.grace",
            format!("the grace period is 0 to {MAX_GRACE_SECONDS} seconds (30 days)"),
        ));
    }
    if !(1..=MAX_EXPIRY_DAYS).contains(&expires_in_days) {
        return Err(ApiError::bad_request(
            "$.expires_in_days",
            "credential.expiry",
            format!("a credential expires within 1 to {MAX_EXPIRY_DAYS} days"),
        ));
    }
    let record = store
        .credential(key)?
        .ok_or(ApiError::NotFound("credential"))?;
    if record.revoked.is_some() {
        return Err(ApiError::Conflict(
            "a revoked credential cannot be rotated; issue a new one".into(),
        ));
    }
    let now = auth::now_micros();
    let (secret, secret_hash) = auth::new_secret();
    append(
        store,
        Event::CredentialRotatedV1(CredentialRotatedV1 {
            key: key.to_owned(),
            secret_hash,
            rotated_micros: now,
            previous_valid_until_micros: now + grace_seconds * 1_000_000,
            expires_micros: now + expires_in_days * DAY_MICROS,
        }),
    )
    .await?;
    let record = store
        .credential(key)?
        .ok_or_else(|| ApiError::internal("credential missing after rotation"))?;
    Ok((secret, record))
}

/// Revokes a credential: refused from the next request on.
pub async fn revoke_credential(
    store: &Store,
    key: &str,
    reason: &str,
) -> Result<CredentialRecord, ApiError> {
    let record = store
        .credential(key)?
        .ok_or(ApiError::NotFound("credential"))?;
    if record.revoked.is_none() {
        append(
            store,
            Event::CredentialRevokedV1(CredentialRevokedV1 {
                key: key.to_owned(),
                revoked_micros: auth::now_micros(),
                reason: reason.to_owned(),
            }),
        )
        .await?;
    }
    store
        .credential(key)?
        .ok_or_else(|| ApiError::internal("credential missing after revocation"))
}

/// Appends an administrative event (tenants, roles, credentials, course
/// models, assignments, staff accounts): a store failure keeps its status,
/// anything else is internal.
pub(crate) async fn append(store: &Store, event: Event) -> Result<(), ApiError> {
    store.append_event(event).await.map_err(|e| match e {
        lrs_store::AppendError::Store(e) => e.into(),
        other => ApiError::internal(other),
    })?;
    Ok(())
}

// ---- JSON views (never a secret hash) ----

fn time(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

pub fn tenant_json(tenant: &TenantRecord) -> Value {
    let (kind, isil, appid) = match &tenant.kind {
        TenantKindV1::Kb => ("kb", None, None),
        TenantKindV1::Library { isil } => ("library", Some(isil), None),
        TenantKindV1::App { appid } => ("app", None, Some(appid)),
    };
    json!({"id": tenant.id, "name": tenant.name, "kind": kind, "isil": isil, "appid": appid,
           "defined": time(tenant.defined_micros)})
}

pub fn role_json(role: &RoleRecord) -> Value {
    json!({"name": role.name, "permissions": role.permissions, "defined": time(role.defined_micros)})
}

pub fn credential_json(record: &CredentialRecord) -> Value {
    let now = auth::now_micros();
    let status = if record.revoked.is_some() {
        "revoked"
    } else if record.expires_micros.is_some_and(|e| e <= now) {
        "expired"
    } else {
        "active"
    };
    json!({
        "key": record.key,
        "name": record.name,
        "tenant": record.tenant,
        "scopes": record.scopes,
        "roles": record.roles.iter().map(|g| json!({
            "role": g.role, "until": g.until_micros.map(time)
        })).collect::<Vec<_>>(),
        "allowed_networks": record.allowed_networks,
        "issued": time(record.issued_micros),
        "expires": record.expires_micros.map(time),
        "status": status,
        "previous_secret_valid_until": record.secrets.get(1)
            .and_then(|s| s.valid_until_micros).filter(|u| *u > now).map(time),
        "revoked": record.revoked.as_ref().map(|r| json!({
            "at": time(r.revoked_micros), "reason": r.reason
        })),
    })
}

// ---- routes ----

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/tenants", get(list_tenants))
        .route("/admin/tenants/{id}", put(put_tenant).get(get_tenant))
        .route("/admin/roles", get(list_roles))
        .route("/admin/roles/{name}", put(put_role).delete(delete_role))
        .route(
            "/admin/credentials",
            get(list_credentials).post(post_credential),
        )
        .route("/admin/credentials/{key}", get(get_credential))
        .route("/admin/credentials/{key}/rotate", post(rotate))
        .route("/admin/credentials/{key}/revoke", post(revoke))
}

fn body<T: for<'de> Deserialize<'de>>(bytes: &Bytes) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return serde_json::from_slice(b"{}").map_err(|e| {
            ApiError::bad_request(
                "$",
                "json.syntax",
                format!("a JSON object is required: {e}"),
            )
        });
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(
            format!("$ (line {}, column {})", e.line(), e.column()),
            "json.body",
            e.to_string(),
        )
    })
}

/// Every administrative change goes into the audit trail (besides the
/// request record the audit middleware writes).
fn recorded(state: &AppState, admin: &Admin, action: &str, target: &str) {
    tracing::info!(
        admin = %admin.0.key,
        tenant = %admin.0.tenant,
        action,
        target,
        "administrative action"
    );
    crate::audit::record_admin(state, &admin.0, action, target, 200);
}

async fn list_tenants(State(state): State<AppState>, admin: Admin) -> Result<Response, ApiError> {
    let tenants = state.store.tenants()?;
    let visible: Vec<Value> = tenants
        .iter()
        .filter(|t| admin.0.may("admin.tenants") || t.id == admin.0.tenant)
        .map(tenant_json)
        .collect();
    Ok(axum::Json(json!({ "tenants": visible })).into_response())
}

async fn get_tenant(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if !admin.0.may("admin.tenants") && admin.0.tenant != id {
        return Err(ApiError::NotFound("tenant"));
    }
    let tenant = state
        .store
        .tenant(&id)?
        .ok_or(ApiError::NotFound("tenant"))?;
    Ok(axum::Json(tenant_json(&tenant)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantBody {
    name: String,
    kind: String,
    #[serde(default)]
    isil: Option<String>,
    #[serde(default)]
    appid: Option<String>,
}

async fn put_tenant(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    admin.require("admin.tenants")?;
    let request: TenantBody = body(&bytes)?;
    let kind = tenant_kind(
        &request.kind,
        request.isil.as_deref(),
        request.appid.as_deref(),
    )?;
    let tenant = define_tenant(&state.store, &id, &request.name, kind).await?;
    recorded(&state, &admin, "tenant.define", &id);
    Ok(axum::Json(tenant_json(&tenant)).into_response())
}

async fn list_roles(State(state): State<AppState>, admin: Admin) -> Result<Response, ApiError> {
    admin.require("admin.roles")?;
    let roles: Vec<Value> = state.store.roles()?.iter().map(role_json).collect();
    Ok(axum::Json(json!({ "roles": roles })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    permissions: Vec<String>,
}

async fn put_role(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    admin.require("admin.roles")?;
    let request: RoleBody = body(&bytes)?;
    if request.permissions.is_empty() {
        return Err(ApiError::bad_request(
            "$.permissions",
            "role.permissions",
            "a role holds at least one permission (DELETE retires a role)",
        ));
    }
    // Nobody defines a role holding more than they hold themselves.
    if let Some(missing) = request.permissions.iter().find(|p| !admin.0.may(p)) {
        return Err(ApiError::Forbidden(format!(
            "permission {missing} (a role may only hold permissions its author holds)"
        )));
    }
    define_role(&state.store, &name, request.permissions).await?;
    recorded(&state, &admin, "role.define", &name);
    let role = state.store.role(&name)?.ok_or(ApiError::NotFound("role"))?;
    Ok(axum::Json(role_json(&role)).into_response())
}

async fn delete_role(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin.require("admin.roles")?;
    if state.store.role(&name)?.is_none() {
        return Err(ApiError::NotFound("role"));
    }
    define_role(&state.store, &name, Vec::new()).await?;
    recorded(&state, &admin, "role.retire", &name);
    Ok(StatusCode::NO_CONTENT)
}

async fn list_credentials(
    State(state): State<AppState>,
    admin: Admin,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let wanted_tenant = form_value(query.as_deref(), "tenant");
    let all = admin.0.may("admin.credentials.all");
    if !all {
        admin.require("admin.credentials")?;
    }
    let credentials: Vec<Value> = state
        .store
        .credentials()?
        .iter()
        .filter(|c| all || c.tenant == admin.0.tenant)
        .filter(|c| wanted_tenant.as_deref().is_none_or(|t| c.tenant == t))
        .map(credential_json)
        .collect();
    Ok(axum::Json(json!({ "credentials": credentials })).into_response())
}

fn form_value(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn get_credential(
    State(state): State<AppState>,
    admin: Admin,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let record = visible_credential(&state, &admin, &key)?;
    Ok(axum::Json(credential_json(&record)).into_response())
}

/// A credential the administrator may manage; any other looks absent.
fn visible_credential(
    state: &AppState,
    admin: &Admin,
    key: &str,
) -> Result<CredentialRecord, ApiError> {
    if !admin.0.may("admin.credentials") && !admin.0.may("admin.credentials.all") {
        return Err(ApiError::Forbidden("permission admin.credentials".into()));
    }
    let record = state
        .store
        .credential(key)?
        .ok_or(ApiError::NotFound("credential"))?;
    admin.require_credentials_of(&record.tenant)?;
    Ok(record)
}

async fn post_credential(
    State(state): State<AppState>,
    admin: Admin,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let request: IssueRequest = body(&bytes)?;
    admin
        .require_credentials_of(&request.tenant)
        .map_err(|e| match e {
            ApiError::NotFound(_) => ApiError::Forbidden(
                "permission admin.credentials.all (to issue for another tenant)".into(),
            ),
            other => other,
        })?;
    let (key, secret, record) = issue_credential(&state.store, request, Some(&admin.0)).await?;
    recorded(&state, &admin, "credential.issue", &key);
    let mut view = credential_json(&record);
    view["secret"] = json!(secret);
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(view),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    #[serde(default = "default_grace")]
    grace_seconds: i64,
    #[serde(default = "default_expiry_days")]
    expires_in_days: i64,
}

fn default_grace() -> i64 {
    86_400
}

async fn rotate(
    State(state): State<AppState>,
    admin: Admin,
    Path(key): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    visible_credential(&state, &admin, &key)?;
    let request: RotateBody = body(&bytes)?;
    let (secret, record) = rotate_credential(
        &state.store,
        &key,
        request.grace_seconds,
        request.expires_in_days,
    )
    .await?;
    recorded(&state, &admin, "credential.rotate", &key);
    let mut view = credential_json(&record);
    view["secret"] = json!(secret);
    Ok(([(header::CACHE_CONTROL, "no-store")], axum::Json(view)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    #[serde(default)]
    reason: String,
}

async fn revoke(
    State(state): State<AppState>,
    admin: Admin,
    Path(key): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    visible_credential(&state, &admin, &key)?;
    let request: RevokeBody = body(&bytes)?;
    let record = revoke_credential(&state.store, &key, &request.reason).await?;
    recorded(&state, &admin, "credential.revoke", &key);
    Ok(axum::Json(credential_json(&record)).into_response())
}
