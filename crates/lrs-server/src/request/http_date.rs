//! HTTP dates (RFC 9110 IMF-fixdate) for `Last-Modified`.

/// An HTTP date (RFC 9110 IMF-fixdate) from microseconds since the epoch.
pub fn http_date(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .unwrap_or_default()
}
