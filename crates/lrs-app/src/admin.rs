//! Administration of tenants, roles and credentials: the operations the HTTP
//! API under `/admin` and the `lrs` command line share, and their JSON views.
//!
//! Every change is an event in the log; the read models in
//! `lrs_projections::credentials` answer the lookups. Least privilege: an
//! administrator manages credentials of their own tenant unless they hold
//! `admin.credentials.all`, and never grants a role with a permission they
//! do not hold themselves.

use crate::error::AppError;
use crate::principal::{Credential, SCOPES};
use crate::secrets::{self, CredentialSpec};
use crate::tenancy::{is_appid, is_isil};
use lrs_core::clock::now_micros;
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
    "figures.close",
    "progress.read",
    "progress.read.own",
    "progress.assign",
    "course_model.read",
    "course_model.write",
    // SQL over the analytics Parquet files (docs/analytics.md).
    "analytics.sql",
    // Erasure, access, retention and reports (docs/privacy.md).
    "privacy.erase",
    "privacy.access",
    "privacy.retention",
    "privacy.reports",
];

const DAY_MICROS: i64 = 86_400 * 1_000_000;
/// Longest a credential may live: keys must be rotated at least yearly.
pub const MAX_EXPIRY_DAYS: i64 = 366;
/// Longest grace period of a rotation, seconds.
pub const MAX_GRACE_SECONDS: i64 = 30 * 86_400;

// ---- operations (HTTP and CLI) ----

/// A tenant's kind as the API and CLI spell it.
pub fn tenant_kind(
    kind: &str,
    isil: Option<&str>,
    appid: Option<&str>,
) -> Result<TenantKindV1, AppError> {
    match (kind, isil, appid) {
        ("kb", None, None) => Ok(TenantKindV1::Kb),
        ("library", Some(isil), None) if is_isil(isil) => Ok(TenantKindV1::Library {
            isil: isil.to_owned(),
        }),
        ("library", Some(isil), None) => Err(AppError::bad_request(
            "$.isil",
            "tenant.isil",
            format!("{isil:?} is not an ISIL (ISO 15511, e.g. NL-0100030000)"),
        )),
        ("app", None, Some(appid)) if is_appid(appid) => Ok(TenantKindV1::App {
            appid: appid.to_owned(),
        }),
        ("app", None, Some(_)) => Err(AppError::bad_request(
            "$.appid",
            "tenant.appid",
            "an appid is 1 to 128 printable characters without spaces",
        )),
        _ => Err(AppError::bad_request(
            "$.kind",
            "tenant.kind",
            "kind is \"kb\" (no isil, no appid), \"library\" (with isil) or \"app\" (with appid)",
        )),
    }
}

fn check_id(path: &str, what: &str, id: &str) -> Result<(), AppError> {
    let ok = (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(AppError::bad_request(
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
) -> Result<TenantRecord, AppError> {
    check_id("tenant", "tenant", id)?;
    if let Some(existing) = store.tenant(id)? {
        if existing.kind != kind {
            return Err(AppError::Conflict(format!(
                "tenant {id:?} is already defined with another kind ({:?}); a tenant's kind never changes",
                existing.kind
            )));
        }
    }
    if let TenantKindV1::Library { isil } = &kind {
        if let Some(other) = store.tenants()?.into_iter().find(|t| {
            t.id != id && matches!(&t.kind, TenantKindV1::Library { isil: i } if i == isil)
        }) {
            return Err(AppError::Conflict(format!(
                "ISIL {isil} already belongs to tenant {:?}",
                other.id
            )));
        }
    }
    let event = TenantDefinedV1 {
        id: id.to_owned(),
        name: name.to_owned(),
        kind,
        defined_micros: now_micros(),
    };
    append(store, Event::TenantDefinedV1(event)).await?;
    store
        .tenant(id)?
        .ok_or_else(|| AppError::internal("tenant missing after definition"))
}

/// Defines a role (its whole permission set); an empty set retires it.
pub async fn define_role(
    store: &Store,
    name: &str,
    permissions: Vec<String>,
) -> Result<(), AppError> {
    check_id("role", "role", name)?;
    if let Some((i, unknown)) = permissions
        .iter()
        .enumerate()
        .find(|(_, p)| !PERMISSIONS.contains(&p.as_str()))
    {
        return Err(AppError::bad_request(
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
        defined_micros: now_micros(),
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

pub fn default_expiry_days() -> i64 {
    365
}

fn parse_time(path: &str, value: &str) -> Result<i64, AppError> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_micros())
        .map_err(|e| {
            AppError::bad_request(
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
) -> Result<(String, String, CredentialRecord), AppError> {
    if request.name.trim().is_empty() || request.name.len() > 200 {
        return Err(AppError::bad_request(
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
        .find(|(_, s)| !SCOPES.contains(&s.as_str()))
    {
        return Err(AppError::bad_request(
            format!("$.scopes[{i}]"),
            "credential.scope",
            format!("unknown scope {unknown:?}; known: {}", SCOPES.join(", ")),
        ));
    }
    for (i, network) in request.allowed_networks.iter().enumerate() {
        if network.parse::<ipnet::IpNet>().is_err() && network.parse::<std::net::IpAddr>().is_err()
        {
            return Err(AppError::bad_request(
                format!("$.allowed_networks[{i}]"),
                "credential.network",
                format!("{network:?} is not an address or CIDR network (e.g. 192.0.2.0/24)"),
            ));
        }
    }
    let now = now_micros();
    let expires_micros = match &request.expires_at {
        Some(at) => {
            let at_micros = parse_time("$.expires_at", at)?;
            if at_micros <= now || at_micros > now + MAX_EXPIRY_DAYS * DAY_MICROS {
                return Err(AppError::bad_request(
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
            return Err(AppError::bad_request(
                "$.expires_in_days",
                "credential.expiry",
                format!("a credential expires within 1 to {MAX_EXPIRY_DAYS} days"),
            ))
        }
    };
    let mut roles = Vec::new();
    for (i, grant) in request.roles.iter().enumerate() {
        let Some(role) = store.role(&grant.role)? else {
            return Err(AppError::bad_request(
                format!("$.roles[{i}].role"),
                "credential.role",
                format!("no role {:?}; define it first", grant.role),
            ));
        };
        if let Some(granter) = granter {
            if let Some(missing) = role.permissions.iter().find(|p| !granter.may(p)) {
                return Err(AppError::Forbidden(format!(
                    "permission {missing} (granting role {} needs every permission it holds)",
                    role.name
                )));
            }
        }
        let until_micros = match &grant.until {
            Some(until) => {
                let until = parse_time(&format!("$.roles[{i}].until"), until)?;
                if until <= now {
                    return Err(AppError::bad_request(
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
    let (key, secret, event) = secrets::issue(CredentialSpec {
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
        .ok_or_else(|| AppError::internal("credential missing after issue"))?;
    Ok((key, secret, record))
}

/// A new secret for a credential; the old one works `grace_seconds` more.
/// The expiry moves to a year (at most) from now.
pub async fn rotate_credential(
    store: &Store,
    key: &str,
    grace_seconds: i64,
    expires_in_days: i64,
) -> Result<(String, CredentialRecord), AppError> {
    if !(0..=MAX_GRACE_SECONDS).contains(&grace_seconds) {
        return Err(AppError::bad_request(
            "$.grace_seconds",
            "rotation.grace",
            format!("the grace period is 0 to {MAX_GRACE_SECONDS} seconds (30 days)"),
        ));
    }
    if !(1..=MAX_EXPIRY_DAYS).contains(&expires_in_days) {
        return Err(AppError::bad_request(
            "$.expires_in_days",
            "credential.expiry",
            format!("a credential expires within 1 to {MAX_EXPIRY_DAYS} days"),
        ));
    }
    let record = store
        .credential(key)?
        .ok_or(AppError::NotFound("credential"))?;
    if record.revoked.is_some() {
        return Err(AppError::Conflict(
            "a revoked credential cannot be rotated; issue a new one".into(),
        ));
    }
    let now = now_micros();
    let (secret, secret_hash) = secrets::new_secret();
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
        .ok_or_else(|| AppError::internal("credential missing after rotation"))?;
    Ok((secret, record))
}

/// Revokes a credential: refused from the next request on.
pub async fn revoke_credential(
    store: &Store,
    key: &str,
    reason: &str,
) -> Result<CredentialRecord, AppError> {
    let record = store
        .credential(key)?
        .ok_or(AppError::NotFound("credential"))?;
    if record.revoked.is_none() {
        append(
            store,
            Event::CredentialRevokedV1(CredentialRevokedV1 {
                key: key.to_owned(),
                revoked_micros: now_micros(),
                reason: reason.to_owned(),
            }),
        )
        .await?;
    }
    store
        .credential(key)?
        .ok_or_else(|| AppError::internal("credential missing after revocation"))
}

/// Appends an administrative event (tenants, roles, credentials, course
/// models, assignments, staff accounts): a store failure keeps its status,
/// anything else is internal.
pub async fn append(store: &Store, event: Event) -> Result<(), AppError> {
    store.append_event(event).await.map_err(|e| match e {
        lrs_store::AppendError::Store(e) => e.into(),
        other => AppError::internal(other),
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
    let now = now_micros();
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
