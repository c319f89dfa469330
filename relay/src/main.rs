//! `clinicmeet-relay`: runs the relay (default), prints its pin, manages staff.

use std::io::Write as _;

use anyhow::{bail, Context as _};
use clap::Parser as _;
use clinicmeet_relay::config::{self, Cli, Command, Settings, StaffCommand};
use clinicmeet_relay::keys;
use clinicmeet_relay::store::Store;
use clinicmeet_relay::{identity, Relay};

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
    clinicmeet_sqlite::private_dir(&settings.data_dir)
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

fn staff(s: &Settings, cmd: StaffCommand) -> anyhow::Result<()> {
    let store = Store::open(&s.db_path(), s.sqlite_sync)?;
    let now = clinicmeet_protocol::unix_now_ms();
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
        StaffCommand::AddDevice { staff_id } => {
            let id = uuid::Uuid::parse_str(staff_id.trim()).context("staff id is not a UUID")?;
            let code = keys::new_enrollment_code();
            let hash = keys::hash_secret(&keys::normalize_enrollment_code(&code));
            if !store.add_enrollment_code(id, &hash, now, now + s.hub.enrollment_ttl_ms)? {
                bail!("no active staff member with id {id}");
            }
            writeln!(out, "{}", serde_json::json!({"staff_id": id, "enrollment_code": code}))?;
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
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async move {
        let relay = Relay::new(s).start().await?;
        let ready = ReadyLine {
            event: "listening",
            quic: relay.quic.to_string(),
            pin: &relay.pin,
            http: relay.http.map(|a| a.to_string()),
            https: relay.https.map(|a| a.to_string()),
            webrtc_udp: relay.webrtc_udp.map(|a| a.to_string()),
        };
        let ready = serde_json::to_string(&ready)?;
        {
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{ready}")?;
            stdout.flush()?;
        }
        shutdown_signal().await;
        tracing::info!("shutting down");
        relay.shutdown().await;
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
