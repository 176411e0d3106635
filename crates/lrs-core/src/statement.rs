//! Puts a stored statement back together as xAPI JSON: opens the envelope
//! and adds what is kept in clear (`id`, `stored`, and `timestamp` when the
//! client sent none, which then equals `stored`).

use crate::envelope::{self, EnvelopeError, KeyLookup};
use crate::events::StatementStoredV1;
use serde_json::{Map, Value};

/// The statement as a client sees it, or `None` if its subject was erased.
pub fn reassemble(
    stored: &StatementStoredV1,
    keys: &impl KeyLookup,
) -> Result<Option<Value>, EnvelopeError> {
    Ok(with_clear_fields(
        stored,
        envelope::open(&stored.sealed, keys)?,
    ))
}

/// [`reassemble`] for one of many statements of the same answer, with the
/// people already opened for it (`envelope::OpenedPeople`).
pub fn reassemble_remembering(
    stored: &StatementStoredV1,
    keys: &impl KeyLookup,
    opened: &mut envelope::OpenedPeople,
) -> Result<Option<Value>, EnvelopeError> {
    let body = envelope::open_remembering(&stored.sealed, keys, opened)?;
    Ok(with_clear_fields(stored, body))
}

/// The opened body with what is kept in clear added (`None` stays `None`).
fn with_clear_fields(stored: &StatementStoredV1, body: Option<Value>) -> Option<Value> {
    let Some(Value::Object(body)) = body else {
        return None;
    };
    let stored_at = format_micros(stored.stored_micros);
    let mut statement = Map::with_capacity(body.len() + 3);
    statement.insert(
        "id".into(),
        Value::String(stored.statement_id.hyphenated().to_string()),
    );
    let has_timestamp = body.contains_key("timestamp");
    for (key, value) in body {
        statement.insert(key, value);
    }
    if !has_timestamp {
        statement.insert("timestamp".into(), Value::String(stored_at.clone()));
    }
    statement.insert("stored".into(), Value::String(stored_at));
    Some(Value::Object(statement))
}

/// RFC 3339 in UTC with microseconds, e.g. `2026-11-23T10:14:21.123456Z`.
pub fn format_micros(micros: i64) -> String {
    let seconds = micros.div_euclid(1_000_000);
    let nanos = (micros.rem_euclid(1_000_000) * 1_000) as u32;
    match chrono_like::from_unix(seconds, nanos) {
        Some(text) => text,
        None => "1970-01-01T00:00:00.000000Z".into(),
    }
}

mod chrono_like {
    /// Civil-from-days (Howard Hinnant's algorithm), to avoid a clock crate here.
    pub fn from_unix(seconds: i64, nanos: u32) -> Option<String> {
        let days = seconds.div_euclid(86_400);
        let secs_of_day = seconds.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let y = yoe + era * 400;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = if m <= 2 { y + 1 } else { y };
        if !(0..=9999).contains(&y) {
            return None;
        }
        Some(format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
            secs_of_day / 3600,
            (secs_of_day % 3600) / 60,
            secs_of_day % 60,
            nanos / 1_000
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_microseconds() {
        assert_eq!(format_micros(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            format_micros(1_700_000_000_123_456),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(
            format_micros(951_782_400_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
    }
}
