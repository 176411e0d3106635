//! HTTP Basic authentication against issued credentials. Secrets are stored
//! only as argon2id hashes; a successful check is remembered as a keyed hash
//! (under a key that lives only in this process) so that the slow hash runs
//! once per credential and process, not once per request.

use crate::error::ApiError;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use hmac::{Hmac, Mac};
use lrs_core::events::{CredentialIssuedV2, RoleGrantV1};
use lrs_projections::credentials::CredentialRecord;
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

    /// Fails with 403 unless the credential has one of `any`.
    pub fn require(&self, any: &[&str]) -> Result<(), ApiError> {
        if any.iter().any(|s| self.has_scope(s)) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(any.join(" or ")))
        }
    }
}

/// A keyed hash of a secret that verified, and the PHC string it matched.
type VerifiedSecret = ([u8; 32], String);

pub struct Authenticator {
    store: Arc<Store>,
    process_key: [u8; 32],
    /// Per key: keyed hashes of secrets that verified, with the PHC string
    /// each matched (a rotation leaves two valid secrets for a while).
    verified: RwLock<HashMap<String, Vec<VerifiedSecret>>>,
}

impl Authenticator {
    pub fn new(store: Arc<Store>) -> Self {
        let mut process_key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut process_key);
        Self {
            store,
            process_key,
            verified: RwLock::new(HashMap::new()),
        }
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
        let malformed = || refuse(AuthFailure::Malformed, "malformed Basic credentials");
        let encoded = header
            .strip_prefix("Basic ")
            .or_else(|| header.strip_prefix("basic "))
            .ok_or_else(|| refuse(AuthFailure::Malformed, "only HTTP Basic is accepted"))?;
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
        client: Option<std::net::IpAddr>,
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
        let remembered = self.remembered(secret);
        let cached = self
            .verified
            .read()
            .expect("auth cache")
            .get(key)
            .and_then(|known| {
                known
                    .iter()
                    .find(|(hash, _)| constant_time_eq(hash, &remembered))
                    .map(|(_, phc)| phc.clone())
            });
        let matched = match cached {
            Some(phc) => record.secrets.iter().position(|s| s.hash == phc),
            None => {
                let (hashes, secret) = (
                    record
                        .secrets
                        .iter()
                        .map(|s| s.hash.clone())
                        .collect::<Vec<_>>(),
                    secret.to_owned(),
                );
                let matched = tokio::task::spawn_blocking(move || {
                    hashes.iter().position(|phc| verify_secret(phc, &secret))
                })
                .await
                .map_err(ApiError::internal)?;
                if let Some(index) = matched {
                    let mut cache = self.verified.write().expect("auth cache");
                    let known = cache.entry(key.to_owned()).or_default();
                    known.retain(|(_, phc)| record.secrets.iter().any(|s| &s.hash == phc));
                    known.push((remembered, record.secrets[index].hash.clone()));
                }
                matched
            }
        };
        let Some(matched) = matched else {
            tracing::warn!(credential = key, "authentication failed");
            return Err(refuse(
                AuthFailure::BadSecret,
                "unknown key or wrong secret",
            ));
        };
        // The secret is right: now the caller may learn why the credential
        // does not work any more.
        let now = now_micros();
        if record.revoked.is_some() {
            return Err(refuse(AuthFailure::Revoked, "credential has been revoked"));
        }
        if record.expires_micros.is_some_and(|expires| expires <= now) {
            return Err(refuse(AuthFailure::Expired, "credential has expired"));
        }
        if record.secrets[matched]
            .valid_until_micros
            .is_some_and(|until| until <= now)
        {
            return Err(refuse(
                AuthFailure::Superseded,
                "this secret was replaced by a rotation and its grace period has ended",
            ));
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
