//! The guest page's HTTP surface as an axum [`Router`] (served per TLS
//! connection by [`crate::http1`]): the page and its files (tower-http
//! `ServeDir`/`ServeFile`: traversal refused, HEAD and ranges right),
//! `/invite-info`, the `/ws` upgrade handed to [`super::session`], and the
//! attachment transfers of browser guests (`PUT /api/uploads/<token>?offset=N`,
//! `GET /api/attachments/<token>`; tokens come over the guest's WebSocket
//! session, see `clinicmeet_protocol::transfer`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Path;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
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
use clinicmeet_protocol::transfer::TransferReply;

/// Nothing the guest page sends has a body (but an upload); a declared larger one is refused (`413`).
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
    let upload_limit = usize::try_from(app.cfg.max_attachment_bytes).unwrap_or(usize::MAX);
    let pages = Router::new()
        .route_service("/", page.clone())
        .route_service("/join", page.clone())
        .route_service("/guest", page)
        .route("/invite-info", get(invite_info))
        .route("/ws", get(websocket))
        .route("/api/attachments/{token}", get(download))
        .fallback_service(files)
        .layer(RequestBodyLimitLayer::new(MAX_BODY));
    let uploads = Router::new()
        .route("/api/uploads/{token}", put(upload))
        .layer(RequestBodyLimitLayer::new(upload_limit));
    let router = pages.merge(uploads).with_state(app).layer(middleware::from_fn(headers::cache));
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

/// `offset=N` of a query string (0 when absent); `None` when it is not a number.
fn offset_param(query: Option<&str>) -> Option<u64> {
    let Some(q) = query else { return Some(0) };
    match q.split('&').find_map(|kv| kv.strip_prefix("offset=")) {
        Some(v) => v.parse().ok(),
        None => Some(0),
    }
}

/// An HTTP body as upload chunks.
struct BodyChunks(axum::body::BodyDataStream);

impl crate::transfer::Chunks for BodyChunks {
    async fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>, ()> {
        use futures_util::StreamExt as _;
        match self.0.next().await {
            Some(Ok(b)) => Ok(Some(b)),
            Some(Err(_)) => Err(()),
            None => Ok(None),
        }
    }
}

/// A transfer's answer as JSON with a status that says the same.
fn transfer_reply(r: &TransferReply) -> Response {
    use clinicmeet_protocol::ErrorCode as C;
    let status = match r {
        TransferReply::Stored { .. } | TransferReply::Sending { .. } => StatusCode::OK,
        TransferReply::Partial { .. } => StatusCode::CONFLICT,
        TransferReply::Error { error } => match error.code {
            C::InvalidCredential => StatusCode::FORBIDDEN,
            C::AttachmentNotFound => StatusCode::NOT_FOUND,
            C::AttachmentTypeNotAllowed => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            C::AttachmentMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            C::InvalidState => StatusCode::CONFLICT,
            C::StorageUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        },
    };
    let body = serde_json::to_string(r).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `PUT /api/uploads/<token>?offset=N`: the bytes from N on (N = the durable
/// offset `start_upload` answered). Answers `stored` (200), `partial` (409, with
/// the offset to resume from) or an error.
async fn upload(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    uri: axum::http::Uri,
    body: Body,
) -> Response {
    let Some(t) = app.cfg.transfers.as_ref() else { return StatusCode::NOT_FOUND.into_response() };
    let Some(offset) = offset_param(uri.query()) else {
        return refuse(StatusCode::BAD_REQUEST, "offset must be a number\n");
    };
    let reply = match t.upload_grant(&token) {
        Some(u) => t.receive(u, offset, &mut BodyChunks(body.into_data_stream())).await,
        None => crate::transfer::refused_token(),
    };
    transfer_reply(&reply)
}

/// `GET /api/attachments/<token>` (ranges allowed): the file, as a download.
async fn download(State(app): State<Arc<App>>, Path(token): Path<String>, req: Request) -> Response {
    use tower::ServiceExt as _;
    let Some(t) = app.cfg.transfers.as_ref() else { return StatusCode::NOT_FOUND.into_response() };
    let Some(a) = t.download_grant(&token) else { return transfer_reply(&crate::transfer::refused_token()) };
    let Ok(mut res) = ServeFile::new(t.blobs.blob_path(&a.sha256)).oneshot(req).await;
    if res.status() == StatusCode::NOT_FOUND {
        return transfer_reply(&TransferReply::Error {
            error: clinicmeet_protocol::ErrorBody::new(
                clinicmeet_protocol::ErrorCode::AttachmentNotFound,
                "no such attachment",
            ),
        });
    }
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/octet-stream"));
    if let Ok(v) = header::HeaderValue::from_str(&content_disposition(&a.name)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    res.map(Body::new)
}

/// `attachment` with the name percent-encoded (RFC 6266 / 5987): no quoting or
/// header injection whatever the name holds.
fn content_disposition(name: &str) -> String {
    let mut enc = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            enc.push(b as char);
        } else {
            enc.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"attachment\"; filename*=UTF-8''{enc}")
}
