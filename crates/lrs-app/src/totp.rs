//! The second factor: RFC 6238 time-based one-time codes (SHA-1, 6 digits,
//! 30-second steps, one step of clock skew either way), with each code
//! accepted once: a code seen for an account is refused again until its
//! window has passed (RFC 6238 section 5.2).
//!
//! Replay memory is per process: a restart within the 90 seconds a code is
//! valid would accept it once more (the password is needed too).

use lrs_core::Token;
use std::collections::HashMap;
use std::sync::Mutex;
use totp_rs::{Algorithm, Secret, TOTP};

pub const DIGITS: usize = 6;
pub const STEP_SECONDS: u64 = 30;
/// Steps accepted before and after the current one.
pub const SKEW: u8 = 1;

/// A TOTP generator for a base32 secret.
pub fn totp_for(secret: &str, issuer: Option<&str>, account: &str) -> Result<TOTP, String> {
    let bytes = Secret::Encoded(secret.to_owned())
        .to_bytes()
        .map_err(|e| format!("the TOTP secret is not base32: {e:?}"))?;
    TOTP::new(
        Algorithm::SHA1,
        DIGITS,
        SKEW,
        STEP_SECONDS,
        bytes,
        issuer.map(|i| i.replace(':', " ")),
        account.replace(':', " "),
    )
    .map_err(|e| format!("the TOTP secret does not fit RFC 6238: {e}"))
}

/// The step (counter) whose code equals `code` at `unix_seconds`, within
/// the skew; `None` if none does.
pub fn matching_step(secret: &str, code: &str, unix_seconds: u64) -> Option<u64> {
    let code = code.trim();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = totp_for(secret, None, "staff").ok()?;
    let now = unix_seconds / STEP_SECONDS;
    let mut found = None;
    // Every candidate is computed and compared, so the time taken does not
    // say which step matched.
    for step in now.saturating_sub(u64::from(SKEW))..=now + u64::from(SKEW) {
        let expected = totp.generate(step * STEP_SECONDS);
        let same = expected
            .bytes()
            .zip(code.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        if same && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// The last step accepted per account, so a code works once.
#[derive(Default)]
pub struct ReplayGuard {
    last_step: Mutex<HashMap<Token, u64>>,
}

impl ReplayGuard {
    /// Checks `code` for the account and, if right and not used before,
    /// remembers it. A code of a step at or before the last accepted one is
    /// refused.
    pub fn accept(&self, account: Token, secret: &str, code: &str, unix_seconds: u64) -> bool {
        let Some(step) = matching_step(secret, code, unix_seconds) else {
            return false;
        };
        let mut last = self.last_step.lock().expect("totp replay lock");
        if last.get(&account).is_some_and(|seen| step <= *seen) {
            return false;
        }
        // Bounded: entries older than the skew window mean nothing any more.
        if last.len() > 100_000 {
            let now = unix_seconds / STEP_SECONDS;
            last.retain(|_, seen| *seen + 2 * u64::from(SKEW) >= now);
        }
        last.insert(account, step);
        true
    }
}

pub fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1: the secret "12345678901234567890".
    const RFC_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn the_rfc_6238_vectors_hold() {
        // 8-digit vectors, last 6 digits: 94287082 at 59 s, 07081804 at 1111111109 s.
        assert_eq!(matching_step(RFC_SECRET, "287082", 59), Some(1));
        assert_eq!(
            matching_step(RFC_SECRET, "081804", 1_111_111_109),
            Some(37_037_036)
        );
        assert_eq!(
            matching_step(RFC_SECRET, "050471", 1_111_111_111),
            Some(37_037_037)
        );
    }

    #[test]
    fn one_step_of_skew_either_way_and_no_more() {
        let at = 1_111_111_109;
        assert!(matching_step(RFC_SECRET, "081804", at + 30).is_some());
        assert!(matching_step(RFC_SECRET, "081804", at - 30).is_some());
        assert!(matching_step(RFC_SECRET, "081804", at + 61).is_none());
        assert!(matching_step(RFC_SECRET, "000000", at).is_none());
        assert!(matching_step(RFC_SECRET, "08180", at).is_none());
        assert!(matching_step(RFC_SECRET, "08180x", at).is_none());
    }

    #[test]
    fn a_code_is_accepted_once() {
        let guard = ReplayGuard::default();
        let anna = Token([1; 16]);
        let bert = Token([2; 16]);
        let at = 1_111_111_109;
        assert!(guard.accept(anna, RFC_SECRET, "081804", at));
        assert!(!guard.accept(anna, RFC_SECRET, "081804", at), "replayed");
        assert!(
            !guard.accept(anna, RFC_SECRET, "081804", at + 20),
            "same step later"
        );
        assert!(
            guard.accept(bert, RFC_SECRET, "081804", at),
            "another account"
        );
        let next = totp_for(RFC_SECRET, None, "x").unwrap().generate(at + 30);
        assert!(
            guard.accept(anna, RFC_SECRET, &next, at + 30),
            "the next step"
        );
    }
}
