//! The per-request middleware of operations: the request id, the request's
//! tracing span, and once answered the metrics, the operations journal and
//! one access-log event; the route layer that tells it the matched route
//! template, and the 405 answer that does the same.

use crate::error::ApiError;
use crate::ops::counters::{HTTP_DURATION, HTTP_REQUESTS, UNMATCHED};
use crate::ops::monitor::Monitor;
use crate::request::id::{request_id_of, RequestId, REQUEST_ID};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tracing::Instrument;

/// Where the inner route layer leaves the matched route template for the
/// outer middleware, which runs before routing and so cannot see it.
#[derive(Clone, Default)]
struct RouteSlot(Arc<OnceLock<String>>);

/// Route layer (runs only for matched routes): records the route template.
pub async fn record_route(request: Request, next: Next) -> Response {
    if let (Some(path), Some(slot)) = (
        request.extensions().get::<MatchedPath>(),
        request.extensions().get::<RouteSlot>(),
    ) {
        let _ = slot.0.set(path.as_str().to_owned());
    }
    next.run(request).await
}

/// The 405 answer, which also records the route template: route layers do
/// not run for a method the route lacks, but the path did match a route.
pub async fn method_not_allowed(request: Request) -> Response {
    if let (Some(path), Some(slot)) = (
        request.extensions().get::<MatchedPath>(),
        request.extensions().get::<RouteSlot>(),
    ) {
        let _ = slot.0.set(path.as_str().to_owned());
    }
    ApiError::MethodNotAllowed.into_response()
}

/// The outermost middleware: request id, the request's tracing span, and
/// once answered the metrics, the journal and one access-log event. It logs
/// the method, the route template, the status, the latency and the request
/// id; never headers (Authorization), bodies or query strings (agents in a
/// query are personal data), nor the raw path.
pub async fn observe(
    State(monitor): State<Arc<Monitor>>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let request_id = request_id_of(request.headers());
    let slot = RouteSlot::default();
    request.extensions_mut().insert(slot.clone());
    request
        .extensions_mut()
        .insert(RequestId(request_id.clone()));
    let span = tracing::info_span!(
        target: "lrs_server::access",
        "http_request",
        otel.name = tracing::field::Empty,
        otel.kind = "server",
        http.request.method = method,
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        request_id = %request_id,
    );
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let route = slot.0.get().map_or(UNMATCHED, String::as_str);
    let status = response.status().as_u16();
    metrics::counter!(
        HTTP_REQUESTS,
        "route" => route.to_owned(),
        "method" => method,
        "status" => status.to_string(),
    )
    .increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => route.to_owned(), "method" => method)
        .record(elapsed.as_secs_f64());
    monitor.journal.record_request(status, elapsed);
    let latency_ms = (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0;
    span.record("otel.name", format!("{method} {route}").as_str());
    span.record("http.route", route);
    span.record("http.response.status_code", status);
    tracing::info!(
        target: "lrs_server::access",
        method,
        route,
        status,
        latency_ms,
        request_id = %request_id,
        "request"
    );
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// The method as a label: the standard ones, else `other` (a client must not
/// be able to mint label values).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}
