//! Secrets: argon2id hashes of credential secrets and staff passwords, fresh
//! secrets from the OS's secure source, and the event that issues a new
//! credential (only the secret's hash goes into the log).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use lrs_core::events::{CredentialIssuedV2, RoleGrantV1};
use rand::RngCore;

pub fn hash_secret(secret: &str) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .expect("argon2 hashes any input")
        .to_string()
}

pub fn verify_secret(phc: &str, secret: &str) -> bool {
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
        issued_micros: lrs_core::clock::now_micros(),
        expires_micros: spec.expires_micros,
    };
    (key, secret, event)
}
