//! The one reading of the wall clock for the whole workspace: the store's
//! stored times, the audit trail, tokens, sessions and retention all ask
//! here. Nothing else in this crate calls it: decisions take the time as an
//! argument.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch (0 for a clock set before 1970).
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default()
}

/// Whole seconds since the Unix epoch (0 for a clock set before 1970).
pub fn now_unix_secs() -> i64 {
    now_micros().div_euclid(1_000_000)
}

#[cfg(test)]
mod tests {
    #[test]
    fn seconds_and_micros_agree() {
        let micros = super::now_micros();
        let secs = super::now_unix_secs();
        assert!(micros > 1_600_000_000_000_000, "a clock after 2020");
        assert!((secs - micros / 1_000_000).abs() <= 1);
    }
}
