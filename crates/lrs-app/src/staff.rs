//! Staff accounts of the web pages: people in the vault (an xAPI account
//! `{homePage: "urn:lrs:staff", name: <user name>}`), whose user name,
//! display name, password hash and TOTP secret are sealed under their own
//! data key in `StaffAccountDefinedV1`. Creating, resetting and closing
//! accounts (the `lrs staff` command), the password policy, and opening an
//! account at login.
//!
//! It knows nothing about HTTP or sessions.

use crate::error::AppError;
use lrs_core::clock::now_micros;
use lrs_core::envelope::{open_sealed_bytes, seal_bytes};
use lrs_core::events::{RoleGrantV1, StaffAccountClosedV1, StaffAccountDefinedV1};
use lrs_core::{Event, Token};
use lrs_projections::staff_accounts::StaffAccountRecord;
use lrs_store::Store;
use serde::{Deserialize, Serialize};

/// The `homePage` of the xAPI account that names a staff member in the vault.
pub const STAFF_HOME_PAGE: &str = "urn:lrs:staff";

/// The sealed part of an account: everything that identifies the person
/// or lets them in.
#[derive(Clone, Serialize, Deserialize)]
pub struct StaffSecrets {
    pub username: String,
    pub display_name: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// The TOTP secret, base32 without padding (RFC 4648).
    pub totp_secret: String,
    pub created_micros: i64,
}

impl std::fmt::Debug for StaffSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaffSecrets")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// An open account: its record and its opened secrets.
#[derive(Debug, Clone)]
pub struct StaffAccount {
    pub record: StaffAccountRecord,
    pub secrets: StaffSecrets,
}

/// What passwords must be (req. 7.27, 7.28): long enough, not one of the
/// passwords everybody tries first, and not the user name.
#[derive(Debug, Clone, Copy)]
pub struct PasswordPolicy {
    pub min_length: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self { min_length: 12 }
    }
}

/// Passwords (lowercase) that are refused whatever their length: the top of
/// the published breach lists that reach 12 characters, and Dutch variants.
const COMMON_PASSWORDS: &[&str] = &[
    "123456789012",
    "1234567890123",
    "qwertyuiopasdf",
    "qwertyuiop123",
    "passwordpassword",
    "password1234",
    "password12345",
    "wachtwoord123",
    "wachtwoord1234",
    "welkom123456",
    "welkomwelkom",
    "bibliotheek123",
    "bibliotheek2024",
    "bibliotheek2025",
    "bibliotheek2026",
    "iloveyou1234",
    "abcdefghijkl",
    "aaaaaaaaaaaa",
    "111111111111",
    "000000000000",
];

impl PasswordPolicy {
    /// Why `password` is refused for `username`, if it is.
    pub fn check(&self, username: &str, password: &str) -> Result<(), String> {
        let length = password.chars().count();
        if length < self.min_length {
            return Err(format!(
                "the password has {length} characters; at least {} are required",
                self.min_length
            ));
        }
        if length > 256 {
            return Err("the password is longer than 256 characters".into());
        }
        let lower = password.to_lowercase();
        if COMMON_PASSWORDS.contains(&lower.as_str()) {
            return Err("the password is one of the most common passwords".into());
        }
        if lower.contains(&username.to_lowercase()) {
            return Err("the password contains the user name".into());
        }
        if password
            .chars()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            < 5
        {
            return Err("the password uses fewer than 5 different characters".into());
        }
        Ok(())
    }
}

/// The canonical user name: trimmed, lowercase; letters, digits and
/// `. _ - @`, 1 to 64 characters (an e-mail address is fine).
pub fn normalise_username(username: &str) -> Result<String, String> {
    let name = username.trim().to_lowercase();
    if name.is_empty() || name.chars().count() > 64 {
        return Err("a user name has 1 to 64 characters".into());
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
    {
        return Err("a user name has only letters, digits and . _ - @".into());
    }
    Ok(name)
}

/// The vault identifier of a staff member.
pub fn ifi_of(username: &str) -> xapi::agent::Ifi {
    xapi::agent::ifi_of(&serde_json::json!({
        "account": {"homePage": STAFF_HOME_PAGE, "name": username}
    }))
    .expect("an account is an identifier")
}

/// The token of an existing staff member's vault entry (no entry is made).
pub fn token_of(store: &Store, username: &str) -> Option<Token> {
    let username = normalise_username(username).ok()?;
    store.vault().token_of(&ifi_of(&username))
}

/// The account of `token` with its secrets opened; `None` if there is no
/// such account or its person was erased.
pub fn open(store: &Store, token: &Token) -> Result<Option<StaffAccount>, AppError> {
    let Some(record) = store.staff_account(token)? else {
        return Ok(None);
    };
    let Some(bytes) =
        open_sealed_bytes(&record.sealed, store.vault().as_ref()).map_err(AppError::internal)?
    else {
        return Ok(None);
    };
    let secrets: StaffSecrets = serde_json::from_slice(&bytes)
        .map_err(|e| AppError::internal(format!("staff account {token}: {e}")))?;
    Ok(Some(StaffAccount { record, secrets }))
}

/// A new random TOTP secret (160 bits, RFC 4226's recommendation), base32.
pub fn new_totp_secret() -> String {
    totp_rs::Secret::generate_secret().to_encoded().to_string()
}

/// A generated password: 20 characters from a 56-letter alphabet without
/// look-alikes (about 116 bits).
pub fn generate_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..20)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// What defines an account.
#[derive(Debug, Clone)]
pub struct AccountSpec {
    pub tenant: String,
    pub username: String,
    pub display_name: String,
    pub roles: Vec<RoleGrantV1>,
    pub password: String,
    /// Keep this TOTP secret (a reset of the password only); `None`: new.
    pub totp_secret: Option<String>,
    /// Who: `cli:<user>` or a principal key.
    pub by: String,
}

/// Creates or redefines an account: checks the tenant and roles exist,
/// seals the secrets under the person's key and appends the event. Returns
/// the token and the TOTP secret.
pub async fn define(
    store: &Store,
    spec: AccountSpec,
    policy: PasswordPolicy,
) -> Result<(Token, String), AppError> {
    let username = normalise_username(&spec.username)
        .map_err(|m| AppError::bad_request("username", "staff.username", m))?;
    policy
        .check(&username, &spec.password)
        .map_err(|m| AppError::bad_request("password", "staff.password_policy", m))?;
    if spec.display_name.trim().is_empty() || spec.display_name.chars().count() > 200 {
        return Err(AppError::bad_request(
            "display_name",
            "staff.display_name",
            "a display name has 1 to 200 characters",
        ));
    }
    if store.tenant(&spec.tenant)?.is_none() {
        return Err(AppError::bad_request(
            "tenant",
            "staff.tenant",
            format!("no tenant '{}' is defined", spec.tenant),
        ));
    }
    for grant in &spec.roles {
        if store.role(&grant.role)?.is_none() {
            return Err(AppError::bad_request(
                "role",
                "staff.role",
                format!("no role '{}' is defined", grant.role),
            ));
        }
    }
    let ifi = ifi_of(&username);
    let existing = store.vault().token_of(&ifi);
    let created_micros = match existing {
        Some(token) => open(store, &token)?.map(|a| a.secrets.created_micros),
        None => None,
    };
    let (token, key) = store.vault().person(&ifi);
    store.vault().sync()?;
    let password = spec.password;
    let password_hash = tokio::task::spawn_blocking(move || crate::secrets::hash_secret(&password))
        .await
        .map_err(AppError::internal)?;
    let now = now_micros();
    let totp_secret = spec.totp_secret.unwrap_or_else(new_totp_secret);
    let secrets = StaffSecrets {
        username,
        display_name: spec.display_name.trim().to_owned(),
        password_hash,
        totp_secret: totp_secret.clone(),
        created_micros: created_micros.unwrap_or(now),
    };
    let sealed = seal_bytes(
        token,
        &key,
        &serde_json::to_vec(&secrets).expect("secrets serialise"),
    );
    crate::admin::append(
        store,
        Event::StaffAccountDefinedV1(StaffAccountDefinedV1 {
            token,
            tenant: spec.tenant,
            roles: spec.roles,
            sealed,
            defined_micros: now,
            by: spec.by,
        }),
    )
    .await?;
    Ok((token, totp_secret))
}

/// Closes an account: it can no longer log in, and its sessions end on
/// their next request.
pub async fn close(store: &Store, token: Token, by: &str) -> Result<(), AppError> {
    crate::admin::append(
        store,
        Event::StaffAccountClosedV1(StaffAccountClosedV1 {
            token,
            closed_micros: now_micros(),
            by: by.to_owned(),
        }),
    )
    .await
}

/// The permissions an account's roles hold now (grants that ended skipped),
/// like `Authenticator::principal_of` does for credentials.
pub fn permissions_of(
    store: &Store,
    roles: &[RoleGrantV1],
    now: i64,
) -> Result<Vec<String>, AppError> {
    let mut permissions = Vec::new();
    for grant in roles {
        if grant.until_micros.is_some_and(|until| until <= now) {
            continue;
        }
        if let Some(role) = store.role(&grant.role)? {
            permissions.extend(role.permissions);
        }
    }
    permissions.sort();
    permissions.dedup();
    Ok(permissions)
}

/// The `otpauth://` URI an authenticator app enrols from.
pub fn otpauth_uri(issuer: &str, username: &str, secret: &str) -> Result<String, String> {
    let totp = crate::totp::totp_for(secret, Some(issuer), username)?;
    Ok(totp.get_url())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_refuses_short_common_and_self_naming_passwords() {
        let policy = PasswordPolicy::default();
        assert!(policy.check("anna", "kort").is_err());
        assert!(policy.check("anna", "Wachtwoord123").is_err());
        assert!(policy.check("anna", "anna-is-de-beste").is_err());
        assert!(policy.check("anna", "aaaaaaaaaaaaab").is_err());
        assert!(policy.check("anna", "paard-batterij-nietje").is_ok());
        assert!(PasswordPolicy { min_length: 30 }
            .check("anna", "paard-batterij-nietje")
            .is_err());
        let generated = generate_password();
        assert_eq!(generated.chars().count(), 20);
        assert!(policy.check("anna", &generated).is_ok());
    }

    #[test]
    fn user_names_are_canonical() {
        assert_eq!(
            normalise_username("  Anna.de-Vries ").unwrap(),
            "anna.de-vries"
        );
        assert_eq!(normalise_username("a@b.nl").unwrap(), "a@b.nl");
        assert!(normalise_username("").is_err());
        assert!(normalise_username("anna vries").is_err());
        assert!(normalise_username("anna<script>").is_err());
        assert_eq!(ifi_of("anna"), ifi_of("anna"));
        assert_ne!(ifi_of("anna"), ifi_of("bert"));
    }
}
