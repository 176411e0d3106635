//! HTTP Basic authentication against issued credentials. Secrets are stored
//! only as argon2id hashes; `secret_verifier.rs` remembers a verified secret
//! (so the slow hash runs once per credential and process), shares one
//! argon2 run among concurrent checks, bounds how many run at once and
//! checks unknown keys against a dummy hash. Failed attempts count towards
//! the lockouts of `ratelimit::AuthGuard`, which refuse an attempt before
//! any hash runs.
//!
//! Bearer tokens are dispatched on their (unverified) issuer: ours
//! (`oauth.rs`, then the credential they name must still be active) or a
//! configured OpenID Connect provider's (`oidc.rs`).

use crate::error::ApiError;
use crate::ratelimit::{AuthGuard, AuthLimits};
use crate::secret_verifier::SecretVerifier;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use lrs_core::events::{CredentialIssuedV2, RoleGrantV1};
use lrs_projections::credentials::CredentialRecord;
use lrs_store::Store;
use rand::RngCore;
use std::sync::Arc;

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
    pub fn require_permission(&self, permission: &str) -> Result<(), ApiError> {
        if self.may(permission) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!("permission {permission}")))
        }
    }

    /// Fails with 403 unless the credential has one of `any`.
    pub fn require(&self, any: &[&str]) -> Result<(), ApiError> {
        if any.iter().any(|s| self.has_scope(s)) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(any.join(" or ")))
        }
    }
}

pub struct Authenticator {
    store: Arc<Store>,
    secrets: SecretVerifier,
    guard: Arc<AuthGuard>,
    /// Bearer tokens: our issuer and the external providers; `None`: Basic only.
    tokens: Option<Arc<crate::oauth::Tokens>>,
}

impl Authenticator {
    /// With the default failed-authentication limits.
    pub fn new(store: Arc<Store>) -> Self {
        Self::with_guard(store, Arc::new(AuthGuard::new(AuthLimits::default())))
    }

    pub fn with_guard(store: Arc<Store>, guard: Arc<AuthGuard>) -> Self {
        Self {
            store,
            secrets: SecretVerifier::default(),
            guard,
            tokens: None,
        }
    }

    /// Also accept bearer tokens (and serve the token endpoint).
    pub fn with_tokens(mut self, tokens: crate::oauth::Tokens) -> Self {
        self.tokens = Some(Arc::new(tokens));
        self
    }

    pub fn tokens(&self) -> Option<&crate::oauth::Tokens> {
        self.tokens.as_deref()
    }

    /// The lockouts (for their upkeep task).
    pub fn guard(&self) -> &Arc<AuthGuard> {
        &self.guard
    }

    /// Checks an `Authorization` header value. Every refusal is counted in
    /// `lrs_auth_failures_total` by reason.
    pub async fn authenticate(
        &self,
        header: Option<&str>,
        client: Option<std::net::IpAddr>,
    ) -> Result<Credential, ApiError> {
        use crate::metrics::AuthFailure;
        let refuse = |reason: AuthFailure, message: &'static str| {
            crate::metrics::auth_failure(reason);
            ApiError::Unauthorized(message)
        };
        let header =
            header.ok_or_else(|| refuse(AuthFailure::Missing, "send HTTP Basic credentials"))?;
        if let Some(token) = bearer_token(header) {
            return self.authenticate_bearer(token).await;
        }
        let malformed = || refuse(AuthFailure::Malformed, "malformed Basic credentials");
        let encoded = header
            .strip_prefix("Basic ")
            .or_else(|| header.strip_prefix("basic "))
            .ok_or_else(|| refuse(AuthFailure::Malformed, "use HTTP Basic or a Bearer token"))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| malformed())?;
        let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
        let (key, secret) = decoded.split_once(':').ok_or_else(malformed)?;
        self.verify_basic(key, secret, client).await
    }

    /// Checks a key and secret (HTTP Basic, or the client credentials of the
    /// OAuth token endpoint). A locked-out client gets 429 before anything
    /// is checked; an unknown key and a wrong secret get the same 401 after
    /// the same work (one argon2 run); an expired credential says so only
    /// to a caller that knows its secret.
    pub async fn verify_basic(
        &self,
        key: &str,
        secret: &str,
        client: Option<std::net::IpAddr>,
    ) -> Result<Credential, ApiError> {
        use crate::metrics::AuthFailure;
        let refuse = |reason: AuthFailure, message: &'static str| {
            crate::metrics::auth_failure(reason);
            ApiError::Unauthorized(message)
        };
        let locked = |refusal| self.guard.refused(refusal);
        self.guard.check(client, key).map_err(locked)?;
        let record = self.store.credential(key)?;
        let now = now_micros();
        // Secrets a rotation replaced stop matching when their grace ends.
        let hashes: Vec<String> = record
            .iter()
            .flat_map(|r| &r.secrets)
            .filter(|s| s.valid_until_micros.is_none_or(|until| until > now))
            .map(|s| s.hash.clone())
            .collect();
        let ok = self
            .secrets
            .verify(key, secret, &hashes, client, || {
                self.guard.check(client, key)
            })
            .await
            .map_err(locked)?;
        let record = match record {
            Some(record) if ok => record,
            record => {
                let known = record.is_some();
                self.guard.failed(client, key, known);
                tracing::warn!(
                    credential = %crate::ratelimit::loggable_key(key),
                    client = %crate::ratelimit::loggable_client(client),
                    "authentication failed"
                );
                let reason = if known {
                    AuthFailure::BadSecret
                } else {
                    AuthFailure::UnknownKey
                };
                return Err(refuse(reason, "unknown key or wrong secret"));
            }
        };
        self.guard.succeeded(client, key);
        // The secret is right: now the caller may learn why the credential
        // does not work any more.
        if record.revoked.is_some() {
            return Err(refuse(AuthFailure::Revoked, "credential has been revoked"));
        }
        if record.expires_micros.is_some_and(|expires| expires <= now) {
            return Err(refuse(AuthFailure::Expired, "credential has expired"));
        }
        if !address_allowed(&record.allowed_networks, client) {
            crate::metrics::auth_failure(AuthFailure::AddressNotAllowed);
            return Err(ApiError::Forbidden(
                "use from an address in the credential's allow-list".into(),
            ));
        }
        self.principal_of(record, now)
    }

    /// The principal a credential record stands for: its scopes, and the
    /// permissions of its roles whose grant has not ended.
    pub fn principal_of(&self, record: CredentialRecord, now: i64) -> Result<Credential, ApiError> {
        let mut permissions = Vec::new();
        for grant in &record.roles {
            if grant.until_micros.is_some_and(|until| until <= now) {
                continue;
            }
            if let Some(role) = self.store.role(&grant.role)? {
                permissions.extend(role.permissions);
            }
        }
        permissions.sort();
        permissions.dedup();
        Ok(Credential {
            key: record.key,
            name: record.name,
            tenant: record.tenant,
            scopes: record.scopes,
            permissions,
            expires_micros: record.expires_micros,
            method: AuthMethod::Basic,
        })
    }
}

/// Whether `client` may use a credential with this allow-list (empty: anywhere).
pub fn address_allowed(networks: &[String], client: Option<std::net::IpAddr>) -> bool {
    networks.is_empty()
        || client.is_some_and(|ip| {
            networks
                .iter()
                .filter_map(|n| n.parse::<ipnet::IpNet>().ok())
                .any(|net| net.contains(&ip))
        })
}

impl Authenticator {
    /// `Authorization: Bearer <jwt>`: verified by the issuer it names, ours
    /// or a configured provider's; any other issuer is refused.
    async fn authenticate_bearer(&self, token: &str) -> Result<Credential, ApiError> {
        use crate::metrics::AuthFailure;
        let invalid = |reason: &'static str| {
            crate::metrics::auth_failure(AuthFailure::InvalidToken);
            ApiError::InvalidToken(reason)
        };
        let tokens = self
            .tokens
            .as_deref()
            .ok_or_else(|| invalid("bearer tokens are not accepted here"))?;
        let issuer = crate::oauth::unverified_issuer(token).map_err(invalid)?;
        if issuer == tokens.local.issuer() {
            let claims = tokens.local.verify(token).map_err(invalid)?;
            let mut principal = self.active_credential(&claims.sub)?;
            // The token's scopes, as far as the credential still holds them.
            let scopes = claims
                .scopes()
                .filter(|s| crate::oauth::covers(&principal, s))
                .map(str::to_owned)
                .collect();
            principal.scopes = scopes;
            principal.method = AuthMethod::LocalToken;
            let token_expires = i64::try_from(claims.exp)
                .unwrap_or(i64::MAX / 1_000_000)
                .saturating_mul(1_000_000);
            principal.expires_micros = Some(
                principal
                    .expires_micros
                    .map_or(token_expires, |e| e.min(token_expires)),
            );
            return Ok(principal);
        }
        match tokens.oidc.provider(&issuer) {
            Some(provider) => provider.authenticate(token).await.inspect_err(|error| {
                if matches!(error, ApiError::InvalidToken(_)) {
                    crate::metrics::auth_failure(AuthFailure::InvalidToken);
                }
            }),
            None => Err(invalid("the token's issuer is not trusted")),
        }
    }

    /// The credential `key`, if it may still be used: a token issued to it
    /// is re-checked on every request, so its expiry (and revocation) takes
    /// effect on the next request, not when the token expires.
    pub fn active_credential(&self, key: &str) -> Result<Credential, ApiError> {
        use crate::metrics::AuthFailure;
        let refuse = |reason: AuthFailure, message: &'static str| {
            crate::metrics::auth_failure(reason);
            ApiError::Unauthorized(message)
        };
        let record = self
            .store
            .credential(key)?
            .ok_or_else(|| refuse(AuthFailure::UnknownKey, "the credential does not exist"))?;
        let now = now_micros();
        if record.revoked.is_some() {
            return Err(refuse(AuthFailure::Revoked, "credential has been revoked"));
        }
        if record.expires_micros.is_some_and(|expires| expires <= now) {
            return Err(refuse(AuthFailure::Expired, "credential has expired"));
        }
        self.principal_of(record, now)
    }
}

/// The token of an `Authorization: Bearer` value (scheme case-insensitive).
fn bearer_token(header: &str) -> Option<&str> {
    let header = header.trim();
    let (scheme, token) = header.split_once(' ').unwrap_or((header, ""));
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

pub fn hash_secret(secret: &str) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .expect("argon2 hashes any input")
        .to_string()
}

pub(crate) fn verify_secret(phc: &str, secret: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(secret.as_bytes(), &hash)
            .is_ok()
    })
}

/// What a new credential may do.
#[derive(Debug, Clone)]
pub struct CredentialSpec {
    pub name: String,
    pub tenant: String,
    pub scopes: Vec<String>,
    pub roles: Vec<RoleGrantV1>,
    pub allowed_networks: Vec<String>,
    pub expires_micros: i64,
}

/// A fresh secret from the OS's secure source and its argon2id hash.
pub fn new_secret() -> (String, String) {
    let mut secret_bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret_bytes);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret_bytes);
    let hash = hash_secret(&secret);
    (secret, hash)
}

/// A new credential: random key and secret (from the OS's secure source),
/// and the event that records it (with only the secret's hash).
pub fn issue(spec: CredentialSpec) -> (String, String, CredentialIssuedV2) {
    let mut key_bytes = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut key_bytes);
    let key = format!("lrs_{}", hex::encode(key_bytes));
    let (secret, secret_hash) = new_secret();
    let event = CredentialIssuedV2 {
        key: key.clone(),
        secret_hash,
        name: spec.name,
        tenant: spec.tenant,
        scopes: spec.scopes,
        roles: spec.roles,
        allowed_networks: spec.allowed_networks,
        issued_micros: now_micros(),
        expires_micros: spec.expires_micros,
    };
    (key, secret, event)
}
