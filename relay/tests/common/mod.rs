//! A tiny raw QUIC client and a relay process launcher for the integration tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use clinicmeet_protocol::frame::{self, FrameDecoder};
use clinicmeet_protocol::{ClientMessage, Event, Request, Response, ServerMessage};
use clinicmeet_tls::{Pin, PinVerifier};

pub struct Relay {
    pub child: Child,
    pub quic: SocketAddr,
    pub pin: String,
    pub http: Option<String>,
    /// The browser guests' HTTPS port, when started with `--https-listen`.
    pub https: Option<SocketAddr>,
    pub data_dir: PathBuf,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_clinicmeet-relay")
}

/// Starts the relay on an ephemeral port and waits for its ready line.
pub fn start(data_dir: &Path, extra: &[&str]) -> Relay {
    start_via(Command::new(bin()), data_dir, extra)
}

/// Like [`start`], through `cmd` (the relay binary, or a shell that execs it
/// with the arguments it is given, e.g. under a `ulimit`).
pub fn start_via(mut cmd: Command, data_dir: &Path, extra: &[&str]) -> Relay {
    let mut child = cmd
        .args([
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn relay");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).expect("ready line is JSON");
    assert_eq!(v["event"], "listening");
    Relay {
        child,
        quic: v["quic"].as_str().unwrap().parse().unwrap(),
        pin: v["pin"].as_str().unwrap().to_string(),
        http: v["http"].as_str().map(str::to_string),
        https: v["https"].as_str().map(|a| a.parse().unwrap()),
        data_dir: data_dir.to_path_buf(),
    }
}

/// `staff add NAME` → (staff_id, enrollment_code).
pub fn add_staff(data_dir: &Path, name: &str) -> (String, String) {
    let out = Command::new(bin())
        .args(["--data-dir", data_dir.to_str().unwrap(), "staff", "add", name])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (v["staff_id"].as_str().unwrap().into(), v["enrollment_code"].as_str().unwrap().into())
}

pub fn endpoint(pin: &str) -> quinn::Endpoint {
    endpoint_at(pin, "127.0.0.1:0".parse().unwrap())
}

pub fn endpoint_at(pin: &str, bind: SocketAddr) -> quinn::Endpoint {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinVerifier::new(
            Pin::parse(pin).expect("relay pin"),
            provider,
        )))
        .with_no_client_auth();
    tls.alpn_protocols = vec![clinicmeet_protocol::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut ep = quinn::Endpoint::client(bind).unwrap();
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    ep
}

pub struct Client {
    pub conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    dec: FrameDecoder,
    next_id: u64,
    /// Events received while waiting for replies.
    pub events: Vec<Event>,
}

impl Client {
    pub async fn connect(relay: &Relay) -> Client {
        Self::connect_from(relay, [127, 0, 0, 1]).await
    }

    /// Connects from a given loopback address (127.x.y.z), to test per-address limits.
    pub async fn connect_from(relay: &Relay, ip: [u8; 4]) -> Client {
        Self::connect_to(relay.quic, &relay.pin, ip).await
    }

    /// Connects to a relay at `quic` with pin `pin` (a process or one started in-process).
    pub async fn connect_to(quic: SocketAddr, pin: &str, ip: [u8; 4]) -> Client {
        let ep = endpoint_at(pin, SocketAddr::from((ip, 0)));
        let conn = ep.connect(quic, "localhost").unwrap().await.unwrap();
        let (send, recv) = conn.open_bi().await.unwrap();
        Client { conn, send, recv, dec: FrameDecoder::default(), next_id: 1, events: Vec::new() }
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.send.write_all(bytes).await.unwrap();
    }

    pub async fn send(&mut self, req: Request) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let bytes = frame::encode(&ClientMessage { id, request: req }).unwrap();
        self.send_raw(&bytes).await;
        id
    }

    /// Next server message (None when the stream ends).
    pub async fn next(&mut self) -> Option<ServerMessage> {
        let mut buf = [0u8; 8192];
        loop {
            if let Some(body) = self.dec.next_frame().unwrap() {
                return Some(ServerMessage::decode(&body).unwrap());
            }
            match tokio::time::timeout(Duration::from_secs(10), self.recv.read(&mut buf)).await {
                Ok(Ok(Some(n))) => self.dec.push(&buf[..n]),
                _ => return None,
            }
        }
    }

    /// Sends a request and waits for its reply or error, keeping events.
    pub async fn call(&mut self, req: Request) -> Result<Response, clinicmeet_protocol::ErrorBody> {
        let id = self.send(req).await;
        self.reply_to(id).await
    }

    pub async fn reply_to(&mut self, id: u64) -> Result<Response, clinicmeet_protocol::ErrorBody> {
        loop {
            match self.next().await.expect("stream ended before reply") {
                ServerMessage::Reply { id: rid, response } if rid == id => return Ok(response),
                ServerMessage::Error { id: Some(rid), error } if rid == id => return Err(error),
                ServerMessage::Event { event } => self.events.push(event),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    pub async fn hello(&mut self, cred: Option<&str>) -> Result<Response, clinicmeet_protocol::ErrorBody> {
        self.call(Request::Hello {
            min_version: 1,
            max_version: 1,
            client: "test".into(),
            device_credential: cred.map(str::to_string),
        })
        .await
    }

    /// Waits for an event matching `pred` (events already received count).
    pub async fn event(&mut self, pred: impl Fn(&Event) -> bool) -> Event {
        if let Some(i) = self.events.iter().position(&pred) {
            return self.events.remove(i);
        }
        loop {
            match self.next().await.expect("stream ended while waiting for an event") {
                ServerMessage::Event { event } if pred(&event) => return event,
                ServerMessage::Event { event } => self.events.push(event),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

/// A TLS connection to the relay's HTTPS port from local address `from` (the relay's pin checked).
#[cfg(feature = "browser-guests")]
pub async fn https_connect(
    relay: &Relay,
    from: std::net::IpAddr,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    let https = relay.https.expect("relay started with --https-listen");
    let sock = if from.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() };
    let sock = sock.unwrap();
    sock.bind(SocketAddr::new(from, 0)).unwrap();
    let tcp = sock.connect(https).await.unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinVerifier::new(
            Pin::parse(&relay.pin).unwrap(),
            provider,
        )))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await.map_err(|e| e.to_string())
}

/// Reads a response head up to and including its blank line; `Err` with what came if the
/// connection closed first.
pub async fn read_head<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Result<String, String> {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        if s.read_exact(&mut b).await.is_err() {
            return Err(format!("closed after {:?}", String::from_utf8_lossy(&head)));
        }
        head.push(b[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// Connects from `from` and upgrades to a WebSocket by hand (so the test can then
/// write raw frames).
#[cfg(feature = "browser-guests")]
pub async fn raw_websocket(
    relay: &Relay,
    from: std::net::IpAddr,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    match websocket_upgrade(relay, from, "").await {
        Ok(s) => s,
        Err(head) => panic!("upgrade refused: {head}"),
    }
}

/// The client end of an upgraded connection as a tungstenite WebSocket.
#[cfg(feature = "browser-guests")]
pub async fn ws_client(
    upgraded: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) -> tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    tokio_tungstenite::WebSocketStream::from_raw_socket(
        upgraded,
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await
}

/// A WebSocket upgrade (`Host: localhost`) with `extra` header lines (each ending in
/// `\r\n`); `Err` with the response head when the relay does not switch protocols.
#[cfg(feature = "browser-guests")]
pub async fn websocket_upgrade(
    relay: &Relay,
    from: std::net::IpAddr,
    extra: &str,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    use tokio::io::AsyncWriteExt;
    let mut s = https_connect(relay, from).await?;
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    );
    s.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
    let head = read_head(&mut s).await?;
    if head.starts_with("HTTP/1.1 101") {
        Ok(s)
    } else {
        Err(head)
    }
}

/// Reads until EOF or `within`; returns what came and whether the peer closed.
pub async fn read_until_closed<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    within: Duration,
) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, tokio::io::AsyncReadExt::read(s, &mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (got, false),
        }
    }
}

/// The relay's database in `data_dir`, opened beside the running relay (WAL).
pub fn open_store(data_dir: &std::path::Path) -> clinicmeet_relay::store::Store {
    clinicmeet_relay::store::Store::open(
        &data_dir.join("relay.db"),
        clinicmeet_relay::store::SyncMode::Normal,
    )
    .unwrap()
}
