//! `/admin`: tenants, roles and credentials over HTTP. The operations are
//! `lrs_app::admin`'s (the command line calls the same); here only the
//! bodies, the per-tenant visibility and the audit records of each change.

use crate::api::state::ApiState;
use crate::error::ApiError;
use crate::request::routes::{Operation, RouteTable};
use crate::security::audit::record_admin;
use crate::security::extract::{Admin, AdminRoles, AdminTenants, AuthState, Permitted};
use axum::body::Bytes;
use axum::extract::{FromRef, Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use lrs_app::admin::{
    credential_json, define_role, define_tenant, issue_credential, revoke_credential, role_json,
    rotate_credential, tenant_json, tenant_kind, IssueRequest,
};
use lrs_app::principal::Credential;
use lrs_projections::credentials::CredentialRecord;
use serde::Deserialize;
use serde_json::{json, Value};

/// What an administrator may do to credentials, on top of being one.
trait CredentialsAdmin {
    fn require_credentials_of(&self, tenant: &str) -> Result<(), ApiError>;
}

impl CredentialsAdmin for Admin {
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

/// The `/admin/v1` routes of tenants, roles and credentials.
pub fn routes<S>(table: RouteTable<S>) -> RouteTable<S>
where
    ApiState: FromRef<S>,
    AuthState: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    const TAG: &str = "admin";
    table
        .get(
            "/admin/v1/tenants",
            list_tenants,
            Operation::new(TAG, "The tenants the administrator may see")
                .answers(200, "`{\"tenants\": [...]}`"),
        )
        .put(
            "/admin/v1/tenants/{id}",
            put_tenant,
            Operation::new(TAG, "Define or change a tenant (permission admin.tenants)")
                .json_body(
                    "`{\"name\", \"kind\": \"kb\"|\"library\"|\"app\", \"isil\"?, \"appid\"?}`",
                )
                .answers(200, "The tenant as stored"),
        )
        .get(
            "/admin/v1/tenants/{id}",
            get_tenant,
            Operation::new(TAG, "One tenant").answers(200, "The tenant"),
        )
        .get(
            "/admin/v1/roles",
            list_roles,
            Operation::new(TAG, "The roles and their permissions")
                .answers(200, "`{\"roles\": [...]}`"),
        )
        .put(
            "/admin/v1/roles/{name}",
            put_role,
            Operation::new(TAG, "Define or change a role (permission admin.roles)")
                .json_body("`{\"permissions\": [...]}`")
                .answers(200, "The role as stored"),
        )
        .delete(
            "/admin/v1/roles/{name}",
            delete_role,
            Operation::new(TAG, "Remove a role").answers_as(204, "", "Removed"),
        )
        .get(
            "/admin/v1/credentials",
            list_credentials,
            Operation::new(
                TAG,
                "The credentials the administrator manages (never a secret)",
            )
            .query("tenant", "Only this tenant's credentials")
            .answers(200, "`{\"credentials\": [...]}`"),
        )
        .post(
            "/admin/v1/credentials",
            post_credential,
            Operation::new(TAG, "Issue a credential; the answer holds its secret, once")
                .json_body("The tenant, scopes or role, name and expiry of the credential")
                .answers(201, "The credential with its key and secret"),
        )
        .get(
            "/admin/v1/credentials/{key}",
            get_credential,
            Operation::new(TAG, "One credential (never its secret)").answers(200, "The credential"),
        )
        .post(
            "/admin/v1/credentials/{key}/rotate",
            rotate,
            Operation::new(TAG, "A new secret; the old one works for a grace period")
                .json_body("`{\"grace_seconds\"?, \"expires_in_days\"?}`")
                .answers(200, "The credential with its new secret, once"),
        )
        .post(
            "/admin/v1/credentials/{key}/revoke",
            revoke,
            Operation::new(TAG, "Revoke a credential")
                .json_body("`{\"reason\"}`")
                .answers(200, "The revoked credential"),
        )
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
fn recorded(state: &ApiState, admin: &Credential, action: &str, target: &str) {
    tracing::info!(
        admin = %admin.key,
        tenant = %admin.tenant,
        action,
        target,
        "administrative action"
    );
    record_admin(&state.audit, admin, action, target, 200);
}

async fn list_tenants(State(state): State<ApiState>, admin: Admin) -> Result<Response, ApiError> {
    let tenants = state.store.tenants()?;
    let visible: Vec<Value> = tenants
        .iter()
        .filter(|t| admin.0.may("admin.tenants") || t.id == admin.0.tenant)
        .map(tenant_json)
        .collect();
    Ok(axum::Json(json!({ "tenants": visible })).into_response())
}

async fn get_tenant(
    State(state): State<ApiState>,
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
    State(state): State<ApiState>,
    Permitted(admin, _): Permitted<AdminTenants>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
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

async fn list_roles(
    State(state): State<ApiState>,
    Permitted(_, _): Permitted<AdminRoles>,
) -> Result<Response, ApiError> {
    let roles: Vec<Value> = state.store.roles()?.iter().map(role_json).collect();
    Ok(axum::Json(json!({ "roles": roles })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    permissions: Vec<String>,
}

async fn put_role(
    State(state): State<ApiState>,
    Permitted(admin, _): Permitted<AdminRoles>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let request: RoleBody = body(&bytes)?;
    if request.permissions.is_empty() {
        return Err(ApiError::bad_request(
            "$.permissions",
            "role.permissions",
            "a role holds at least one permission (DELETE retires a role)",
        ));
    }
    // Nobody defines a role holding more than they hold themselves.
    if let Some(missing) = request.permissions.iter().find(|p| !admin.may(p)) {
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
    State(state): State<ApiState>,
    Permitted(admin, _): Permitted<AdminRoles>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.role(&name)?.is_none() {
        return Err(ApiError::NotFound("role"));
    }
    define_role(&state.store, &name, Vec::new()).await?;
    recorded(&state, &admin, "role.retire", &name);
    Ok(StatusCode::NO_CONTENT)
}

async fn list_credentials(
    State(state): State<ApiState>,
    admin: Admin,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let wanted_tenant = form_value(query.as_deref(), "tenant");
    let all = admin.0.may("admin.credentials.all");
    if !all {
        admin.0.require_permission("admin.credentials")?;
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
    State(state): State<ApiState>,
    admin: Admin,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let record = visible_credential(&state, &admin, &key)?;
    Ok(axum::Json(credential_json(&record)).into_response())
}

/// A credential the administrator may manage; any other looks absent.
fn visible_credential(
    state: &ApiState,
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
    State(state): State<ApiState>,
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
    recorded(&state, &admin.0, "credential.issue", &key);
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
    #[serde(default = "lrs_app::admin::default_expiry_days")]
    expires_in_days: i64,
}

fn default_grace() -> i64 {
    86_400
}

async fn rotate(
    State(state): State<ApiState>,
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
    recorded(&state, &admin.0, "credential.rotate", &key);
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
    State(state): State<ApiState>,
    admin: Admin,
    Path(key): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    visible_credential(&state, &admin, &key)?;
    let request: RevokeBody = body(&bytes)?;
    let record = revoke_credential(&state.store, &key, &request.reason).await?;
    recorded(&state, &admin.0, "credential.revoke", &key);
    Ok(axum::Json(credential_json(&record)).into_response())
}
