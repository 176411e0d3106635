//! The pages' static files, embedded at compile time: one stylesheet and an
//! icon (the pages have no script). Served from `/static/`, so the page CSP can
//! forbid inline styles.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

pub const CSS_PATH: &str = "/static/lrs.css";
pub const CSS: &str = include_str!("static/lrs.css");
pub const ICON_PATH: &str = "/static/favicon.svg";
pub const ICON: &str = include_str!("static/favicon.svg");
/// A hash of the stylesheet (FNV-1a), so the page's link (`?v=`) changes
/// with it and a cached old one is never used.
pub const CSS_VERSION: u64 = fnv1a(CSS.as_bytes());

const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

pub async fn css() -> Response {
    serve(CSS, "text/css; charset=utf-8")
}

pub async fn icon() -> Response {
    serve(ICON, "image/svg+xml")
}

fn serve(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    response
}
