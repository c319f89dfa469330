//! `clinicmeet-relay`: runs the relay (default), prints its pin, manages staff.

use std::io::Write as _;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::Parser as _;
use clinicmeet_relay::cert::{self, Identity};
use clinicmeet_relay::config::{self, Cli, Command, Settings, StaffCommand};
use clinicmeet_relay::hub::Hub;
use clinicmeet_relay::keys::{self, Keys};
use clinicmeet_relay::metrics::Metrics;
use clinicmeet_relay::server::{self, unix_now};
use clinicmeet_relay::store::Store;

/// The one line `serve` prints on stdout once it listens (tests wait for it).
#[derive(serde::Serialize)]
struct ReadyLine<'a> {
    event: &'static str,
    quic: String,
    pin: &'a str,
    http: Option<String>,
    https: Option<String>,
    /// The shared WebRTC UDP address (browser guests), when HTTPS is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    webrtc_udp: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CLINICMEET_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let settings = config::resolve(cli.opts)?;
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating data dir {}", settings.data_dir.display()))?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings),
        Command::Pin => {
            let id = identity(&settings)?;
            println!("{}", id.pin()?);
            Ok(())
        }
        Command::Staff(cmd) => staff(&settings, cmd),
        Command::Audit { action, limit } => audit(&settings, action.as_deref(), limit),
    }
}

fn identity(s: &Settings) -> anyhow::Result<Identity> {
    Ok(match &s.cert {
        Some((c, k)) => cert::load_pem(c, k)?,
        None => cert::load_or_create(&s.data_dir, &s.public_names)?,
    })
}

fn staff(s: &Settings, cmd: StaffCommand) -> anyhow::Result<()> {
    let store = Store::open(&s.db_path(), s.sqlite_sync)?;
    let now = unix_now();
    let mut out = std::io::stdout().lock();
    match cmd {
        StaffCommand::Add { name } => {
            let name = clinicmeet_protocol::limits::clean_text("name", &name, 100, true, false)
                .map_err(|e| anyhow::anyhow!(e.message))?;
            let code = keys::new_enrollment_code();
            let hash = keys::hash_secret(&keys::normalize_enrollment_code(&code));
            let id = store.add_staff(&name, &hash, now, now + s.hub.enrollment_ttl_ms)?;
            let v = serde_json::json!({"staff_id": id, "name": name, "enrollment_code": code});
            writeln!(out, "{v}")?;
        }
        StaffCommand::List => {
            for row in store.list_staff()? {
                writeln!(out, "{}", serde_json::to_string(&row)?)?;
            }
        }
        StaffCommand::Remove { staff_id } => {
            let id = uuid::Uuid::parse_str(staff_id.trim()).context("staff id is not a UUID")?;
            if !store.remove_staff(id, now)? {
                bail!("no active staff member with id {id}");
            }
            writeln!(out, "{}", serde_json::json!({"staff_id": id, "removed": true}))?;
        }
    }
    Ok(())
}

fn audit(s: &Settings, action: Option<&str>, limit: usize) -> anyhow::Result<()> {
    let store = Store::open(&s.db_path(), s.sqlite_sync)?;
    let rows = store.audit_rows(action)?;
    let mut out = std::io::stdout().lock();
    for row in &rows[rows.len().saturating_sub(limit)..] {
        writeln!(out, "{}", serde_json::to_string(row)?)?;
    }
    Ok(())
}

fn serve(s: Settings) -> anyhow::Result<()> {
    let id = identity(&s)?;
    let pin = id.pin()?;
    tracing::info!(source = %id.source.display(), fingerprint = %id.fingerprint()?, %pin, "certificate");
    let store = Store::open(&s.db_path(), s.sqlite_sync)?;
    let keys = Keys::load(&s.data_dir)?;
    let metrics = Arc::new(Metrics::default());
    let hub = Hub::new(s.hub.clone(), store, keys, metrics.clone(), unix_now())?;
    let quic = cert::quic_server_config(&id, s.keep_alive, s.idle_timeout, s.transport)?;

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async move {
        let http_addr = match s.http_listen {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding HTTP {addr}"))?;
                let local = listener.local_addr()?;
                tokio::spawn(clinicmeet_relay::http::serve(listener, metrics.clone()));
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

        let (tx, rx) = std::sync::mpsc::channel();
        let (media_tx, media_rx) = std::sync::mpsc::sync_channel(clinicmeet_relay::forward::CHANNEL_DEPTH);
        let fwd_metrics = metrics.clone();
        let send_buffer = s.transport.datagram_send_buffer;
        std::thread::Builder::new()
            .name("forward".into())
            .spawn(move || clinicmeet_relay::forward::run_forwarder(media_rx, fwd_metrics, send_buffer))?;
        #[cfg(feature = "browser-guests")]
        let (https_addr, webrtc_udp) = match s.https_listen {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding HTTPS {addr}"))?;
                let local = listener.local_addr()?;
                let udp = std::net::SocketAddr::new(s.webrtc_bind, s.webrtc_udp);
                let mux = clinicmeet_relay::web::mux::IceMux::bind(udp, s.webrtc_tcp.then_some(local.port()))
                    .with_context(|| format!("binding the WebRTC UDP port {udp}"))?;
                let web = clinicmeet_relay::web::WebConfig {
                    guest_dir: s.guest_dir.clone().unwrap_or_else(clinicmeet_relay::web::default_guest_dir),
                    rtc: clinicmeet_relay::web::peer::RtcConfig {
                        bind: s.webrtc_bind,
                        public_ip: s.public_ip,
                        mux: mux.clone(),
                    },
                    invite: clinicmeet_relay::web::InviteInfo {
                        quic_port: quic_addr.port(),
                        pin: pin.clone(),
                    },
                };
                tracing::info!(
                    guest_dir = %web.guest_dir.display(),
                    webrtc_udp = %mux.udp_addr(),
                    ice_tcp = ?mux.tcp_port(),
                    "guest page"
                );
                tokio::spawn(clinicmeet_relay::web::serve(
                    listener,
                    clinicmeet_relay::web::tls_config(&id)?,
                    Arc::new(web),
                    tx.clone(),
                    media_tx.clone(),
                ));
                (Some(local), Some(mux.udp_addr()))
            }
            None => (None, None),
        };
        #[cfg(not(feature = "browser-guests"))]
        let (https_addr, webrtc_udp): (Option<std::net::SocketAddr>, Option<std::net::SocketAddr>) =
            match s.https_listen {
                Some(_) => bail!("--https-listen needs a relay built with the browser-guests feature"),
                None => (None, None),
            };
        let hub_media = media_tx.clone();
        let hub_thread = std::thread::Builder::new()
            .name("hub".into())
            .spawn(move || server::run_hub(hub, rx, Some(hub_media)))?;

        let ready = ReadyLine {
            event: "listening",
            quic: quic_addr.to_string(),
            pin: &pin,
            http: http_addr.map(|a| a.to_string()),
            https: https_addr.map(|a| a.to_string()),
            webrtc_udp: webrtc_udp.map(|a| a.to_string()),
        };
        let ready = serde_json::to_string(&ready)?;
        {
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{ready}")?;
            stdout.flush()?;
        }
        tracing::info!(%quic_addr, http = ?http_addr, data_dir = %s.data_dir.display(), "relay listening");

        let accept = tokio::spawn(server::accept_loop(endpoint.clone(), tx, Some(media_tx)));
        shutdown_signal().await;
        tracing::info!("shutting down");
        endpoint.close(0u32.into(), b"relay shutting down");
        accept.abort();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), endpoint.wait_idle()).await;
        drop(hub_thread);
        anyhow::Ok(())
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
