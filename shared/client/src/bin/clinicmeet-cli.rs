//! `clinicmeet-cli`: a headless ClinicMeet client for admins and tests.
//!
//! Every line on stdout is one JSON object. Logs go to stderr (`RUST_LOG`).
//! Exit codes: 0 success (left, meeting ended); 1 other failure; 2 join
//! refused (an `error` line with the relay's code precedes it); 3 denied
//! from the waiting room; 4 removed by a moderator.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::{Parser, Subcommand, ValueEnum};
use clinicmeet_client::session::{default_data_dir, Connected, JoinOutcome};
use clinicmeet_client::store::Store;
use clinicmeet_client::{ClientError, ClientEvent, Session, SessionConfig};
use clinicmeet_protocol::{
    AccessCode, MediaState, MeetingKind, MeetingSettings, MeetingSpec, ParticipantId, Schedule,
};
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;
use uuid::Uuid;

/// How long `/leave` and end of input wait for unsent chat before leaving.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Parser, Debug)]
#[command(name = "clinicmeet-cli", version, about = "Headless ClinicMeet client: JSON lines on stdout")]
struct Cli {
    /// Relay QUIC address, HOST:PORT.
    #[arg(long, env = "CLINICMEET_RELAY", global = true)]
    relay: Option<String>,
    /// Relay key pin, sha256/BASE64 (printed by the relay). Remembered per relay.
    #[arg(long, env = "CLINICMEET_PIN", global = true)]
    pin: Option<String>,
    /// Display name in meetings.
    #[arg(long, env = "CLINICMEET_NAME", global = true)]
    name: Option<String>,
    /// Data directory holding the local SQLite store.
    #[arg(long, env = "CLINICMEET_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Local IP address to bind (e.g. 127.0.0.2).
    #[arg(long, env = "CLINICMEET_BIND", global = true)]
    bind: Option<IpAddr>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Kind {
    Video,
    AudioOnly,
    Consultation,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Exchange a one-time enrollment code for this device's staff credential.
    Enroll {
        code: String,
        /// Device name shown to the relay admin (default: --name or "clinicmeet-cli").
        #[arg(long)]
        device_name: Option<String>,
    },
    /// Staff: create a meeting; prints {"meeting_id","access_code",...}.
    Create {
        #[arg(long)]
        title: String,
        #[arg(long)]
        description: Option<String>,
        #[arg(long, value_enum, default_value = "video")]
        kind: Kind,
        #[arg(long)]
        patient_ref: Option<String>,
        #[arg(long)]
        waiting_room: bool,
        #[arg(long)]
        mute_on_join: bool,
        #[arg(long)]
        max_participants: Option<u32>,
        #[arg(long)]
        no_screen_share: bool,
        #[arg(long)]
        allow_recording: bool,
        /// Start time, RFC 3339 (e.g. 2026-12-01T09:00:00+01:00).
        #[arg(long, requires = "tz")]
        schedule: Option<String>,
        /// IANA time-zone name of the creator (e.g. Europe/Berlin).
        #[arg(long)]
        tz: Option<String>,
    },
    /// Staff: active and scheduled meetings, one JSON line each.
    Meetings,
    /// Join a meeting and stay: events on stdout, chat and /commands on stdin.
    Join {
        code: String,
        /// Join without camera or microphone.
        #[arg(long)]
        chat_only: bool,
        /// Stay in the meeting after stdin ends.
        #[arg(long)]
        stay: bool,
    },
    /// The local chat of a meeting (by access code or meeting id), JSON lines in order.
    History { meeting: String },
    /// Local consultation records, JSON lines.
    Consultations,
}

fn out(v: &Value) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{v}");
    let _ = stdout.flush();
}

fn error_line(code: &str, message: &str, command: Option<&str>) -> Value {
    let mut v = json!({"event": "error", "code": code, "message": message});
    if let Some(c) = command {
        v["command"] = json!(c);
    }
    v
}

fn client_error_line(e: &ClientError, command: Option<&str>) -> Value {
    let message = match e {
        ClientError::Relay(b) | ClientError::Invalid(b) => b.message.clone(),
        other => other.to_string(),
    };
    let mut v = error_line(e.code_str(), &message, command);
    if let ClientError::Relay(b) = e {
        if let Some(ms) = b.retry_after_ms {
            v["retry_after_ms"] = json!(ms);
        }
    }
    v
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,clinicmeet_client=info")),
        )
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            out(&error_line("runtime", &e.to_string(), None));
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(run(cli));
    // The stdin reader is a blocking read that never ends while the pipe stays
    // open; don't let runtime shutdown wait for it.
    rt.shutdown_background();
    match result {
        Ok(code) => code,
        Err(e) => {
            let line = match e.downcast_ref::<ClientError>() {
                Some(ce) => client_error_line(ce, None),
                None => error_line("error", &format!("{e:#}"), None),
            };
            out(&line);
            ExitCode::from(1)
        }
    }
}

fn data_dir(cli: &Cli) -> PathBuf {
    cli.data_dir.clone().unwrap_or_else(default_data_dir)
}

type Events = tokio::sync::mpsc::UnboundedReceiver<ClientEvent>;

async fn connect(cli: &Cli) -> anyhow::Result<(Session, Events, tokio::task::JoinHandle<()>)> {
    let relay = cli
        .relay
        .clone()
        .ok_or_else(|| anyhow!("no relay given: use --relay HOST:PORT or CLINICMEET_RELAY"))?;
    let mut cfg = SessionConfig::new(relay, data_dir(cli));
    cfg.pin = cli.pin.clone();
    cfg.bind = cli.bind;
    cfg.client_name = format!("clinicmeet-cli/{}", env!("CARGO_PKG_VERSION"));
    let Connected { session, events, driver } = Session::connect(cfg).await?;
    // The one task this binary spawns for the session: its driver.
    let handle = tokio::spawn(async move {
        if let Err(e) = driver.run().await {
            tracing::warn!(error = %e, "session driver ended with an error");
        }
    });
    Ok((session, events, handle))
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.cmd {
        Cmd::History { meeting } => history(&cli, meeting),
        Cmd::Consultations => {
            let store = Store::open_dir(&data_dir(&cli))?;
            for c in store.consultations()? {
                out(&serde_json::to_value(&c)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Enroll { code, device_name } => {
            let (session, _events, driver) = connect(&cli).await?;
            let device = device_name.clone().or(cli.name.clone()).unwrap_or_else(|| "clinicmeet-cli".into());
            let staff = session.enroll(code, &device).await;
            session.close();
            let _ = driver.await;
            let staff = staff?;
            out(&json!({"staff_id": staff.staff_id, "name": staff.name, "relay": cli.relay}));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Create {
            title,
            description,
            kind,
            patient_ref,
            waiting_room,
            mute_on_join,
            max_participants,
            no_screen_share,
            allow_recording,
            schedule,
            tz,
        } => {
            let schedule = match schedule {
                Some(s) => {
                    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                        .with_context(|| format!("--schedule `{s}` is not RFC 3339"))?;
                    Some(Schedule {
                        start: (t.unix_timestamp_nanos() / 1_000_000) as i64,
                        time_zone: tz.clone().unwrap_or_else(|| "UTC".into()),
                    })
                }
                None => None,
            };
            let defaults = MeetingSettings::default();
            let spec = MeetingSpec {
                title: title.clone(),
                description: description.clone(),
                kind: match kind {
                    Kind::Video => MeetingKind::Video,
                    Kind::AudioOnly => MeetingKind::AudioOnly,
                    Kind::Consultation => MeetingKind::Consultation,
                },
                patient_reference: patient_ref.clone(),
                schedule,
                settings: MeetingSettings {
                    allow_screen_share: !no_screen_share,
                    allow_recording: *allow_recording,
                    mute_on_join: *mute_on_join,
                    waiting_room: *waiting_room,
                    max_participants: max_participants.unwrap_or(defaults.max_participants),
                    chat_enabled: true,
                },
            };
            let (session, _events, driver) = connect(&cli).await?;
            let r = session.create_meeting(spec).await;
            session.close();
            let _ = driver.await;
            let (meeting, code) = r?;
            out(&json!({
                "meeting_id": meeting.id,
                "access_code": code,
                "title": meeting.title,
                "kind": meeting.kind,
                "status": meeting.status,
            }));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Meetings => {
            let (session, _events, driver) = connect(&cli).await?;
            let r = session.list_meetings().await;
            session.close();
            let _ = driver.await;
            let list = r?;
            let store = Store::open_dir(&data_dir(&cli))?;
            for m in list {
                let mut v = serde_json::to_value(&m)?;
                v["meeting_id"] = json!(m.meeting.id);
                let code = store.meeting(m.meeting.id)?.and_then(|r| r.access_code);
                v["access_code"] =
                    json!(code.and_then(|c| AccessCode::parse(&c).ok()).map(|c| c.to_string()));
                out(&v);
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Join { code, chat_only, stay } => join(&cli, code, *chat_only, *stay).await,
    }
}

fn history(cli: &Cli, meeting: &str) -> anyhow::Result<ExitCode> {
    let store = Store::open_dir(&data_dir(cli))?;
    let record = match Uuid::parse_str(meeting) {
        Ok(id) => store.meeting(id)?,
        Err(_) => match AccessCode::parse(meeting) {
            Ok(code) => store.meeting_by_code(None, code.normalized())?,
            Err(_) => None,
        },
    };
    let id = match (record, Uuid::parse_str(meeting)) {
        (Some(r), _) => r.meeting_id,
        (None, Ok(id)) => id,
        (None, Err(_)) => {
            out(&error_line("not_found", "no local meeting with this code or id", None));
            return Ok(ExitCode::from(1));
        }
    };
    for line in store.history(id)? {
        out(&serde_json::to_value(&line)?);
    }
    Ok(ExitCode::SUCCESS)
}

async fn join(cli: &Cli, code: &str, chat_only: bool, stay: bool) -> anyhow::Result<ExitCode> {
    let (session, mut events, driver) = match connect(cli).await {
        Ok(x) => x,
        Err(e) => {
            let line = match e.downcast_ref::<ClientError>() {
                Some(ce) => client_error_line(ce, Some("join")),
                None => error_line("error", &format!("{e:#}"), Some("join")),
            };
            out(&line);
            return Ok(ExitCode::from(2));
        }
    };
    let name = cli.name.clone().unwrap_or_else(|| "Guest".into());
    let media = if chat_only {
        MediaState::default()
    } else {
        MediaState { audio: true, video: true, screen: false }
    };

    let (line_tx, mut lines) = tokio::sync::mpsc::channel::<String>(256);
    tokio::spawn(async move {
        let mut reader = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(l)) = reader.next_line().await {
            if line_tx.send(l).await.is_err() {
                break;
            }
        }
    });

    let join_fut = session.join(code, &name, media);
    tokio::pin!(join_fut);
    let mut join_done = false;
    let mut stdin_open = true;
    let code = loop {
        tokio::select! {
            r = &mut join_fut, if !join_done => {
                join_done = true;
                match r {
                    Ok(JoinOutcome::Joined(_)) | Ok(JoinOutcome::Waiting { .. }) => {}
                    Err(e) => {
                        // Events already queued (e.g. the connection line) come first.
                        while let Ok(ev) = events.try_recv() {
                            print_event(&ev);
                        }
                        out(&client_error_line(&e, Some("join")));
                        break match e.code() {
                            Some(clinicmeet_protocol::ErrorCode::Denied) => ExitCode::from(3),
                            _ => ExitCode::from(2),
                        };
                    }
                }
            }
            ev = events.recv() => {
                let Some(ev) = ev else { break ExitCode::from(1) };
                print_event(&ev);
                match ev {
                    ClientEvent::Left | ClientEvent::MeetingEnded { .. } => break ExitCode::SUCCESS,
                    ClientEvent::Denied => break ExitCode::from(3),
                    ClientEvent::Removed => break ExitCode::from(4),
                    ClientEvent::Connection { state: clinicmeet_client::ConnectionState::Disconnected, .. } => {
                        break ExitCode::from(1)
                    }
                    _ => {}
                }
            }
            line = lines.recv(), if join_done && stdin_open => {
                match line {
                    Some(l) => {
                        command(&session, l.trim_end_matches('\r')).await;
                    }
                    None => {
                        stdin_open = false;
                        if !stay {
                            leave(&session).await;
                        }
                    }
                }
            }
        }
    };
    session.close();
    // Print whatever came before the close (left, chat statuses).
    let _ = tokio::time::timeout(Duration::from_secs(2), driver).await;
    while let Ok(ev) = events.try_recv() {
        if !matches!(ev, ClientEvent::Connection { .. }) {
            print_event(&ev);
        }
    }
    Ok(code)
}

fn print_event(ev: &ClientEvent) {
    match serde_json::to_value(ev) {
        Ok(v) => out(&v),
        Err(e) => out(&error_line("internal", &format!("could not print event: {e}"), None)),
    }
}

async fn leave(session: &Session) {
    if tokio::time::timeout(FLUSH_TIMEOUT, session.flush()).await.is_err() {
        out(&error_line("timeout", "unsent messages remain in the outbox; leaving anyway", Some("leave")));
    }
    if let Err(e) = session.leave().await {
        out(&client_error_line(&e, Some("leave")));
    }
}

/// Finds a participant by id or display name (waiting room first for admit/deny).
async fn resolve_participant(
    session: &Session,
    arg: &str,
    waiting_first: bool,
) -> Result<ParticipantId, String> {
    if let Ok(id) = Uuid::parse_str(arg) {
        return Ok(id);
    }
    let view = session.snapshot().await.ok().flatten().ok_or("not in a meeting")?;
    let in_waiting = view.waiting.iter().find(|w| w.display_name == arg).map(|w| w.participant_id);
    let in_meeting = view.participants.iter().find(|p| p.display_name == arg).map(|p| p.id);
    let found = if waiting_first { in_waiting.or(in_meeting) } else { in_meeting.or(in_waiting) };
    found.ok_or_else(|| format!("no participant `{arg}`"))
}

async fn command(session: &Session, line: &str) {
    if line.trim().is_empty() {
        return;
    }
    let Some(cmd) = line.strip_prefix('/') else {
        if let Err(e) = session.send_chat(line, false).await {
            out(&client_error_line(&e, Some("chat")));
        }
        return;
    };
    let (name, arg) = cmd.split_once(' ').map_or((cmd, ""), |(n, a)| (n, a.trim()));
    let result: Result<Option<Value>, ClientError> = match name {
        "note" => session.send_chat(arg, true).await.map(|_| None),
        "leave" => {
            leave(session).await;
            return; // the `left` event ends the loop
        }
        "typing" => session.typing(true).map(|_| None),
        "lock" => session.set_locked(true).await.map(|_| Some(Value::Null)),
        "unlock" => session.set_locked(false).await.map(|_| Some(Value::Null)),
        "end" => session.end_meeting().await.map(|_| Some(Value::Null)),
        "start-consultation" => session.start_consultation().await.map(|_| Some(Value::Null)),
        "end-consultation" => {
            let notes = (!arg.is_empty()).then(|| arg.to_string());
            match session.end_consultation(notes).await {
                Ok(t) => {
                    out(&json!({"event": "consultation_ended", "started_at": t.started_at,
                        "ended_at": t.ended_at, "duration_secs": t.duration_secs}));
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        }
        "media" => {
            let mut m = MediaState::default();
            for f in arg.split_whitespace() {
                match f {
                    "audio" => m.audio = true,
                    "video" => m.video = true,
                    "screen" => m.screen = true,
                    _ => {}
                }
            }
            session.update_media(m).await.map(|_| Some(Value::Null))
        }
        "retry" => match Uuid::parse_str(arg) {
            Ok(id) => session.retry_chat(id).await.map(|_| Some(Value::Null)),
            Err(_) => {
                out(&error_line("usage", "/retry needs a client message id", Some(name)));
                return;
            }
        },
        "admit" | "deny" | "mute" | "remove" | "promote" | "demote" => {
            let id = match resolve_participant(session, arg, matches!(name, "admit" | "deny")).await {
                Ok(id) => id,
                Err(msg) => {
                    out(&error_line("not_found", &msg, Some(name)));
                    return;
                }
            };
            let r = match name {
                "admit" => session.admit(id).await,
                "deny" => session.deny(id).await,
                "mute" => session.mute(id).await,
                "remove" => session.remove(id).await,
                "promote" => session.promote(id).await,
                _ => session.demote(id).await,
            };
            r.map(|_| Some(json!(id)))
        }
        other => {
            out(&error_line("usage", &format!("unknown command /{other}"), Some(other)));
            return;
        }
    };
    match result {
        Ok(Some(v)) => {
            let mut line = json!({"event": "ok", "command": name});
            if !v.is_null() {
                line["participant_id"] = v;
            }
            out(&line);
        }
        Ok(None) => {}
        Err(e) => out(&client_error_line(&e, Some(name))),
    }
}
