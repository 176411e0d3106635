//! The JSON API for people and programs other than xAPI clients: `/admin`
//! (tenants, roles, credentials, the audit trail) and `/api` (progress,
//! figures, the course model, the Datatheek workbook, SQL over the
//! analytics files). Bodies are JSON up to `request::body::ADMIN_MAX_BODY`.
//!
//! Versioned as the REST-API Design Rules ask (docs/api-design-rules.md):
//! every route lives below `/api/v1` or `/admin/v1`, answers with the
//! `API-Version` header and its errors as problem details
//! (`error::problem_details`). The same routes without `/v1` (the paths of
//! before) still answer, exactly as before, plus the headers that say they
//! are deprecated, when they end and where their successor is
//! ([`deprecated`]).
//!
//! Never imports another surface (`resources/`, `web/`) or the composition
//! root; the operations themselves are `lrs_app`'s.

pub mod admin;
pub mod analytics;
pub mod audit;
pub mod insight;
pub mod privacy;
pub mod state;

pub use state::ApiState;

use crate::request::routes::RouteTable;
use crate::security::extract::AuthState;
use axum::extract::{FromRef, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;

/// The full version of this API (`API-Version`, the OpenAPI document's
/// `info.version`); its major version is the `v1` in the paths.
pub const API_VERSION: &str = "1.0.0";

/// `API-Version` (REST-API Design Rules, API-57).
pub static API_VERSION_HEADER: HeaderName = HeaderName::from_static("api-version");

/// When the paths without `/v1` were deprecated (RFC 9745: `@` and Unix
/// seconds): 2026-12-06T00:00:00Z.
pub const DEPRECATED_SINCE: &str = "@1796515200";

/// When they stop answering (RFC 8594 `Sunset`, an HTTP date).
pub const SUNSET: &str = "Fri, 31 Dec 2027 23:59:59 GMT";

/// The route tables of `/api/v1` and `/admin/v1` (each handler's path
/// as its `#[utoipa::path]` says), and the same handlers at the deprecated
/// paths without `/v1`.
pub fn routes<S>() -> RouteTable<S>
where
    ApiState: FromRef<S>,
    AuthState: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    let current = all(RouteTable::new()).map_router(|router| {
        router
            .route_layer(middleware::from_fn(crate::error::problem_details))
            .route_layer(middleware::from_fn(api_version))
    });
    let legacy = all(RouteTable::deprecated_at(legacy_path)).map_router(|router| {
        router
            .route_layer(middleware::from_fn(deprecated))
            .route_layer(middleware::from_fn(api_version))
    });
    current.merge(legacy)
}

fn all<S>(table: RouteTable<S>) -> RouteTable<S>
where
    ApiState: FromRef<S>,
    AuthState: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    privacy::routes(audit::routes(analytics::routes(insight::routes(
        admin::routes(table),
    ))))
}

/// The deprecated path of a versioned one: `/api/v1/x` → `/api/x`,
/// `/admin/v1/x` → `/admin/x`; any other path is its own.
pub fn legacy_path(path: &str) -> String {
    for base in ["/api", "/admin"] {
        if let Some(rest) = path.strip_prefix(base).and_then(|p| p.strip_prefix("/v1/")) {
            return format!("{base}/{rest}");
        }
    }
    path.to_owned()
}

/// The successor of a deprecated path: `/api/x` → `/api/v1/x`.
pub fn versioned_path(path: &str) -> String {
    for base in ["/api/", "/admin/"] {
        if let Some(rest) = path.strip_prefix(base) {
            return format!("{base}v1/{rest}");
        }
    }
    path.to_owned()
}

/// Middleware: `API-Version` on every answer of `/api` and `/admin`.
async fn api_version(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response.headers_mut().insert(
        API_VERSION_HEADER.clone(),
        HeaderValue::from_static(API_VERSION),
    );
    response
}

/// Middleware on the paths without `/v1`: `Deprecation` (RFC 9745),
/// `Sunset` (RFC 8594) and `Link` to the successor (RFC 5829
/// `successor-version`, with the request's query).
async fn deprecated(request: Request, next: Next) -> Response {
    let successor = match request.uri().query() {
        Some(query) => format!("{}?{query}", versioned_path(request.uri().path())),
        None => versioned_path(request.uri().path()),
    };
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static("deprecation"),
        HeaderValue::from_static(DEPRECATED_SINCE),
    );
    headers.insert(
        HeaderName::from_static("sunset"),
        HeaderValue::from_static(SUNSET),
    );
    if let Ok(link) = HeaderValue::from_str(&format!("<{successor}>; rel=\"successor-version\"")) {
        headers.append(axum::http::header::LINK, link);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_and_legacy_paths_map_both_ways() {
        assert_eq!(
            legacy_path("/api/v1/figures/monthly"),
            "/api/figures/monthly"
        );
        assert_eq!(legacy_path("/admin/v1/tenants/{id}"), "/admin/tenants/{id}");
        assert_eq!(legacy_path("/xapi/statements"), "/xapi/statements");
        assert_eq!(
            versioned_path("/api/figures/monthly"),
            "/api/v1/figures/monthly"
        );
        assert_eq!(versioned_path("/admin/tenants/t1"), "/admin/v1/tenants/t1");
    }
}
