//! The guest page's HTTP surface as an axum [`Router`] (served per TLS
//! connection by [`crate::http1`]): the page and its files (tower-http
//! `ServeDir`/`ServeFile`: traversal refused, HEAD and ranges right),
//! `/invite-info`, and the `/ws` upgrade handed to [`super::session`].

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{middleware, Extension, Router};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::services::{ServeDir, ServeFile};

use super::{headers, session, ws_config, WebConfig};
use crate::admission::{Admissions, Ticket};
use crate::forward::FwdSender;
use crate::metrics::Metrics;
use crate::server::HubTx;

/// Nothing the guest page sends has a body; a declared larger one is refused (`413`).
pub const MAX_BODY: usize = 4 * 1024;

/// What the handlers share.
pub struct App {
    pub cfg: Arc<WebConfig>,
    pub hub: HubTx,
    pub fwd: FwdSender,
    pub admissions: Admissions,
    pub metrics: Arc<Metrics>,
}

/// One TLS connection, as every request on it sees it (a request extension).
#[derive(Clone)]
pub struct Conn {
    /// The TCP peer.
    pub addr: SocketAddr,
    /// The connection's place in its source's share (none from a trusted proxy);
    /// a WebSocket session keeps it after the HTTP connection has handed over its socket.
    pub ticket: Option<Arc<Ticket>>,
}

pub fn router(app: Arc<App>) -> Router {
    let dir = &app.cfg.guest_dir;
    let page = ServeFile::new(dir.join("guest.html"));
    let files = ServeDir::new(dir).append_index_html_on_directories(false);
    let router = Router::new()
        .route_service("/", page.clone())
        .route_service("/join", page.clone())
        .route_service("/guest", page)
        .route("/invite-info", get(invite_info))
        .route("/ws", get(websocket))
        .fallback_service(files)
        .with_state(app)
        .layer(middleware::from_fn(headers::cache))
        .layer(RequestBodyLimitLayer::new(MAX_BODY));
    headers::secure(router)
}

async fn invite_info(State(app): State<Arc<App>>) -> Response {
    let body = serde_json::to_string(&app.cfg.invite).unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn refuse(status: StatusCode, why: &'static str) -> Response {
    (status, why).into_response()
}

/// Whether a comma-separated header (`Connection`, `Upgrade`) lists `token`.
fn lists(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

async fn websocket(
    State(app): State<Arc<App>>,
    Extension(conn): Extension<Conn>,
    mut req: Request,
) -> Response {
    if req.method() != Method::GET {
        // axum routes HEAD to GET handlers; an upgrade is GET only.
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET")]).into_response();
    }
    let h = req.headers();
    let origin = h.get(header::ORIGIN).map(|v| v.as_bytes());
    if !app.cfg.origins.allow(origin, h.get(header::HOST).map(|v| v.as_bytes())) {
        return refuse(StatusCode::FORBIDDEN, "websocket from another origin\n");
    }
    let handshake = lists(h, header::UPGRADE, "websocket")
        && lists(h, header::CONNECTION, "upgrade")
        && h.get(header::SEC_WEBSOCKET_VERSION).is_some_and(|v| v == "13");
    let key = h.get(header::SEC_WEBSOCKET_KEY).filter(|_| handshake);
    let Some(accept) = key.map(|k| derive_accept_key(k.as_bytes())) else {
        return refuse(StatusCode::BAD_REQUEST, "expected a websocket upgrade\n");
    };
    // Behind a trusted proxy the patient's address (X-Forwarded-For) is the
    // source: for the per-source cap here and for the hub's limits and audit.
    let (client, proxied) = if app.cfg.trusted_proxies.trusts(conn.addr.ip()) {
        let xff: Vec<&str> = h.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
        let client = app.cfg.trusted_proxies.client(conn.addr.ip(), &xff);
        match app.admissions.try_admit(client) {
            Some(t) => (SocketAddr::new(client, conn.addr.port()), Some(t)),
            None => {
                app.metrics.refused_per_source();
                return refuse(StatusCode::TOO_MANY_REQUESTS, "too many connections\n");
            }
        }
    } else {
        (conn.addr, None)
    };
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let _places = (conn.ticket, proxied);
        match upgrade.await {
            Ok(io) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, Some(ws_config())).await;
                session(ws, client, app.cfg.clone(), app.hub.clone(), app.fwd.clone()).await;
            }
            Err(err) => tracing::debug!(%client, %err, "websocket upgrade failed"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
