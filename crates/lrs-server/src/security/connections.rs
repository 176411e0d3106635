//! Serving connections: hyper's HTTP/1.1 and HTTP/2 (hyper-util's `auto`
//! builder, as `axum::serve` uses it) with the settings this server needs,
//! the client's address on every request, and a graceful stop. The HTTP
//! library refuses some requests before the application sees them, with a
//! status and no body; its header limit is set above the application's own
//! (`request::head`), so that only a head past both gets the bodiless
//! answer (docs/security.md, "What the HTTP library refuses"). Stopping
//! works as in `axum::serve`: no new connections, each open one finishes
//! its requests, then `serve` returns.

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use tokio::sync::watch;
use tower::ServiceExt;

/// Most header fields hyper parses in an HTTP/1.1 request (its default is
/// 100): more is answered 431 with no body. The application refuses more
/// than `request::head::MAX_HEADERS` with a JSON 431 itself.
pub const LIBRARY_MAX_HEADERS: usize = 256;

/// Serves `app` on every connection `listener` accepts until `shutdown`
/// resolves; then stops accepting, lets every connection finish the
/// requests it has (idle ones close at once) and returns.
pub async fn serve<L>(mut listener: L, app: Router, shutdown: impl Future<Output = ()>)
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().max_headers(LIBRARY_MAX_HEADERS);
    // Stopping: `stop` tells every connection to finish gracefully; each
    // connection holds a receiver of `tracker`, so `tracker.closed()`
    // resolves when the last one is done.
    let (stop, _) = watch::channel(());
    let (tracker, open) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        // The peer address as axum's `into_make_service_with_connect_info`
        // gives it: `/metrics` and the rate limits read it. On a socket
        // that listens on both families (`--listen [::]:8080`), an IPv4
        // client arrives as an IPv4-mapped IPv6 address (::ffff:a.b.c.d);
        // made its IPv4 address here, once, every reader sees what it would
        // on an IPv4 socket (the credentials' allow-lists did not map it
        // themselves; `/metrics`, the rate limits and the audit trail did).
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        let service = app.clone().map_request(move |request: Request<Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let connection = builder
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
            .into_owned();
        let mut stopping = stop.subscribe();
        let open = open.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = stopping.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                tracing::trace!(%peer, %error, "connection ended with an error");
            }
            drop(open);
        });
    }
    drop(listener);
    stop.send_replace(());
    drop(open);
    tracker.closed().await;
}
