//! The layers around every xAPI resource: the version every answer speaks
//! (`X-Experience-API-Version`, remembered per client), the
//! `X-Experience-API-Consistent-Through` of statement reads, and CORS for
//! browser clients.

use crate::request::version::VERSION_HEADER;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use lrs_store::Store;
use std::sync::Arc;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub const CONSISTENT_THROUGH: &str = "x-experience-api-consistent-through";

/// Every GET of statements, errors included, says up to when the results
/// are complete, so clients polling for a statement know when to stop.
pub async fn consistent_through(
    State(store): State<Arc<Store>>,
    request: Request,
    next: Next,
) -> Response {
    let is_read = matches!(*request.method(), Method::GET | Method::HEAD);
    let through = store.consistent_through_micros();
    let mut response = next.run(request).await;
    if is_read && !response.headers().contains_key(CONSISTENT_THROUGH) {
        if let Ok(value) = HeaderValue::from_str(&lrs_core::statement::format_micros(through)) {
            response.headers_mut().insert(CONSISTENT_THROUGH, value);
        }
    }
    response
}

/// Every response says which xAPI version it speaks: the request's, or for a
/// request without one, the version this client last used (else 2.0.0).
pub async fn version_header(
    State(last_versions): State<Arc<LastVersions>>,
    request: Request,
    next: Next,
) -> Response {
    let asked = request
        .headers()
        .get(VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| xapi::XapiVersion::parse_header(v).ok());
    let client = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| client_fingerprint(v.as_bytes()));
    let version = match (asked, client) {
        (Some(version), Some(client)) => {
            last_versions.remember(client, version);
            version
        }
        (Some(version), None) => version,
        (None, Some(client)) => last_versions
            .recall(client)
            .unwrap_or(xapi::XapiVersion::V2_0_0),
        (None, None) => xapi::XapiVersion::V2_0_0,
    };
    let mut response = next.run(request).await;
    response.headers_mut().insert(
        VERSION_HEADER,
        HeaderValue::from_static(version.as_header()),
    );
    response
}

fn client_fingerprint(authorization: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    static SEED: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    SEED.get_or_init(Default::default).hash_one(authorization)
}

/// The xAPI version each client (by a hash of its Authorization header) last
/// sent; bounded, forgotten wholesale when full.
#[derive(Default)]
pub struct LastVersions(std::sync::Mutex<std::collections::HashMap<u64, xapi::XapiVersion>>);

impl LastVersions {
    const CAPACITY: usize = 100_000;

    fn remember(&self, client: u64, version: xapi::XapiVersion) {
        let mut map = self.0.lock().expect("versions lock");
        if map.len() >= Self::CAPACITY {
            map.clear();
        }
        map.insert(client, version);
    }

    fn recall(&self, client: u64) -> Option<xapi::XapiVersion> {
        self.0.lock().expect("versions lock").get(&client).copied()
    }
}

/// CORS for browser xAPI clients (cmi5 AUs, SCORM wrappers in an LMS page):
/// the headers xAPI requests carry and the ones their scripts must read.
/// Never credentials mode: xAPI clients send Authorization themselves, and
/// without `Access-Control-Allow-Credentials` a page cannot ride on
/// credentials the browser keeps (a cached Basic login, a client
/// certificate), so allowing any origin exposes nothing the page could not
/// already ask for with the secret it holds (docs/security-transport.md).
pub fn cors(origins: &[String]) -> CorsLayer {
    let allow_origin = if origins.is_empty() {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::POST,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            axum::http::header::AUTHORIZATION,
            axum::http::header::CONTENT_TYPE,
            axum::http::header::IF_MATCH,
            axum::http::header::IF_NONE_MATCH,
            HeaderName::from_static(VERSION_HEADER),
        ])
        .expose_headers([
            axum::http::header::ETAG,
            axum::http::header::LAST_MODIFIED,
            HeaderName::from_static(VERSION_HEADER),
            HeaderName::from_static(CONSISTENT_THROUGH),
        ])
        // Browsers cap it (Chromium: 2 h); saves a preflight per request.
        .max_age(std::time::Duration::from_secs(7200))
}
