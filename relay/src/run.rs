//! The relay as a library: [`Relay::new`] with resolved [`Settings`], then
//! [`Relay::start`] inside a tokio runtime binds the ports, starts the hub and
//! forwarding threads and the accept loop, and returns a [`RelayHandle`] with
//! the bound addresses, the certificate pin and a shutdown. `main.rs` uses it;
//! tests can start a relay in-process the same way.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;

use crate::cert::{self, Identity};
use crate::config::Settings;
use crate::hub::Hub;
use crate::keys::{self, Keys};
use crate::metrics::Metrics;
use crate::server;
use crate::store::Store;

/// The relay's certificate: the configured PEM files, or one kept in the data dir.
pub fn identity(s: &Settings) -> anyhow::Result<Identity> {
    Ok(match &s.cert {
        Some((c, k)) => cert::load_pem(c, k)?,
        None => cert::load_or_create(&s.data_dir, &s.public_names)?,
    })
}

/// A relay configured but not yet listening.
pub struct Relay {
    settings: Settings,
}

/// A running relay.
pub struct RelayHandle {
    /// The QUIC (signaling and media) address.
    pub quic: SocketAddr,
    /// The certificate pin clients check.
    pub pin: String,
    /// The operators' HTTP port, when on.
    pub http: Option<SocketAddr>,
    /// The browser guests' HTTPS port, when on.
    pub https: Option<SocketAddr>,
    /// The shared WebRTC UDP address (browser guests), when HTTPS is on.
    pub webrtc_udp: Option<SocketAddr>,
    endpoint: quinn::Endpoint,
    accept: tokio::task::JoinHandle<()>,
    hub: server::HubTx,
    hub_thread: std::thread::JoinHandle<()>,
}

impl Relay {
    pub fn new(settings: Settings) -> Relay {
        Relay { settings }
    }

    /// Opens the database, binds every port and starts serving. Call inside a
    /// tokio runtime (the accept loop and web server are spawned on it).
    pub async fn start(self) -> anyhow::Result<RelayHandle> {
        let s = self.settings;
        clinicmeet_sqlite::private_dir(&s.data_dir)
            .with_context(|| format!("creating data dir {}", s.data_dir.display()))?;
        let id = identity(&s)?;
        let pin = id.pin()?;
        tracing::info!(source = %id.source.display(), fingerprint = %id.fingerprint()?, %pin, "certificate");
        let store = Store::open(&s.db_path(), s.sqlite_sync)?;
        let keys = Keys::load(&s.data_dir)?;
        let metrics = Arc::new(Metrics::default());
        let hub = Hub::new(s.hub.clone(), store, keys, metrics.clone(), clinicmeet_protocol::unix_now_ms())?;
        let blobs = crate::attachments::BlobDir::open(&s.data_dir)
            .map_err(|e| crate::error::RelayError::io(s.data_dir.join("blobs"), e))?;
        let quic = cert::quic_server_config(&id, s.keep_alive, s.idle_timeout, s.transport)?;

        let http_addr = match s.http_listen {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding HTTP {addr}"))?;
                let local = listener.local_addr()?;
                tokio::spawn(crate::http::serve(listener, metrics.clone()));
                Some(local)
            }
            None => None,
        };
        // The stateless-reset key is kept in the data dir: after a restart, clients
        // still holding connections to the old process get a reset at once and
        // resume, instead of waiting out the idle timeout.
        let reset_key = keys::load_or_create_secret(&s.data_dir.join("quic-reset-key"))?;
        let endpoint_config =
            quinn::EndpointConfig::new(Arc::new(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &reset_key)));
        let socket =
            std::net::UdpSocket::bind(s.listen).with_context(|| format!("binding QUIC {}", s.listen))?;
        let endpoint =
            quinn::Endpoint::new(endpoint_config, Some(quic), socket, Arc::new(quinn::TokioRuntime))?;
        let quic_addr = endpoint.local_addr()?;

        let (tx, rx) = crate::hub_queue::hub_queue()?;
        let transfers = Arc::new(crate::transfer::Transfers {
            hub: tx.clone(),
            grants: hub.grants(),
            blobs: blobs.clone(),
        });
        let admissions = crate::admission::Admissions::new(s.max_connections_per_source);
        let (media_tx, media_rx) = std::sync::mpsc::sync_channel(crate::forward::CHANNEL_DEPTH);
        let fwd_metrics = metrics.clone();
        let send_buffer = s.transport.datagram_send_buffer;
        std::thread::Builder::new()
            .name("forward".into())
            .spawn(move || crate::forward::run_forwarder(media_rx, fwd_metrics, send_buffer))?;
        #[cfg(feature = "browser-guests")]
        let (https_addr, webrtc_udp) = match s.https_listen {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding HTTPS {addr}"))?;
                let local = listener.local_addr()?;
                let udp = std::net::SocketAddr::new(s.webrtc_bind, s.webrtc_udp);
                let mux = crate::web::mux::IceMux::bind(udp, s.webrtc_tcp.then_some(local.port()))
                    .with_context(|| format!("binding the WebRTC UDP port {udp}"))?;
                let web = crate::web::WebConfig {
                    guest_dir: s.guest_dir.clone().unwrap_or_else(crate::web::default_guest_dir),
                    rtc: crate::web::peer::RtcConfig {
                        bind: s.webrtc_bind,
                        public_ip: s.public_ip,
                        mux: mux.clone(),
                    },
                    invite: crate::web::InviteInfo { quic_port: quic_addr.port(), pin: pin.clone() },
                    output_budget: s.output_budget,
                    ws_ping: s.ws_ping,
                    trusted_proxies: s.trusted_proxies.clone(),
                    ws_timeout: s.ws_timeout,
                    origins: crate::web::origin::Origins::new(&s.public_names, local.port()),
                    transfers: Some(transfers.clone()),
                    max_attachment_bytes: s.hub.max_attachment_bytes,
                };
                tracing::info!(
                    guest_dir = %web.guest_dir.display(),
                    webrtc_udp = %mux.udp_addr(),
                    ice_tcp = ?mux.tcp_port(),
                    "guest page"
                );
                tokio::spawn(crate::web::serve(
                    listener,
                    crate::web::tls_config(&id)?,
                    Arc::new(web),
                    tx.clone(),
                    media_tx.clone(),
                    admissions.clone(),
                    metrics.clone(),
                ));
                (Some(local), Some(mux.udp_addr()))
            }
            None => (None, None),
        };
        #[cfg(not(feature = "browser-guests"))]
        let (https_addr, webrtc_udp): (Option<SocketAddr>, Option<SocketAddr>) = match s.https_listen {
            Some(_) => anyhow::bail!("--https-listen needs a relay built with the browser-guests feature"),
            None => (None, None),
        };
        let hub_media = media_tx.clone();
        // Runs until every sender is gone (the accept loop and web server stop).
        let hub_thread = std::thread::Builder::new()
            .name("hub".into())
            .spawn(move || server::run_hub(hub, rx, Some(hub_media), Some(blobs)))?;
        let hub = tx.clone();
        tracing::info!(%quic_addr, http = ?http_addr, data_dir = %s.data_dir.display(), "relay listening");
        let edge = server::Edge {
            hub: tx,
            media: Some(media_tx),
            metrics: metrics.clone(),
            admissions,
            budget: s.output_budget,
            hello_timeout: std::time::Duration::from_millis(s.hub.hello_timeout_ms.max(1) as u64),
            transfers: Some(transfers),
        };
        let accept = tokio::spawn(server::accept_loop(endpoint.clone(), edge));
        Ok(RelayHandle {
            quic: quic_addr,
            pin,
            http: http_addr,
            https: https_addr,
            webrtc_udp,
            endpoint,
            accept,
            hub,
            hub_thread,
        })
    }
}

impl RelayHandle {
    /// Closes every connection and stops accepting (waits up to 2 s for peers to hear
    /// it), then stops the hub, which writes what it still holds (the coalesced
    /// audit rows of the open window), and waits for it (up to 5 s).
    pub async fn shutdown(self) {
        self.endpoint.close(0u32.into(), b"relay shutting down");
        self.accept.abort();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.endpoint.wait_idle()).await;
        if self.hub.stop().await.is_ok() {
            let thread = self.hub_thread;
            let joined = tokio::task::spawn_blocking(move || thread.join());
            if tokio::time::timeout(std::time::Duration::from_secs(5), joined).await.is_err() {
                tracing::warn!("the hub did not stop within 5 s");
            }
        }
    }
}
