//! Who is calling: the principal every operation, route and audit record
//! sees, whatever proved it (HTTP Basic, a bearer token, a staff session),
//! with its xAPI scopes and its administrative permissions.

use crate::error::AppError;

/// The xAPI OAuth scopes (xAPI 1.0.3 Communication 4.2).
pub const SCOPES: &[&str] = &[
    "statements/write",
    "statements/read",
    "statements/read/mine",
    "all/read",
    "all",
    "state",
    "define",
    "profile",
];

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// HTTP Basic with an issued key and secret.
    Basic,
    /// A bearer token this server issued (OAuth 2.0 client credentials).
    LocalToken,
    /// A bearer token of a configured external OpenID Connect provider.
    ExternalToken,
    /// A staff web session after password and TOTP (`web/`).
    StaffSession,
    /// A staff web session after an OpenID Connect login (`web/oidc_login.rs`).
    StaffOidcSession,
    /// A learner's web session after an OpenID Connect login: their own
    /// progress page only (`web/progress.rs`).
    LearnerOidcSession,
}

/// Who is calling: the principal every route and the audit trail see.
#[derive(Debug, Clone)]
pub struct Credential {
    /// The principal's stable id: the credential key for Basic and for
    /// tokens issued to a credential; `oidc:<issuer>#<subject>` for tokens of
    /// an external provider. `statements/read/mine` matches on it.
    pub key: String,
    pub name: String,
    pub tenant: String,
    /// xAPI OAuth scopes (Communication 4.2).
    pub scopes: Vec<String>,
    /// Administrative permissions, from the principal's roles (RBAC).
    pub permissions: Vec<String>,
    pub expires_micros: Option<i64>,
    pub method: AuthMethod,
}

impl Credential {
    /// Whether the principal holds `wanted`, directly or through a broader
    /// scope: `all` holds everything, `all/read` every read scope,
    /// `statements/read` holds `statements/read/mine`.
    pub fn has_scope(&self, wanted: &str) -> bool {
        let is_read = wanted.ends_with("/read") || wanted == "statements/read/mine";
        self.scopes.iter().any(|s| {
            s == wanted
                || s == "all"
                || (s == "all/read" && is_read)
                || (s == "statements/read" && wanted == "statements/read/mine")
        })
    }

    /// Whether the principal holds an administrative permission.
    pub fn may(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }

    /// Fails with 403, naming the permission, unless the principal holds it.
    pub fn require_permission(&self, permission: &str) -> Result<(), AppError> {
        if self.may(permission) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!("permission {permission}")))
        }
    }

    /// Fails with 403 unless the credential has one of `any`.
    pub fn require(&self, any: &[&str]) -> Result<(), AppError> {
        if any.iter().any(|s| self.has_scope(s)) {
            Ok(())
        } else {
            Err(AppError::Forbidden(any.join(" or ")))
        }
    }
}
