//! `/.well-known/security.txt` (RFC 9116): where to report a vulnerability.
//!
//! Without a configured contact the file is not served (404): a placeholder
//! contact would send reports nowhere while claiming otherwise. `Expires`
//! is the configured date, or else 180 days after the current UTC day (the
//! RFC asks for less than a year), so a server that runs for months never
//! serves a stale file; the contact is live configuration, re-read on
//! every start.
//!
//! It knows only the transport configuration, nothing about the store.

use crate::error::ApiError;
use crate::security::transport::TransportConfig;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveTime, SecondsFormat, Utc};
use std::sync::Arc;

pub const PATH: &str = "/.well-known/security.txt";

/// Days from today that the default `Expires` lies ahead.
pub const DEFAULT_EXPIRES_DAYS: i64 = 180;

/// The file's text, or `None` without a contact.
pub fn render(transport: &TransportConfig, now: DateTime<Utc>) -> Option<String> {
    if transport.security_contacts.is_empty() {
        return None;
    }
    let expires = transport.security_txt_expires.unwrap_or_else(|| {
        now.date_naive().and_time(NaiveTime::MIN).and_utc()
            + chrono::Duration::days(DEFAULT_EXPIRES_DAYS)
    });
    let mut text = String::new();
    // Order is preference (RFC 9116 2.5.3).
    for contact in &transport.security_contacts {
        text.push_str(&format!("Contact: {contact}\n"));
    }
    text.push_str(&format!(
        "Expires: {}\n",
        expires.to_rfc3339_opts(SecondsFormat::Secs, true)
    ));
    text.push_str("Preferred-Languages: nl, en\n");
    if let Some(base) = &transport.public_url {
        text.push_str(&format!("Canonical: {base}{PATH}\n"));
    }
    Some(text)
}

/// `GET /.well-known/security.txt`.
pub async fn serve(State(transport): State<Arc<TransportConfig>>) -> Response {
    match render(&transport, Utc::now()) {
        Some(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            text,
        )
            .into_response(),
        None => {
            ApiError::NotFound("security.txt (no --security-contact configured)").into_response()
        }
    }
}

/// A `Contact` value: an `https://` page, a `mailto:` address or a `tel:`
/// number (RFC 9116 2.5.3), with nothing that could break the line format.
pub fn parse_contact(value: &str) -> Result<String, String> {
    let value = value.trim();
    let has_target = ["https://", "mailto:", "tel:"]
        .iter()
        .any(|scheme| value.len() > scheme.len() && value.starts_with(scheme));
    if !has_target {
        return Err("a contact is an https:// URL, a mailto: address or a tel: number".into());
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a contact contains no spaces or control characters".into());
    }
    Ok(value.to_owned())
}

/// The public base URL: https only (RFC 9116 requires security.txt over
/// HTTPS), without a trailing slash.
pub fn parse_public_url(value: &str) -> Result<String, String> {
    let value = value.trim().trim_end_matches('/');
    if !value.starts_with("https://") || value.len() <= "https://".len() {
        return Err("the public URL starts with https://".into());
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the public URL contains no spaces or control characters".into());
    }
    Ok(value.to_owned())
}

/// An RFC 3339 date-time for `Expires`.
pub fn parse_expires(value: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(value.trim())
        .map(|date| date.with_timezone(&Utc))
        .map_err(|error| format!("not an RFC 3339 date-time (2026-12-31T00:00:00Z): {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_contact_no_file() {
        assert_eq!(render(&TransportConfig::default(), Utc::now()), None);
    }

    #[test]
    fn the_file_has_contact_expires_languages_and_canonical() {
        let transport = TransportConfig {
            security_contacts: vec![
                "mailto:security@example.nl".into(),
                "https://example.nl/security".into(),
            ],
            public_url: Some("https://lrs.example.nl".into()),
            ..TransportConfig::default()
        };
        let now = DateTime::parse_from_rfc3339("2026-03-05T13:14:15Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            render(&transport, now).unwrap(),
            "Contact: mailto:security@example.nl\n\
             Contact: https://example.nl/security\n\
             Expires: 2026-09-01T00:00:00Z\n\
             Preferred-Languages: nl, en\n\
             Canonical: https://lrs.example.nl/.well-known/security.txt\n"
        );
        let fixed = TransportConfig {
            security_txt_expires: Some(parse_expires("2027-01-31T12:00:00+01:00").unwrap()),
            ..transport
        };
        assert!(render(&fixed, now)
            .unwrap()
            .contains("Expires: 2027-01-31T11:00:00Z\n"));
    }

    #[test]
    fn contacts_and_urls_are_checked() {
        assert!(parse_contact("mailto:security@example.nl").is_ok());
        assert!(parse_contact("tel:+31-70-0000000").is_ok());
        assert!(parse_contact("http://example.nl/security").is_err());
        assert!(parse_contact("security@example.nl").is_err());
        assert!(parse_contact("mailto:").is_err());
        assert!(parse_contact("mailto:a@b\nContact: mailto:evil@x").is_err());
        assert_eq!(
            parse_public_url("https://lrs.example.nl/").unwrap(),
            "https://lrs.example.nl"
        );
        assert!(parse_public_url("http://lrs.example.nl").is_err());
        assert!(parse_expires("next year").is_err());
    }
}
