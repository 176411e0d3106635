//! HTTP Basic authentication against issued credentials. Secrets are stored
//! only as argon2id hashes; a successful check is remembered as a keyed hash
//! (under a key that lives only in this process) so that the slow hash runs
//! once per credential and process, not once per request.
//!
//! Bearer tokens are dispatched on their (unverified) issuer: ours
//! (`oauth.rs`, then the credential they name must still be active) or a
//! configured OpenID Connect provider's (`oidc.rs`).

use crate::error::ApiError;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use hmac::{Hmac, Mac};
use lrs_core::events::CredentialIssuedV1;
use lrs_store::Store;
use rand::RngCore;
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

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
    pub fn has_scope(&self, wanted: &str) -> bool {
        self.scopes
            .iter()
            .any(|s| s == wanted || s == "all" || (s == "all/read" && wanted.ends_with("/read")))
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
    process_key: [u8; 32],
    verified: RwLock<HashMap<String, [u8; 32]>>,
    /// Bearer tokens: our issuer and the external providers; `None`: Basic only.
    tokens: Option<Arc<crate::oauth::Tokens>>,
}

impl Authenticator {
    pub fn new(store: Arc<Store>) -> Self {
        let mut process_key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut process_key);
        Self {
            store,
            process_key,
            verified: RwLock::new(HashMap::new()),
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

    fn remembered(&self, secret: &str) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.process_key).expect("any key length");
        mac.update(secret.as_bytes());
        mac.finalize().into_bytes().into()
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
    /// OAuth token endpoint).
    pub async fn verify_basic(
        &self,
        key: &str,
        secret: &str,
        _client: Option<std::net::IpAddr>,
    ) -> Result<Credential, ApiError> {
        use crate::metrics::AuthFailure;
        let refuse = |reason: AuthFailure, message: &'static str| {
            crate::metrics::auth_failure(reason);
            ApiError::Unauthorized(message)
        };
        let record = self
            .store
            .credential(key)?
            .ok_or_else(|| refuse(AuthFailure::UnknownKey, "unknown key or wrong secret"))?;
        let now = now_micros();
        if record.expires_micros.is_some_and(|expires| expires <= now) {
            return Err(refuse(AuthFailure::Expired, "credential has expired"));
        }
        let remembered = self.remembered(secret);
        let known = self.verified.read().expect("auth cache").get(key).copied();
        let ok = match known {
            Some(hash) => constant_time_eq(&hash, &remembered),
            None => {
                let (phc, secret) = (record.secret_hash.clone(), secret.to_owned());
                let ok = tokio::task::spawn_blocking(move || verify_secret(&phc, &secret))
                    .await
                    .map_err(ApiError::internal)?;
                if ok {
                    self.verified
                        .write()
                        .expect("auth cache")
                        .insert(key.to_owned(), remembered);
                }
                ok
            }
        };
        if !ok {
            tracing::warn!(credential = key, "authentication failed");
            return Err(refuse(
                AuthFailure::BadSecret,
                "unknown key or wrong secret",
            ));
        }
        Ok(credential_of(record))
    }
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
        if record
            .expires_micros
            .is_some_and(|expires| expires <= now_micros())
        {
            return Err(refuse(AuthFailure::Expired, "credential has expired"));
        }
        Ok(credential_of(record))
    }
}

/// The token of an `Authorization: Bearer` value (scheme case-insensitive).
fn bearer_token(header: &str) -> Option<&str> {
    let header = header.trim();
    let (scheme, token) = header.split_once(' ').unwrap_or((header, ""));
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn credential_of(record: CredentialIssuedV1) -> Credential {
    Credential {
        key: record.key,
        name: record.name,
        tenant: record.tenant,
        scopes: record.scopes,
        permissions: Vec::new(),
        expires_micros: record.expires_micros,
        method: AuthMethod::Basic,
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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

fn verify_secret(phc: &str, secret: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(secret.as_bytes(), &hash)
            .is_ok()
    })
}

/// A new credential: random key and secret (from the OS's secure source),
/// and the event that records it (with only the secret's hash).
pub fn issue(
    name: &str,
    tenant: &str,
    scopes: Vec<String>,
    expires_micros: Option<i64>,
) -> (String, String, CredentialIssuedV1) {
    let mut key_bytes = [0u8; 12];
    let mut secret_bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key_bytes);
    rand::rngs::OsRng.fill_bytes(&mut secret_bytes);
    let key = format!("lrs_{}", hex::encode(key_bytes));
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret_bytes);
    let event = CredentialIssuedV1 {
        key: key.clone(),
        secret_hash: hash_secret(&secret),
        name: name.to_owned(),
        tenant: tenant.to_owned(),
        scopes,
        issued_micros: now_micros(),
        expires_micros,
    };
    (key, secret, event)
}
