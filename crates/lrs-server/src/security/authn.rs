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
use crate::security::ratelimit::{AuthGuard, AuthLimits};
use crate::security::secret_verifier::SecretVerifier;
use base64::Engine;
use lrs_app::principal::{AuthMethod, Credential};
use lrs_core::clock::now_micros;
use lrs_projections::credentials::CredentialRecord;
use lrs_store::Store;
use std::sync::Arc;

pub struct Authenticator {
    store: Arc<Store>,
    secrets: SecretVerifier,
    guard: Arc<AuthGuard>,
    /// Bearer tokens: our issuer and the external providers; `None`: Basic only.
    tokens: Option<Arc<crate::security::tokens::Tokens>>,
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
    pub fn with_tokens(mut self, tokens: crate::security::tokens::Tokens) -> Self {
        self.tokens = Some(Arc::new(tokens));
        self
    }

    pub fn tokens(&self) -> Option<&crate::security::tokens::Tokens> {
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
        use crate::ops::counters::AuthFailure;
        let refuse = |reason: AuthFailure, message: &'static str| {
            crate::ops::counters::auth_failure(reason);
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
        use crate::ops::counters::AuthFailure;
        let refuse = |reason: AuthFailure, message: &'static str| {
            crate::ops::counters::auth_failure(reason);
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
                    credential = %crate::security::ratelimit::loggable_key(key),
                    client = %crate::security::ratelimit::loggable_client(client),
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
            crate::ops::counters::auth_failure(AuthFailure::AddressNotAllowed);
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
        use crate::ops::counters::AuthFailure;
        let invalid = |reason: &'static str| {
            crate::ops::counters::auth_failure(AuthFailure::InvalidToken);
            ApiError::InvalidToken(reason)
        };
        let tokens = self
            .tokens
            .as_deref()
            .ok_or_else(|| invalid("bearer tokens are not accepted here"))?;
        let issuer = crate::security::jwt::unverified_issuer(token).map_err(invalid)?;
        if issuer == tokens.local.issuer() {
            let claims = tokens.local.verify(token).map_err(invalid)?;
            let mut principal = self.active_credential(&claims.sub)?;
            // The token's scopes, as far as the credential still holds them.
            let scopes = claims
                .scopes()
                .filter(|s| crate::security::tokens::covers(&principal, s))
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
                    crate::ops::counters::auth_failure(AuthFailure::InvalidToken);
                }
            }),
            None => Err(invalid("the token's issuer is not trusted")),
        }
    }

    /// The credential `key`, if it may still be used: a token issued to it
    /// is re-checked on every request, so its expiry (and revocation) takes
    /// effect on the next request, not when the token expires.
    pub fn active_credential(&self, key: &str) -> Result<Credential, ApiError> {
        use crate::ops::counters::AuthFailure;
        let refuse = |reason: AuthFailure, message: &'static str| {
            crate::ops::counters::auth_failure(reason);
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
