//! The composition root: builds each room's state from the configuration,
//! wires the surfaces (`resources/`, `api/`, `web/`) with the layers of
//! `security/` and `ops/`, and `run(listener, state, shutdown)`, which serves
//! until `shutdown` resolves, drains requests, then closes the store (the
//! writer answers everything queued and the log is flushed).
//!
//! [`AppState`] holds every room's state and hands each handler only the
//! part it takes (axum's `FromRef`): an xAPI resource sees [`XapiState`], a
//! page [`WebState`], the token endpoint [`AuthState`]. Nothing below this
//! file imports it.

use crate::api::ApiState;
use crate::config::ServeConfig;
use crate::error::ApiError;
use crate::ops::analytics::AnalyticsConfig;
use crate::ops::monitor::Monitor;
use crate::request::body::{limit_body, ADMIN_MAX_BODY};
use crate::request::routes::{Route, RouteTable};
use crate::resources::{XapiConfig, XapiState};
use crate::security::audit::{audit_request, Audit};
use crate::security::authn::Authenticator;
use crate::security::extract::AuthState;
use crate::security::headers::SecurityHeaders;
use crate::security::ratelimit::{limit_by_address, spawn_upkeep, AuthGuard, RateLimits};
use crate::security::tls::ServerTls;
use crate::security::tokens::Tokens;
use crate::security::transport::TransportConfig;
use crate::tasks::TasksConfig;
use crate::web::WebState;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use lrs_store::Store;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Every room's state; each handler takes its own part of it.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub store: Arc<Store>,
    pub auth: AuthState,
    pub xapi: XapiState,
    pub api: ApiState,
    pub web: WebState,
    /// Metrics, readiness and the operations journal (`ops/monitor.rs`).
    pub monitor: Arc<Monitor>,
    /// The audit trail (`security/audit.rs`).
    pub audit: Arc<Audit>,
    pub transport: Arc<TransportConfig>,
    pub last_versions: Arc<crate::resources::middleware::LastVersions>,
    /// What the server does by itself (`tasks.rs`).
    pub tasks: Arc<TasksConfig>,
}

/// Why serving stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
    #[error("closing the store: {0}")]
    Store(#[from] lrs_store::StoreError),
    #[error("starting: {0}")]
    Start(#[from] lrs_app::AppError),
}

impl AppState {
    /// Panics if the audit trail cannot be opened; see [`AppState::try_new`].
    pub fn new(store: Arc<Store>, config: ServeConfig) -> Self {
        Self::try_new(store, config).expect("the audit trail opens")
    }

    /// Opens the audit trail in the store's data directory too (after the
    /// monitor, which installs the metrics recorder the trail reports to).
    pub fn try_new(store: Arc<Store>, config: ServeConfig) -> Result<Self, lrs_store::StoreError> {
        let monitor = Arc::new(Monitor::new(store.clone(), &config.ops));
        let audit = Arc::new(Audit::open(&store, &config.audit)?);
        let guard = Arc::new(AuthGuard::new(config.limits.auth));
        let auth = AuthState {
            auth: Arc::new(
                Authenticator::with_guard(store.clone(), guard.clone())
                    .with_tokens(Tokens::new(&config.oauth, config.listen)),
            ),
            limits: Arc::new(RateLimits::new(&config.limits)),
        };
        let analytics = match config.analytics.clone() {
            Some(analytics) => Some(analytics),
            None => AnalyticsConfig::in_data_dir(&config.data_dir)
                .inspect_err(|error| tracing::warn!(%error, "analytics files: none"))
                .ok(),
        };
        Ok(Self {
            xapi: XapiState {
                store: store.clone(),
                config: Arc::new(config.xapi.clone()),
                cpu: Default::default(),
            },
            api: ApiState {
                store: store.clone(),
                audit: audit.clone(),
                analytics: analytics.map(Arc::new),
            },
            web: WebState::new(&config.web, store.clone(), audit.clone(), guard),
            auth,
            monitor,
            audit,
            transport: Arc::new(config.transport.clone()),
            last_versions: Arc::default(),
            tasks: Arc::new(config.tasks.clone()),
            store,
        })
    }
}

/// The JSON routes, each room's table: the xAPI resources (below `/xapi`)
/// and the rest (`/api`, `/admin`, OAuth, health and metrics, the OpenAPI
/// document). The router serves exactly these and the OpenAPI document
/// describes exactly these (`openapi.rs`).
pub struct Tables {
    pub xapi: RouteTable<AppState>,
    pub other: RouteTable<AppState>,
    /// What `GET /api/v1/openapi.json` answers, once [`router`] publishes it.
    pub document: crate::openapi::Published,
}

impl Tables {
    pub fn new(state: &AppState) -> Self {
        let audited = || middleware::from_fn_with_state(state.audit.clone(), audit_request);
        let xapi = RouteTable::new().nest("/xapi", crate::resources::routes(&state.xapi));
        // The admin API and the progress/figures API: audited, JSON bodies
        // up to ADMIN_MAX_BODY.
        let api = crate::api::routes().map_router(|router| {
            router
                .route_layer(audited())
                .layer(middleware::from_fn(|request, next| {
                    limit_body(ADMIN_MAX_BODY, request, next)
                }))
                .layer(DefaultBodyLimit::disable())
        });
        let oauth =
            crate::security::oauth::routes().map_router(|router| router.route_layer(audited()));
        let other = crate::ops::monitor::routes().merge(api).merge(oauth);
        let document = crate::openapi::Published::default();
        let other = other.merge(crate::openapi::routes(document.clone()));
        Self {
            xapi,
            other,
            document,
        }
    }

    /// Every JSON route.
    pub fn entries(&self) -> Vec<Route> {
        self.xapi
            .entries()
            .iter()
            .chain(self.other.entries())
            .cloned()
            .collect()
    }
}

/// The whole application: the xAPI resources, `/api` and `/admin`, the
/// pages, OAuth and the operations endpoints, each with its layers.
pub fn router(state: AppState) -> Router {
    let xapi_config: &XapiConfig = &state.xapi.config;
    let max_body = xapi_config.max_body_bytes;
    let audited = || middleware::from_fn_with_state(state.audit.clone(), audit_request);
    let tables = Tables::new(&state);
    let document = crate::openapi::document(&tables.entries());
    let _ = tables
        .document
        .set(serde_json::to_vec(&document).unwrap_or_default().into());
    let routes = tables
        .xapi
        .into_router()
        .route_layer(audited())
        .route_layer(middleware::from_fn(crate::ops::observe::record_route))
        .fallback(|| async { ApiError::NotFound("resource") })
        .method_not_allowed_fallback(crate::ops::observe::method_not_allowed)
        .with_state(state.clone());
    // The alternate request syntax changes the method, so it runs before routing.
    let xapi_app = Router::new()
        .fallback_service(routes)
        .layer(middleware::from_fn_with_state(
            state.xapi.cpu.clone(),
            crate::resources::alternate::alternate_syntax,
        ))
        .layer(middleware::from_fn(move |request, next| {
            limit_body(max_body, request, next)
        }))
        .layer(DefaultBodyLimit::disable())
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .layer(middleware::from_fn_with_state(
            state.last_versions.clone(),
            crate::resources::middleware::version_header,
        ))
        .layer(crate::resources::middleware::cors(
            &state.transport.cors_origins,
        ));
    // Operations endpoints: outside the xAPI layers (no CORS, no version
    // header, no auth). `observe` wraps everything: metrics, the access log,
    // the request id and the operations journal see every request, those
    // the per-address rate limit refuses too.
    tables
        .other
        .into_router()
        .route(
            crate::security::security_txt::PATH,
            get(crate::security::security_txt::serve),
        )
        .merge(crate::web::pages().route_layer(audited()))
        .merge(crate::web::assets())
        .route_layer(middleware::from_fn(crate::ops::observe::record_route))
        .method_not_allowed_fallback(crate::ops::observe::method_not_allowed)
        .fallback_service(xapi_app)
        .layer(middleware::from_fn_with_state(
            state.auth.limits.clone(),
            limit_by_address,
        ))
        // The request head's limits, in JSON, below the HTTP library's own.
        .layer(middleware::from_fn(crate::request::head::limit_head))
        .layer(middleware::from_fn_with_state(
            state.monitor.clone(),
            crate::ops::observe::observe,
        ))
        // Outermost: every answer, preflights and errors included.
        .layer(middleware::from_fn_with_state(
            SecurityHeaders::from_config(&state.transport),
            crate::security::headers::add,
        ))
        .with_state(state)
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

/// Serves plain HTTP until `shutdown` resolves; then drains requests in
/// flight and closes the store, so every acknowledged write is flushed
/// before return. Meanwhile the monitoring task probes readiness and writes
/// the operations journal; its last, partial minute is written after the
/// drain.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve(listener, None, state, shutdown).await
}

/// [`run`] over TLS: handshakes with `tls` (and keeps its certificate
/// current, `tls::ServerTls::spawn_reloader`), the same drain and close.
pub async fn run_tls(
    listener: TcpListener,
    tls: ServerTls,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve(listener, Some(tls), state, shutdown).await
}

async fn serve(
    listener: TcpListener,
    tls: Option<ServerTls>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let store = state.store.clone();
    let audit = state.audit.clone();
    let monitoring = state.monitor.spawn_background();
    let limits_upkeep = spawn_upkeep(state.auth.limits.clone(), state.auth.auth.guard().clone());
    let privacy = crate::tasks::start_privacy(store.clone(), audit.clone(), &state.tasks)?;
    let closing = crate::tasks::start_closing(store.clone(), audit.clone(), &state.tasks);
    let datatheek = crate::tasks::start_datatheek(store.clone(), audit.clone(), &state.tasks);
    // The peer address goes on every request: `/metrics` answers loopback
    // and allowed networks only, and rate limits count per client address.
    let app = router(state);
    match tls {
        None => crate::security::connections::serve(listener, app, shutdown).await,
        Some(tls) => {
            let reloader = tls.spawn_reloader();
            crate::security::connections::serve(tls.listener(listener), app, shutdown).await;
            reloader.abort();
        }
    }
    monitoring.finish().await;
    limits_upkeep.abort();
    if let Some(privacy) = privacy {
        privacy.abort();
    }
    if let Some(closing) = closing {
        closing.abort();
    }
    if let Some(datatheek) = datatheek {
        datatheek.abort();
    }
    audit.close().await;
    store.close().await?;
    tracing::info!("store closed; bye");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::Request;
    use axum::http::StatusCode;

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
        assert!(crate::request::body::is_json(&response));
    }

    /// The whole router in process, with a real store: the peer address is
    /// what `into_make_service_with_connect_info` would insert.
    mod served {
        use super::*;
        use crate::ops::counters::*;
        use crate::request::id::REQUEST_ID;
        use axum::body::Body;
        use axum::extract::ConnectInfo;
        use axum::http::{header, HeaderMap};
        use lrs_store::{MasterKey, StoreConfig};
        use std::net::SocketAddr;
        use tower::ServiceExt;

        async fn call(
            app: &axum::Router,
            method: &str,
            uri: &str,
            peer: &str,
        ) -> (StatusCode, HeaderMap, String) {
            let mut request = Request::builder()
                .method(method)
                .uri(uri)
                .header(REQUEST_ID, "test-rid-1")
                .body(Body::empty())
                .unwrap();
            let peer: SocketAddr = peer.parse().unwrap();
            request.extensions_mut().insert(ConnectInfo(peer));
            let response = app.clone().oneshot(request).await.unwrap();
            let (parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            (
                parts.status,
                parts.headers,
                String::from_utf8_lossy(&bytes).into_owned(),
            )
        }

        fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
            text.lines()
                .filter(|line| {
                    line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
                })
                .find(|line| labels.iter().all(|label| line.contains(label)))
                .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        }

        #[tokio::test]
        async fn routes_are_labelled_by_template_and_metrics_are_guarded() {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(StoreConfig::new(dir.path(), MasterKey([3; 32]))).unwrap();
            let mut config =
                ServeConfig::new(dir.path().to_path_buf(), "127.0.0.1:8080".parse().unwrap());
            config.ops.metrics_allow =
                crate::request::client::parse_allow_list("10.9.0.0/16").unwrap();
            let app = router(AppState::new(store.clone(), config));

            let (status, headers, _) = call(
                &app,
                "GET",
                "/xapi/statements?agent=zz-query-marker",
                "127.0.0.1:5000",
            )
            .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert_eq!(headers[REQUEST_ID], "test-rid-1");
            let (status, _, _) = call(&app, "GET", "/no/such/path/42", "127.0.0.1:5000").await;
            assert_eq!(status, StatusCode::NOT_FOUND);
            let (status, _, _) = call(&app, "DELETE", "/xapi/about", "127.0.0.1:5000").await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
            let (status, _, body) = call(&app, "GET", "/health/live", "192.0.2.1:5000").await;
            assert_eq!(
                (status, body.as_str()),
                (StatusCode::OK, r#"{"status":"ok"}"#)
            );

            let (status, _, body) = call(&app, "GET", "/metrics", "192.0.2.1:5000").await;
            assert_eq!(status, StatusCode::FORBIDDEN);
            let refusal: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(refusal["error"]["code"], "forbidden");
            assert!(refusal["error"]["message"]
                .as_str()
                .unwrap()
                .contains("192.0.2.1"));

            let (status, headers, text) = call(&app, "GET", "/metrics", "10.9.3.4:5000").await;
            assert_eq!(status, StatusCode::OK);
            assert!(headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/plain"));
            let unauthorized = [
                r#"route="/xapi/statements""#,
                r#"method="GET""#,
                r#"status="401""#,
            ];
            assert!(
                sample(&text, HTTP_REQUESTS, &unauthorized).unwrap() >= 1.0,
                "{text}"
            );
            let unmatched = [r#"route="unmatched""#, r#"status="404""#];
            assert!(
                sample(&text, HTTP_REQUESTS, &unmatched).unwrap() >= 1.0,
                "{text}"
            );
            assert!(
                !text.contains("/no/such/path"),
                "raw paths never become labels"
            );
            assert!(
                !text.contains("zz-query-marker"),
                "query strings never become labels"
            );
            let not_allowed = [
                r#"route="/xapi/about""#,
                r#"method="DELETE""#,
                r#"status="405""#,
            ];
            assert!(
                sample(&text, HTTP_REQUESTS, &not_allowed).unwrap() >= 1.0,
                "{text}"
            );
            let live = [r#"route="/health/live""#, r#"status="200""#];
            assert!(
                sample(&text, HTTP_REQUESTS, &live).unwrap() >= 1.0,
                "{text}"
            );
            let forbidden = [r#"route="/metrics""#, r#"status="403""#];
            assert!(
                sample(&text, HTTP_REQUESTS, &forbidden).unwrap() >= 1.0,
                "{text}"
            );
            let bucket = [r#"route="/xapi/statements""#, r#"le="10""#];
            assert!(
                sample(&text, &format!("{HTTP_DURATION}_bucket"), &bucket).unwrap() >= 1.0,
                "{text}"
            );
            assert!(sample(&text, AUTH_FAILURES, &[r#"reason="missing""#]).unwrap() >= 1.0);
            assert!(sample(&text, AUTH_FAILURES, &[r#"reason="expired""#]).is_some());
            assert!(sample(&text, RATE_LIMITED, &[r#"limit="credential""#]).is_some());
            assert_eq!(sample(&text, LOG_HEAD, &[]), Some(store.head() as f64));
            assert!(sample(&text, LOG_SIZE, &[]).unwrap() > 0.0);
            let lag = [r#"projection="statement_index""#];
            assert_eq!(sample(&text, PROJECTION_LAG, &lag), Some(0.0));
            assert_eq!(sample(&text, BUILD_INFO, &[r#"version=""#]), Some(1.0));
            assert!(sample(&text, "process_resident_memory_bytes", &[]).unwrap() > 0.0);
            assert!(sample(&text, "process_cpu_seconds_total", &[]).is_some());
            assert!(
                sample(&text, BACKUP_AGE, &[]).is_none(),
                "no backup recorded yet"
            );
            store.close().await.unwrap();
        }

        /// The served OpenAPI document lists exactly the routes of the
        /// tables the router is built from (method and path), each path's
        /// parameters declared; and the served router answers every
        /// documented operation from a route, not its fallback.
        #[tokio::test]
        async fn the_openapi_document_lists_exactly_the_routed_json_routes() {
            use std::collections::BTreeSet;
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(StoreConfig::new(dir.path(), MasterKey([4; 32]))).unwrap();
            let config =
                ServeConfig::new(dir.path().to_path_buf(), "127.0.0.1:8080".parse().unwrap());
            let state = AppState::new(store.clone(), config);
            let routed: BTreeSet<(String, String)> = Tables::new(&state)
                .entries()
                .into_iter()
                .map(|route| (route.method.as_str().to_ascii_lowercase(), route.path))
                .collect();
            let app = router(state);

            let (status, headers, body) =
                call(&app, "GET", crate::openapi::PATH, "127.0.0.1:5000").await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(headers["api-version"], crate::api::API_VERSION);
            let document: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(document["openapi"], "3.0.3");
            let mut documented = BTreeSet::new();
            for (path, item) in document["paths"].as_object().unwrap() {
                for (method, operation) in item.as_object().unwrap() {
                    documented.insert((method.clone(), path.clone()));
                    let declared: BTreeSet<&str> = operation["parameters"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|p| p["in"] == "path")
                        .map(|p| p["name"].as_str().unwrap())
                        .collect();
                    let in_path: BTreeSet<&str> = path
                        .split('/')
                        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                        .collect();
                    assert_eq!(declared, in_path, "{method} {path}");
                    assert!(!path.ends_with('/'), "{path}");
                }
            }
            let undocumented: Vec<_> = routed.difference(&documented).collect();
            let unrouted: Vec<_> = documented.difference(&routed).collect();
            assert!(
                undocumented.is_empty(),
                "routed, not documented: {undocumented:?}"
            );
            assert!(unrouted.is_empty(), "documented, not routed: {unrouted:?}");
            // Every part of the JSON API is there, the deprecated paths too.
            for expected in [
                ("get", "/xapi/statements"),
                ("put", "/admin/v1/tenants/{id}"),
                ("put", "/admin/tenants/{id}"),
                ("get", "/api/v1/figures/monthly"),
                ("post", "/oauth/token"),
                ("get", "/health/ready"),
                ("get", crate::openapi::PATH),
            ] {
                assert!(
                    documented.contains(&(expected.0.to_owned(), expected.1.to_owned())),
                    "{expected:?}"
                );
            }
            assert_eq!(
                document["paths"]["/admin/tenants/{id}"]["put"]["deprecated"],
                true
            );

            // The served router answers each documented operation from a
            // route: never 405, never the fallback's "no such resource".
            for (method, path) in &documented {
                let uri = path.replace('{', "x").replace('}', "");
                let (status, _, body) =
                    call(&app, &method.to_ascii_uppercase(), &uri, "127.0.0.1:5000").await;
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                assert!(
                    !(status == StatusCode::NOT_FOUND && body.contains("no such resource")),
                    "{method} {path}: {status} {body}"
                );
            }
            store.close().await.unwrap();
        }
    }
}
