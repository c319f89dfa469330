//! One HTTP/1.1 connection served by hyper for an axum [`Router`], with the
//! relay's limits on what a client may send before it is answered: the request
//! head (request line and headers) is at most [`MAX_HEAD`] bytes and
//! [`MAX_HEADERS`] lines (`431` past either), and it must arrive within
//! [`HEAD_TIMEOUT`], counted from when the relay starts waiting for it — so a
//! slowloris head is cut off and an idle keep-alive connection is closed after
//! that long too. A request body nobody reads is drained if it is already there,
//! else the connection is closed after the response (hyper). Both HTTP
//! listeners (the guest page's HTTPS, [`crate::web`], and the operators' port,
//! [`crate::http`]) go through here.

use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tower::ServiceExt;

/// Most bytes of a request head.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most header lines in a request.
pub const MAX_HEADERS: usize = 64;
/// Time a client has to send a request head (and how long a connection may idle between requests).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `io` until the client closes it, a limit ends it, or (with `keep_alive`
/// off) after one request. `ext` is added to every request's extensions (e.g. the
/// peer's address). WebSocket upgrades are supported (`hyper::upgrade::on`).
pub async fn serve<I, X>(io: I, router: Router, ext: X, keep_alive: bool) -> Result<(), hyper::Error>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    X: Clone + Send + Sync + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ext.clone());
        router.clone().oneshot(req.map(axum::body::Body::new))
    });
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_header_size(MAX_HEAD)
        .max_headers(MAX_HEADERS)
        .keep_alive(keep_alive)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades()
        .await
}
