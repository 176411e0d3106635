//! The application: shared state, the router, and `run(listener, shutdown)`
//! which serves until `shutdown` resolves, drains requests, then closes the
//! store (the writer answers everything queued and the log is flushed).

use crate::auth::Authenticator;
use crate::config::ServeConfig;
use crate::error::ApiError;
use crate::routes::{about, activities, agents, documents, statements};
use crate::xapi_request::VERSION_HEADER;

const CONSISTENT_THROUGH: &str = "x-experience-api-consistent-through";
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use lrs_store::Store;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub auth: Arc<Authenticator>,
    pub config: Arc<ServeConfig>,
    pub last_versions: Arc<LastVersions>,
    /// Metrics, readiness and the operations journal (`metrics.rs`).
    pub monitor: Arc<crate::metrics::Monitor>,
    /// Request-rate limits per client address and per credential.
    pub limits: Arc<crate::ratelimit::RateLimits>,
    /// The audit trail (`audit.rs`).
    pub audit: Arc<crate::audit::Audit>,
    /// The staff web pages' sessions (`web/`).
    pub web: Arc<crate::web::WebState>,
}

impl AppState {
    /// Panics if the audit trail cannot be opened; see [`AppState::try_new`].
    pub fn new(store: Arc<Store>, config: ServeConfig) -> Self {
        Self::try_new(store, config).expect("the audit trail opens")
    }

    /// Opens the audit trail in the store's data directory too (after the
    /// monitor, which installs the metrics recorder the trail reports to).
    pub fn try_new(store: Arc<Store>, config: ServeConfig) -> Result<Self, lrs_store::StoreError> {
        let monitor = Arc::new(crate::metrics::Monitor::new(store.clone(), &config));
        let audit = Arc::new(crate::audit::Audit::open(&store, &config)?);
        let guard = Arc::new(crate::ratelimit::AuthGuard::new(config.limits.auth));
        Ok(Self {
            auth: Arc::new(
                Authenticator::with_guard(store.clone(), guard)
                    .with_tokens(crate::oauth::Tokens::new(&config)),
            ),
            monitor,
            audit,
            limits: Arc::new(crate::ratelimit::RateLimits::new(&config.limits)),
            web: Arc::new(crate::web::WebState::new(&config.web)),
            store,
            config: Arc::new(config),
            last_versions: Arc::default(),
        })
    }
}

pub fn router(state: AppState) -> Router {
    let max_body = state.config.max_body_bytes;
    let xapi = Router::new()
        .route(
            "/statements",
            get(statements::get_statements)
                .put(statements::put_statement)
                .post(statements::post_statements)
                .layer(middleware::from_fn_with_state(
                    state.clone(),
                    consistent_through,
                )),
        )
        .route("/activities", get(activities::get_activity))
        .route("/agents", get(agents::get_person))
        .route(
            "/activities/state",
            get(documents::get_state)
                .put(documents::put_state)
                .post(documents::post_state)
                .delete(documents::delete_state),
        )
        .route(
            "/activities/profile",
            get(documents::get_activity_profile)
                .put(documents::put_activity_profile)
                .post(documents::post_activity_profile)
                .delete(documents::delete_activity_profile),
        )
        .route(
            "/agents/profile",
            get(documents::get_agent_profile)
                .put(documents::put_agent_profile)
                .post(documents::post_agent_profile)
                .delete(documents::delete_agent_profile),
        )
        .route("/about", get(about::get_about));
    let routes = Router::new()
        .nest("/xapi", xapi)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::audit::audit_request,
        ))
        .route_layer(middleware::from_fn(crate::metrics::record_route))
        .fallback(|| async { ApiError::NotFound("resource") })
        .method_not_allowed_fallback(crate::metrics::method_not_allowed)
        .with_state(state.clone());
    // The alternate request syntax changes the method, so it runs before routing.
    let xapi_app = Router::new()
        .fallback_service(routes)
        .layer(middleware::from_fn(crate::alternate::alternate_syntax))
        .layer(middleware::from_fn(move |request, next| {
            limit_body(max_body, request, next)
        }))
        .layer(DefaultBodyLimit::disable())
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            version_header,
        ))
        .layer(cors(&state.config.transport.cors_origins))
        .with_state(state.clone());
    // Operations endpoints: outside the xAPI layers (no CORS, no version
    // header, no auth). `observe` wraps everything: metrics, the access log,
    // the request id and the operations journal see every request, those
    // the per-address rate limit refuses too.
    Router::new()
        .route("/metrics", get(crate::metrics::metrics_endpoint))
        .route("/health/live", get(crate::health::live))
        .route("/health/ready", get(crate::health::ready))
        // The admin API and the progress/figures API: audited, JSON bodies
        // up to ADMIN_MAX_BODY.
        .merge(
            crate::admin::routes()
                .merge(crate::routes::insight::routes())
                .merge(crate::routes::analytics::routes())
                .route_layer(middleware::from_fn_with_state(
                    state.clone(),
                    crate::audit::audit_request,
                ))
                .layer(middleware::from_fn(|request, next| {
                    limit_body(ADMIN_MAX_BODY, request, next)
                }))
                .layer(DefaultBodyLimit::disable()),
        )
        .route(crate::security_txt::PATH, get(crate::security_txt::serve))
        .merge(
            crate::oauth::routes().route_layer(middleware::from_fn_with_state(
                state.clone(),
                crate::audit::audit_request,
            )),
        )
        .merge(crate::audit::routes(state.clone()))
        .merge(crate::web::routes(state.clone()))
        .route_layer(middleware::from_fn(crate::metrics::record_route))
        .method_not_allowed_fallback(crate::metrics::method_not_allowed)
        .fallback_service(xapi_app)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::ratelimit::limit_by_address,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::observe,
        ))
        // Outermost: every answer, preflights and errors included.
        .layer(middleware::from_fn_with_state(
            crate::security_headers::SecurityHeaders::from_config(&state.config.transport),
            crate::security_headers::add,
        ))
        .with_state(state)
}

/// Rejects bodies over the limit with a JSON 413, by Content-Length up front
/// and by counting otherwise.
async fn limit_body(max: usize, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > max) {
        // Answer at once, but keep reading (and dropping) what the client is
        // still sending, up to a bound: a server that closes mid-upload leaves
        // the client with a broken pipe instead of the 413 (RFC 9112 9.6).
        tokio::spawn(drain(request.into_body(), DRAIN_LIMIT));
        return ApiError::PayloadTooLarge(max).into_response();
    }
    let (parts, body) = request.into_parts();
    let limited = http_body_util::Limited::new(body, max);
    let response = next
        .run(Request::from_parts(parts, axum::body::Body::new(limited)))
        .await;
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json(&response) {
        return ApiError::PayloadTooLarge(max).into_response();
    }
    response
}

/// Largest administrative request body, bytes.
const ADMIN_MAX_BODY: usize = 64 * 1024;

/// How much of an oversized body is read and dropped before the 413.
const DRAIN_LIMIT: usize = 256 * 1024 * 1024;

async fn drain(body: axum::body::Body, limit: usize) {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut seen = 0usize;
    let deadline = tokio::time::sleep(std::time::Duration::from_secs(30));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            frame = body.frame() => match frame {
                Some(Ok(frame)) => {
                    seen += frame.data_ref().map_or(0, |d| d.len());
                    if seen > limit {
                        return;
                    }
                }
                _ => return,
            },
            _ = &mut deadline => return,
        }
    }
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// A bug must still answer: a JSON 500 instead of a dropped connection.
fn panic_response(detail: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = detail
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| detail.downcast_ref::<&str>().copied())
        .unwrap_or("panic");
    ApiError::Internal(format!("handler panicked: {detail}")).into_response()
}

/// Every GET of statements, errors included, says up to when the results
/// are complete, so clients polling for a statement know when to stop.
async fn consistent_through(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let is_read = matches!(*request.method(), Method::GET | Method::HEAD);
    let through = state.store.consistent_through_micros();
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
async fn version_header(State(state): State<AppState>, request: Request, next: Next) -> Response {
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
            state.last_versions.remember(client, version);
            version
        }
        (Some(version), None) => version,
        (None, Some(client)) => state
            .last_versions
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
fn cors(origins: &[String]) -> CorsLayer {
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

/// Serves plain HTTP until `shutdown` resolves; then drains requests in
/// flight and closes the store, so every acknowledged write is flushed
/// before return. Meanwhile the monitoring task probes readiness and writes
/// the operations journal; its last, partial minute is written after the
/// drain.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve(listener, None, state, shutdown).await
}

/// [`run`] over TLS: handshakes with `tls` (and keeps its certificate
/// current, `tls::ServerTls::spawn_reloader`), the same drain and close.
pub async fn run_tls(
    listener: TcpListener,
    tls: crate::tls::ServerTls,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve(listener, Some(tls), state, shutdown).await
}

async fn serve(
    listener: TcpListener,
    tls: Option<crate::tls::ServerTls>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = state.store.clone();
    let audit = state.audit.clone();
    let monitoring = state.monitor.spawn_background();
    let limits_upkeep =
        crate::ratelimit::spawn_upkeep(state.limits.clone(), state.auth.guard().clone());
    // With the peer address: `/metrics` answers loopback and allowed
    // networks only, and rate limits count per client address.
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let served = match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(tls) => {
            let reloader = tls.spawn_reloader();
            // `tap_io` does nothing to the stream: axum provides the client
            // `SocketAddr` as ConnectInfo for any listener wrapped in it,
            // and the orphan rule keeps us from providing it for ours.
            let listener = axum::serve::ListenerExt::tap_io(tls.listener(listener), |_| {});
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await;
            reloader.abort();
            served
        }
    };
    monitoring.finish().await;
    limits_upkeep.abort();
    audit.close().await;
    served?;
    store.close().await?;
    tracing::info!("store closed; bye");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_still_answers_with_a_json_500() {
        let app = Router::new()
            .route(
                "/boom",
                get(|| async { panic!("the sky fell") as &'static str }),
            )
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                panic_response,
            ));
        let response = tower::ServiceExt::oneshot(
            app,
            Request::get("/boom")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(is_json(&response));
    }
}
