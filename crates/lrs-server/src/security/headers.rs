//! Security headers on every response, errors and CORS preflights included:
//! the outermost layer of `app::router`. A header the handler already set
//! is left alone (a future HTML dashboard brings its own CSP).
//!
//! It knows nothing about routes, credentials or the store: it reads only
//! whether the request carried an Authorization header.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// One year, and every subdomain: the value browsers' preload lists ask for
/// (without `preload`, which is the domain owner's decision).
pub const HSTS: &str = "max-age=31536000; includeSubDomains";
/// API responses are data, never a page: no scripts, styles, frames or
/// images load from them, and no page may frame them.
pub const CSP: &str = "default-src 'none'; frame-ancestors 'none'";
/// The powerful browser features an API response never needs.
pub const PERMISSIONS_POLICY: &str = "camera=(), microphone=(), geolocation=(), payment=(), usb=()";

/// Which optional headers this server sends.
#[derive(Debug, Clone, Copy)]
pub struct SecurityHeaders {
    /// `Strict-Transport-Security`: with built-in TLS, or `--hsts` behind a
    /// TLS-terminating proxy. Browsers ignore it over plain HTTP.
    pub hsts: bool,
}

impl SecurityHeaders {
    pub fn from_config(transport: &crate::security::transport::TransportConfig) -> Self {
        Self {
            hsts: transport.sends_hsts(),
        }
    }

    /// Adds what `response_headers` lacks. `authorized`: the request carried
    /// an Authorization header, so the answer may hold personal data and no
    /// cache (browser or shared) may keep it.
    pub fn apply(self, authorized: bool, response_headers: &mut HeaderMap) {
        let mut set_default = |name: HeaderName, value: &'static str| {
            response_headers
                .entry(name)
                .or_insert_with(|| HeaderValue::from_static(value));
        };
        if self.hsts {
            set_default(header::STRICT_TRANSPORT_SECURITY, HSTS);
        }
        set_default(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
        set_default(header::X_FRAME_OPTIONS, "DENY");
        set_default(header::REFERRER_POLICY, "no-referrer");
        set_default(header::CONTENT_SECURITY_POLICY, CSP);
        set_default(
            HeaderName::from_static("permissions-policy"),
            PERMISSIONS_POLICY,
        );
        if authorized {
            set_default(header::CACHE_CONTROL, "no-store");
        }
    }
}

/// The middleware: `middleware::from_fn_with_state(SecurityHeaders, add)`.
pub async fn add(State(policy): State<SecurityHeaders>, request: Request, next: Next) -> Response {
    let authorized = request.headers().contains_key(header::AUTHORIZATION);
    let mut response = next.run(request).await;
    policy.apply(authorized, response.headers_mut());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_headers_win_and_hsts_follows_the_setting() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'"),
        );
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=60"),
        );
        SecurityHeaders { hsts: false }.apply(true, &mut headers);
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            "default-src 'self'"
        );
        assert_eq!(headers[header::CACHE_CONTROL], "max-age=60");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(!headers.contains_key(header::STRICT_TRANSPORT_SECURITY));

        let mut headers = HeaderMap::new();
        SecurityHeaders { hsts: true }.apply(false, &mut headers);
        assert_eq!(headers[header::STRICT_TRANSPORT_SECURITY], HSTS);
        assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CSP);
        assert!(
            !headers.contains_key(header::CACHE_CONTROL),
            "no Authorization, no forced no-store"
        );
    }
}
