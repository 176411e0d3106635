//! `GET /admin/audit`: a page of the audit trail, for the caller's own
//! tenant (`audit.read`) or every tenant (`audit.read.all`, or a key named
//! by `--audit-reader`). The trail and its middleware are `security::audit`.

use crate::api::state::ApiState;
use crate::error::ApiError;
use crate::request::params::Params;
use crate::request::routes::{Operation, RouteTable};
use crate::security::audit::note_target;
use crate::security::extract::{authenticate_principal, AuthState};
use axum::extract::{FromRef, Request, State};
use axum::response::{IntoResponse, Response};
use lrs_app::principal::Credential;
use lrs_store::audit::AuditQuery;
use serde_json::json;

/// Read the audit records of one's own tenant.
pub const PERMISSION_READ: &str = "audit.read";

/// Read the audit records of every tenant, and the trail's own records.
pub const PERMISSION_READ_ALL: &str = "audit.read.all";

const DEFAULT_PAGE: usize = 100;

const MAX_PAGE: usize = 1000;

/// The `/admin/v1/audit` route, itself audited.
pub fn routes<S>(table: RouteTable<S>) -> RouteTable<S>
where
    ApiState: FromRef<S>,
    AuthState: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    table.get(
        "/admin/v1/audit",
        get_audit,
        Operation::new("audit", "A page of the audit trail")
            .describe("audit.read reads the caller's own tenant, audit.read.all (or a key named by --audit-reader) every tenant.")
            .query("since", "From this time (RFC 3339)")
            .query("until", "Before this time (RFC 3339)")
            .query("tenant", "Only this tenant's records")
            .query("principal", "Only this principal's records")
            .query("action", "Only records of this action")
            .query("limit", "Records per page (at most 1000; default 100)")
            .query("after", "The sequence number after which the page starts")
            .answers(200, "`{\"records\": [...], \"more\": next page's URL or null}`"),
    )
}

/// `GET /admin/audit?since=&until=&tenant=&principal=&action=&limit=&after=`:
/// a page of records in sequence order, and `more` (the next page's URL,
/// or null). `audit.read` reads the caller's own tenant only,
/// `audit.read.all` (or a key in `--audit-reader`) every tenant.
pub async fn get_audit(
    State(state): State<ApiState>,
    State(auth): State<AuthState>,
    request: Request,
) -> Response {
    match read_audit(&state, &auth, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn read_audit(
    state: &ApiState,
    auth: &AuthState,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, _) = request.into_parts();
    let credential = authenticate_principal(&parts, auth).await?;
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
        tokio::task::spawn_blocking(move || audit.read(&query, limit))
            .await
            .map_err(ApiError::internal)??
    };
    let more = page.next_after.map(|after| {
        let mut url = form_urlencoded::Serializer::new(String::new());
        for (key, value) in params.iter().filter(|(key, _)| *key != "after") {
            url.append_pair(key, value);
        }
        url.append_pair("after", &after.to_string());
        format!("{}?{}", parts.uri.path(), url.finish())
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

#[cfg(test)]
mod tests {
    use super::*;
    use lrs_app::principal::AuthMethod;

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
}
