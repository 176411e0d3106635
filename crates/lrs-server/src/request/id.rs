//! The request id: the client's `X-Request-Id` if it is a sane token, else a
//! new UUID; answered in the same header, carried in the request's
//! extensions for the audit trail, and named in every log line.

use axum::http::HeaderMap;

pub const REQUEST_ID: &str = "x-request-id";

/// The request's id (the one [`REQUEST_ID`] answers with), in the request's
/// extensions for inner middleware (the audit trail).
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// The client's `X-Request-Id` if it is a sane token (1–128 characters of
/// letters, digits and `-_.:`), else a new UUID: an id is echoed into logs
/// and headers, so nothing else from the client is.
pub fn request_id_of(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            (1..=128).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().hyphenated().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_echoed_only_when_sane() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, "abc-123_x.y:z".parse().unwrap());
        assert_eq!(request_id_of(&headers), "abc-123_x.y:z");
        headers.insert(REQUEST_ID, "has space".parse().unwrap());
        let generated = request_id_of(&headers);
        assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
        headers.insert(REQUEST_ID, "x".repeat(129).parse().unwrap());
        assert_ne!(request_id_of(&headers).len(), 129);
    }
}
