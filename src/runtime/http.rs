//! The HTTP servers of `pasar run` (the public one for webhooks, the operators' one for
//! `/healthz` and `/metrics`) with the limits a public address needs: a connection that does
//! not finish its request headers in time is closed (slow-loris clients, and idle keep-alive
//! connections, hold no slot for long), a body that trickles is cut off, a request that takes
//! too long is answered 408, and at most so many connections are served at once (the others
//! wait in the kernel's accept queue). `axum::serve` sets none of these, so connections are
//! served here with hyper's own builder.

use super::{Shared, shared_stopped};
use crate::config::HttpLimits;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;
use std::time::Duration;

/// Serves `app` on `listener` with `limits` until the process stops; connections in flight
/// then finish their current request (graceful shutdown) or are dropped after `grace`.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: HttpLimits,
    shared: Arc<Shared>,
    grace: Duration,
) {
    use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
    let app = app
        .layer(RequestBodyTimeoutLayer::new(limits.body_timeout))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, limits.request_timeout));
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot { Ok(s) => s, Err(_) => break },
            _ = shared_stopped(&shared) => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shared_stopped(&shared) => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let shared = Arc::clone(&shared);
        connections.spawn(async move {
            let _slot = slot;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = shared_stopped(&shared) => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    connections.close();
    let _ = tokio::time::timeout(grace, connections.wait()).await;
}
