//! The optional operators' HTTP port: `GET /health` and `GET /metrics` (HEAD too;
//! other methods `405`, other paths `404`). One request per connection, served by
//! the same hyper stack and limits as the guest page ([`crate::http1`]).

use std::sync::Arc;

use axum::http::{header, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// The operators' routes.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/health", get(|| async { ([(header::CONTENT_TYPE, "application/json")], "{\"status\":\"ok\"}\n") }))
        .route(
            "/metrics",
            get(move || async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], metrics.render()) }),
        )
        .fallback(|method: Method| async move {
            match method {
                Method::GET | Method::HEAD => (StatusCode::NOT_FOUND, "not found\n").into_response(),
                _ => (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET,HEAD")], "method not allowed\n")
                    .into_response(),
            }
        })
}

/// Serves until the listener fails.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    let router = router(metrics);
    let mut backoff = crate::accept_backoff::AcceptBackoff::default();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                backoff.failed("http", &err).await;
                continue;
            }
        };
        let router = router.clone();
        tokio::spawn(async move {
            let _ = crate::http1::serve(stream, router, (), false).await;
        });
    }
}
