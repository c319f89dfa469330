//! Configuration: command-line flags and environment variables (clap), an
//! optional TOML file (`--config`), and built-in defaults, in that order of
//! precedence. Flags are `Option`s so that an absent flag never overwrites a
//! value from the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use crate::error::RelayError;
use crate::hub::HubConfig;
use crate::limits::CodeGuardConfig;
use crate::store::SyncMode;

#[derive(Debug, Parser)]
#[command(
    name = "clinicmeet-relay",
    version,
    about = "ClinicMeet relay: meetings, signaling and chat over QUIC"
)]
pub struct Cli {
    #[command(flatten)]
    pub opts: Opts,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the relay (the default).
    Serve,
    /// Print the certificate pin clients use (`sha256/...`), creating the certificate if needed.
    Pin,
    /// Manage the clinic's staff (works while the relay runs).
    #[command(subcommand)]
    Staff(StaffCommand),
    /// Print the newest audit log rows as JSON lines, oldest first (works while the relay runs).
    Audit {
        /// Only rows with this action (e.g. `code_failed`, `join`, `admit`).
        #[arg(long)]
        action: Option<String>,
        /// How many of the newest rows to print.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum StaffCommand {
    /// Add a staff member; prints JSON with a one-time enrollment code.
    Add { name: String },
    /// List staff members as JSON lines.
    List,
    /// Remove a staff member and revoke their devices.
    Remove { staff_id: String },
    /// A new one-time enrollment code for another device of an existing staff
    /// member (their records appear on every device they enrolled); prints JSON.
    AddDevice { staff_id: String },
}

/// Every setting; all optional so file values are not overwritten by defaults.
#[derive(Debug, Default, Clone, Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Opts {
    /// TOML config file (keys as the long flag names, e.g. `listen = "0.0.0.0:4433"`).
    #[arg(long, global = true, env = "CLINICMEET_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// QUIC listen address [default: 0.0.0.0:4433].
    #[arg(long, global = true, env = "CLINICMEET_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Data directory (database, certificate, secrets) [default: ./clinicmeet-data].
    #[arg(long, global = true, env = "CLINICMEET_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Operators' HTTP address for /health and /metrics (off unless given).
    #[arg(long, global = true, env = "CLINICMEET_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// HTTPS address for browser guests: the guest page and its WebSocket (off unless given;
    /// 0.0.0.0:443 or :8443 in production, with the clinic's certificate).
    #[arg(long, global = true, env = "CLINICMEET_HTTPS_LISTEN")]
    pub https_listen: Option<SocketAddr>,
    /// Directory with the built guest page (`guest.html` + assets) [default: `guest/` next to
    /// the binary if present, else `ui/dist`].
    #[arg(long, global = true, env = "CLINICMEET_GUEST_DIR")]
    pub guest_dir: Option<PathBuf>,
    /// Local address WebRTC media binds [default: 0.0.0.0, i.e. every non-loopback
    /// interface is offered to browsers].
    #[arg(long, global = true, env = "CLINICMEET_WEBRTC_BIND")]
    pub webrtc_bind: Option<std::net::IpAddr>,
    /// The one UDP port all browser guests' media uses (ICE, DTLS-SRTP); 0 picks a free
    /// port at start [default: 3478].
    #[arg(long, global = true, env = "CLINICMEET_WEBRTC_UDP")]
    pub webrtc_udp: Option<u16>,
    /// ICE over TCP on the HTTPS port, for networks that block UDP (`true`/`false`)
    /// [default: true].
    #[arg(long, global = true, env = "CLINICMEET_WEBRTC_TCP")]
    pub webrtc_tcp: Option<bool>,
    /// Public address advertised to browsers instead of the local one (1:1 NAT).
    #[arg(long, global = true, env = "CLINICMEET_PUBLIC_IP")]
    pub public_ip: Option<std::net::IpAddr>,
    /// PEM certificate chain provided by the clinic (with --key).
    #[arg(long, global = true, env = "CLINICMEET_CERT", requires = "key")]
    pub cert: Option<PathBuf>,
    /// PEM private key for --cert.
    #[arg(long, global = true, env = "CLINICMEET_KEY", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Extra DNS names / IPs for the self-signed certificate (comma-separated or repeated).
    #[arg(long, global = true, env = "CLINICMEET_PUBLIC_NAME", value_delimiter = ',')]
    pub public_name: Option<Vec<String>>,
    /// Most client connections at once [default: 2000].
    #[arg(long, global = true, env = "CLINICMEET_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Most connections at once from one source: an IPv4 address or an IPv6 /64,
    /// QUIC and HTTPS/WebSocket together [default: 20].
    #[arg(long, global = true, env = "CLINICMEET_MAX_CONNECTIONS_PER_SOURCE")]
    pub max_connections_per_source: Option<usize>,
    /// Seconds a new connection has to open its control stream and send `hello`
    /// before it is closed [default: 5].
    #[arg(long, global = true, env = "CLINICMEET_HELLO_TIMEOUT_SECS")]
    pub hello_timeout_secs: Option<u64>,
    /// Reverse proxies in front of the HTTPS port (CIDR blocks, comma-separated or
    /// repeated): only from these is `X-Forwarded-For` read, so per-source limits
    /// and the audit log see the patient's address [default: none].
    #[arg(long, global = true, env = "CLINICMEET_TRUSTED_PROXY", value_delimiter = ',')]
    pub trusted_proxy: Option<Vec<String>>,
    /// Browser guests: seconds between WebSocket pings [default: 5].
    #[arg(long, global = true, env = "CLINICMEET_WS_PING_SECS")]
    pub ws_ping_secs: Option<u64>,
    /// Browser guests: a WebSocket silent this many seconds (no pong, no message) is
    /// closed; the guest then leaves after the resume grace [default: 15].
    #[arg(long, global = true, env = "CLINICMEET_WS_TIMEOUT_SECS")]
    pub ws_timeout_secs: Option<u64>,
    /// Most participants across all meetings [default: 2000].
    #[arg(long, global = true, env = "CLINICMEET_MAX_PARTICIPANTS")]
    pub max_participants: Option<usize>,
    /// Chat messages per second per participant [default: 10].
    #[arg(long, global = true, env = "CLINICMEET_CHAT_RATE")]
    pub chat_rate: Option<f64>,
    /// Chat burst per participant [default: 30].
    #[arg(long, global = true, env = "CLINICMEET_CHAT_BURST")]
    pub chat_burst: Option<f64>,
    /// Requests per second per connection [default: 50].
    #[arg(long, global = true, env = "CLINICMEET_REQUEST_RATE")]
    pub request_rate: Option<f64>,
    /// Request burst per connection [default: 200].
    #[arg(long, global = true, env = "CLINICMEET_REQUEST_BURST")]
    pub request_burst: Option<f64>,
    /// Wrong access codes one address (IPv6: /64) may make at once; after them
    /// each further attempt waits `--failed-code-delay-secs` (no lock-out) [default: 10].
    #[arg(long, global = true, env = "CLINICMEET_MAX_FAILED_CODES_PER_IP")]
    pub max_failed_codes_per_ip: Option<u32>,
    /// Seconds one address waits per further attempt once its free wrong codes are spent [default: 6].
    #[arg(long, global = true, env = "CLINICMEET_FAILED_CODE_DELAY_SECS")]
    pub failed_code_delay_secs: Option<f64>,
    /// Wrong codes per second one code bucket absorbs from everyone (after a burst of 30) [default: 0.5].
    #[arg(long, global = true, env = "CLINICMEET_BUCKET_GUESS_RATE")]
    pub bucket_guess_rate: Option<f64>,
    /// Code attempts per second per bucket reserved for addresses without recent failures [default: 0.5].
    #[arg(long, global = true, env = "CLINICMEET_CLEAN_LANE_RATE")]
    pub clean_lane_rate: Option<f64>,
    /// Failed codes and enrollments are audited as one row per source per window of this many seconds [default: 60].
    #[arg(long, global = true, env = "CLINICMEET_AUDIT_WINDOW_SECS")]
    pub audit_window_secs: Option<u64>,
    /// How long a dropped participant keeps its place, seconds [default: 60].
    #[arg(long, global = true, env = "CLINICMEET_RESUME_GRACE_SECS")]
    pub resume_grace_secs: Option<u64>,
    /// Days the relay keeps a meeting's chat after it ends [default: 30].
    #[arg(long, global = true, env = "CLINICMEET_CHAT_RETENTION_DAYS")]
    pub chat_retention_days: Option<u64>,
    /// Days the relay keeps the audit log [default: 365].
    #[arg(long, global = true, env = "CLINICMEET_AUDIT_RETENTION_DAYS")]
    pub audit_retention_days: Option<u64>,
    /// Days the audit log keeps source addresses (then blanked) [default: 30].
    #[arg(long, global = true, env = "CLINICMEET_ADDRESS_RETENTION_DAYS")]
    pub address_retention_days: Option<u64>,
    /// A meeting nobody has been in for this many hours ends by itself (scheduled
    /// ones counted from their start) [default: 12].
    #[arg(long, global = true, env = "CLINICMEET_ABANDON_AFTER_HOURS")]
    pub abandon_after_hours: Option<u64>,
    /// Days an enrollment code stays valid [default: 7].
    #[arg(long, global = true, env = "CLINICMEET_ENROLLMENT_TTL_DAYS")]
    pub enrollment_ttl_days: Option<u64>,
    /// QUIC keep-alive interval, seconds [default: 5].
    #[arg(long, global = true, env = "CLINICMEET_KEEP_ALIVE_SECS")]
    pub keep_alive_secs: Option<u64>,
    /// QUIC idle timeout, seconds [default: 15].
    #[arg(long, global = true, env = "CLINICMEET_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// SQLite durability: `full` (fsync every commit) or `normal` [default: full].
    #[arg(long, global = true, env = "CLINICMEET_SQLITE_SYNC")]
    pub sqlite_sync: Option<String>,
    /// Most subscriptions (forwarded streams) across the relay; joins and
    /// subscriptions beyond get `server_busy` [default: 10000].
    #[arg(long, global = true, env = "CLINICMEET_MAX_FORWARDED_STREAMS")]
    pub max_forwarded_streams: Option<usize>,
    /// QUIC path-MTU discovery (`true`/`false`) [default: true].
    #[arg(long, global = true, env = "CLINICMEET_MTU_DISCOVERY")]
    pub mtu_discovery: Option<bool>,
    /// Control messages queued for one connection, KiB, before it is closed as a
    /// slow consumer (it resumes and resyncs) [default: 1024].
    #[arg(long, global = true, env = "CLINICMEET_OUTPUT_BUDGET_KIB")]
    pub output_budget_kib: Option<usize>,
    /// Per-connection QUIC datagram send queue, KiB [default: 256].
    #[arg(long, global = true, env = "CLINICMEET_DATAGRAM_SEND_BUFFER_KIB")]
    pub datagram_send_buffer_kib: Option<usize>,
    /// Largest chat attachment, KiB [default: 25600 = 25 MiB].
    #[arg(long, global = true, env = "CLINICMEET_MAX_ATTACHMENT_KIB")]
    pub max_attachment_kib: Option<u64>,
    /// All attachments of one meeting together, KiB [default: 204800 = 200 MiB].
    #[arg(long, global = true, env = "CLINICMEET_MAX_MEETING_ATTACHMENTS_KIB")]
    pub max_meeting_attachments_kib: Option<u64>,
}

impl Opts {
    /// Fields set here win over `other`.
    fn or(self, other: Opts) -> Opts {
        Opts {
            config: self.config.or(other.config),
            listen: self.listen.or(other.listen),
            data_dir: self.data_dir.or(other.data_dir),
            http_listen: self.http_listen.or(other.http_listen),
            https_listen: self.https_listen.or(other.https_listen),
            guest_dir: self.guest_dir.or(other.guest_dir),
            webrtc_bind: self.webrtc_bind.or(other.webrtc_bind),
            webrtc_udp: self.webrtc_udp.or(other.webrtc_udp),
            webrtc_tcp: self.webrtc_tcp.or(other.webrtc_tcp),
            public_ip: self.public_ip.or(other.public_ip),
            cert: self.cert.or(other.cert),
            key: self.key.or(other.key),
            public_name: self.public_name.or(other.public_name),
            max_connections: self.max_connections.or(other.max_connections),
            max_participants: self.max_participants.or(other.max_participants),
            max_connections_per_source: self.max_connections_per_source.or(other.max_connections_per_source),
            hello_timeout_secs: self.hello_timeout_secs.or(other.hello_timeout_secs),
            ws_ping_secs: self.ws_ping_secs.or(other.ws_ping_secs),
            trusted_proxy: self.trusted_proxy.or(other.trusted_proxy),
            ws_timeout_secs: self.ws_timeout_secs.or(other.ws_timeout_secs),
            chat_rate: self.chat_rate.or(other.chat_rate),
            chat_burst: self.chat_burst.or(other.chat_burst),
            request_rate: self.request_rate.or(other.request_rate),
            request_burst: self.request_burst.or(other.request_burst),
            max_failed_codes_per_ip: self.max_failed_codes_per_ip.or(other.max_failed_codes_per_ip),
            failed_code_delay_secs: self.failed_code_delay_secs.or(other.failed_code_delay_secs),
            bucket_guess_rate: self.bucket_guess_rate.or(other.bucket_guess_rate),
            clean_lane_rate: self.clean_lane_rate.or(other.clean_lane_rate),
            audit_window_secs: self.audit_window_secs.or(other.audit_window_secs),
            resume_grace_secs: self.resume_grace_secs.or(other.resume_grace_secs),
            chat_retention_days: self.chat_retention_days.or(other.chat_retention_days),
            audit_retention_days: self.audit_retention_days.or(other.audit_retention_days),
            address_retention_days: self.address_retention_days.or(other.address_retention_days),
            abandon_after_hours: self.abandon_after_hours.or(other.abandon_after_hours),
            enrollment_ttl_days: self.enrollment_ttl_days.or(other.enrollment_ttl_days),
            keep_alive_secs: self.keep_alive_secs.or(other.keep_alive_secs),
            idle_timeout_secs: self.idle_timeout_secs.or(other.idle_timeout_secs),
            sqlite_sync: self.sqlite_sync.or(other.sqlite_sync),
            max_forwarded_streams: self.max_forwarded_streams.or(other.max_forwarded_streams),
            mtu_discovery: self.mtu_discovery.or(other.mtu_discovery),
            datagram_send_buffer_kib: self.datagram_send_buffer_kib.or(other.datagram_send_buffer_kib),
            output_budget_kib: self.output_budget_kib.or(other.output_budget_kib),
            max_attachment_kib: self.max_attachment_kib.or(other.max_attachment_kib),
            max_meeting_attachments_kib: self
                .max_meeting_attachments_kib
                .or(other.max_meeting_attachments_kib),
        }
    }
}

/// Default shared WebRTC UDP port: the STUN/TURN port, which restrictive networks
/// open for calls more often than arbitrary UDP ports.
pub const DEFAULT_WEBRTC_UDP: u16 = 3478;

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub http_listen: Option<SocketAddr>,
    pub https_listen: Option<SocketAddr>,
    pub guest_dir: Option<PathBuf>,
    pub webrtc_bind: std::net::IpAddr,
    pub webrtc_udp: u16,
    pub webrtc_tcp: bool,
    pub public_ip: Option<std::net::IpAddr>,
    pub cert: Option<(PathBuf, PathBuf)>,
    pub public_names: Vec<String>,
    pub keep_alive: Duration,
    pub idle_timeout: Duration,
    pub sqlite_sync: SyncMode,
    pub hub: HubConfig,
    pub transport: crate::cert::MediaTransport,
    /// Bytes of control frames queued per connection before `slow_consumer`.
    pub output_budget: usize,
    /// Connections at once per source (IPv4 address, IPv6 /64).
    pub max_connections_per_source: usize,
    /// Browser guests' WebSocket ping interval and silence timeout.
    pub ws_ping: Duration,
    pub ws_timeout: Duration,
    /// Whose `X-Forwarded-For` is believed (browser guests behind a reverse proxy).
    pub trusted_proxies: crate::proxy::TrustedProxies,
}

impl Settings {
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("relay.db")
    }
}

fn read_file(path: &Path) -> Result<Opts, RelayError> {
    let text = std::fs::read_to_string(path).map_err(|e| RelayError::io(path, e))?;
    toml::from_str(&text).map_err(|e| RelayError::Config(format!("{}: {e}", path.display())))
}

/// Merges flags/env, the config file and defaults.
pub fn resolve(cli: Opts) -> Result<Settings, RelayError> {
    let file = match &cli.config {
        Some(p) => read_file(p)?,
        None => Opts::default(),
    };
    let o = cli.or(file);
    let d = HubConfig::default();
    let secs = |v: Option<u64>, def: u64| v.unwrap_or(def) as i64 * 1000;
    let days = |v: Option<u64>, def: u64| v.unwrap_or(def) as i64 * 86_400_000;
    let rate = |v: Option<f64>, def: f64, name: &str| -> Result<f64, RelayError> {
        let r = v.unwrap_or(def);
        if r.is_finite() && r > 0.0 {
            Ok(r)
        } else {
            Err(RelayError::Config(format!("{name} must be a positive number")))
        }
    };
    let hub = HubConfig {
        server_name: d.server_name,
        max_connections: o.max_connections.unwrap_or(d.max_connections),
        max_participants: o.max_participants.unwrap_or(d.max_participants),
        chat_rate: rate(o.chat_rate, d.chat_rate, "chat-rate")?,
        chat_burst: rate(o.chat_burst, d.chat_burst, "chat-burst")?.max(1.0),
        request_rate: rate(o.request_rate, d.request_rate, "request-rate")?,
        request_burst: rate(o.request_burst, d.request_burst, "request-burst")?.max(1.0),
        resume_grace_ms: secs(o.resume_grace_secs, 60),
        code_guard: CodeGuardConfig {
            source_burst: f64::from(o.max_failed_codes_per_ip.unwrap_or(10).max(1)),
            source_rate: 1.0
                / rate(o.failed_code_delay_secs, 1.0 / d.code_guard.source_rate, "failed-code-delay-secs")?,
            bucket_rate: rate(o.bucket_guess_rate, d.code_guard.bucket_rate, "bucket-guess-rate")?,
            lane_rate: rate(o.clean_lane_rate, d.code_guard.lane_rate, "clean-lane-rate")?,
            ..d.code_guard
        },
        enroll_guard: d.enroll_guard,
        audit_window_ms: secs(o.audit_window_secs, 60).max(1000),
        chat_retention_ms: days(o.chat_retention_days, 30),
        audit_retention_ms: days(o.audit_retention_days, 365),
        address_retention_ms: days(o.address_retention_days, 30),
        abandon_after_ms: secs(o.abandon_after_hours.map(|h| h.saturating_mul(3600)), 12 * 3600).max(60_000),
        enrollment_ttl_ms: days(o.enrollment_ttl_days, 7),
        max_forwarded_streams: o.max_forwarded_streams.unwrap_or(d.max_forwarded_streams),
        hello_timeout_ms: secs(o.hello_timeout_secs, 5).max(1),
        max_attachment_bytes: o.max_attachment_kib.map_or(d.max_attachment_bytes, |k| k.saturating_mul(1024)),
        max_meeting_attachment_bytes: o
            .max_meeting_attachments_kib
            .map_or(d.max_meeting_attachment_bytes, |k| k.saturating_mul(1024)),
    };
    let td = crate::cert::MediaTransport::default();
    let transport = crate::cert::MediaTransport {
        mtu_discovery: o.mtu_discovery.unwrap_or(td.mtu_discovery),
        datagram_send_buffer: o
            .datagram_send_buffer_kib
            .map_or(td.datagram_send_buffer, |k| k.clamp(16, 64 * 1024) * 1024),
    };
    let sqlite_sync = match o.sqlite_sync.as_deref().unwrap_or("full") {
        "full" => SyncMode::Full,
        "normal" => SyncMode::Normal,
        other => return Err(RelayError::Config(format!("sqlite-sync must be full or normal, not {other}"))),
    };
    let cert = match (o.cert, o.key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => return Err(RelayError::Config("--cert and --key go together".into())),
    };
    let idle = o.idle_timeout_secs.unwrap_or(15).max(1);
    Ok(Settings {
        listen: o.listen.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 4433))),
        data_dir: o.data_dir.unwrap_or_else(|| PathBuf::from("./clinicmeet-data")),
        http_listen: o.http_listen,
        https_listen: o.https_listen,
        guest_dir: o.guest_dir,
        webrtc_bind: o.webrtc_bind.unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
        webrtc_udp: o.webrtc_udp.unwrap_or(DEFAULT_WEBRTC_UDP),
        webrtc_tcp: o.webrtc_tcp.unwrap_or(true),
        public_ip: o.public_ip,
        cert,
        public_names: o.public_name.unwrap_or_default(),
        keep_alive: Duration::from_secs(o.keep_alive_secs.unwrap_or(5).clamp(1, idle)),
        idle_timeout: Duration::from_secs(idle),
        sqlite_sync,
        hub,
        transport,
        // At least one maximum-size frame must fit.
        trusted_proxies: crate::proxy::TrustedProxies::new(
            o.trusted_proxy
                .unwrap_or_default()
                .iter()
                .map(|c| {
                    crate::proxy::Cidr::parse(c)
                        .map_err(|e| RelayError::Config(format!("trusted-proxy: {e}")))
                })
                .collect::<Result<_, _>>()?,
        ),
        ws_ping: Duration::from_secs(o.ws_ping_secs.unwrap_or(5).max(1)),
        ws_timeout: Duration::from_secs(o.ws_timeout_secs.unwrap_or(15).max(1)),
        max_connections_per_source: o
            .max_connections_per_source
            .unwrap_or(crate::admission::DEFAULT_PER_SOURCE)
            .max(1),
        output_budget: o
            .output_budget_kib
            .map_or(crate::outbox::DEFAULT_BUDGET, |k| k.saturating_mul(1024))
            .max(clinicmeet_protocol::limits::MAX_FRAME_LEN + 4),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_beat_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("relay.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\nchat-rate = 3.0\nresume-grace-secs = 5\n")
            .unwrap();
        let cli = Cli::try_parse_from([
            "clinicmeet-relay",
            "--config",
            file.to_str().unwrap(),
            "--chat-rate",
            "7",
            "serve",
        ])
        .unwrap();
        let s = resolve(cli.opts).unwrap();
        assert_eq!(s.listen, "127.0.0.1:9000".parse::<SocketAddr>().unwrap());
        assert_eq!(s.hub.chat_rate, 7.0);
        assert_eq!(s.hub.resume_grace_ms, 5000);
        assert_eq!(s.hub.code_guard.source_burst, 10.0);
        assert_eq!(s.data_dir, PathBuf::from("./clinicmeet-data"));
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("relay.toml");
        std::fs::write(&file, "lisen = \"127.0.0.1:9000\"\n").unwrap();
        let opts = Opts { config: Some(file), ..Opts::default() };
        assert!(resolve(opts).is_err());
    }
}
