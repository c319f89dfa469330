//! `clinicmeet-cli`: a headless ClinicMeet client for admins and tests.
//!
//! Every line on stdout is one JSON object. Logs go to stderr (`RUST_LOG`).
//! Exit codes: 0 success (left, meeting ended); 1 other failure; 2 join
//! refused (an `error` line with the relay's code precedes it); 3 denied
//! from the waiting room; 4 removed by a moderator.

mod observer;

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::{Parser, Subcommand, ValueEnum};
use clinicmeet_client::media::{MediaConfig, MediaEngine};
use clinicmeet_client::session::{default_data_dir, Connected, JoinOutcome};
use clinicmeet_client::store::Store;
use clinicmeet_client::{ClientError, ClientEvent, Session, SessionConfig};
use clinicmeet_protocol::{
    AccessCode, MediaState, MeetingKind, MeetingSettings, MeetingSpec, ParticipantId, PastFilter, Schedule,
};
use serde_json::{json, Value};
use std::sync::Arc;
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
    /// Turn QUIC path-MTU discovery off (media packets stay sized from the base datagram size).
    #[arg(long, env = "CLINICMEET_NO_MTU_DISCOVERY", global = true)]
    no_mtu_discovery: bool,
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
    /// Staff: create a meeting; prints {"meeting_id","access_code","invite_secret",...}.
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
        /// Participants may not unmute themselves after a moderator muted them.
        #[arg(long)]
        no_self_unmute: bool,
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
    Meetings {
        /// Every open meeting of the clinic, not only your own (others' without patient reference).
        #[arg(long)]
        clinic: bool,
    },
    /// Join a meeting and stay: events on stdout, chat and /commands on stdin.
    Join {
        code: String,
        /// Join without camera or microphone.
        #[arg(long)]
        chat_only: bool,
        /// Stay in the meeting after stdin ends.
        #[arg(long)]
        stay: bool,
        #[command(flatten)]
        media: MediaArgs,
    },
    /// The local chat of a meeting (by access code or meeting id), JSON lines in order.
    History { meeting: String },
    /// Local consultation records, JSON lines.
    Consultations,
    /// Staff: a consultation's record on the relay (notes, amendments), written
    /// and read from any of the staff member's enrolled devices.
    Consultation {
        #[command(subcommand)]
        cmd: ConsultationCmd,
    },
    /// Meetings that are over, newest first, one JSON line each: the relay's list
    /// for staff (`"source":"relay"`), then meetings only this device's store
    /// knows (`"source":"local"`).
    Past {
        /// Text the title contains.
        #[arg(long)]
        query: Option<String>,
        /// Started at or after, RFC 3339.
        #[arg(long)]
        from: Option<String>,
        /// Started before, RFC 3339.
        #[arg(long)]
        to: Option<String>,
        /// Only consultations this staff member held.
        #[arg(long)]
        consultations: bool,
        /// Most relay rows (default and largest 200).
        #[arg(long, default_value_t = 0)]
        limit: u32,
        /// Only this device's store (no relay needed).
        #[arg(long)]
        local: bool,
    },
    /// Staff: a scheduled meeting as an iCalendar invitation (`.ics`) with its
    /// invite link (the invite secret this device kept when it created or
    /// re-keyed the meeting, else its access code).
    Ics {
        meeting_id: Uuid,
        #[arg(long)]
        out: PathBuf,
        /// Planned duration in minutes.
        #[arg(long, default_value_t = clinicmeet_client::ics::DEFAULT_DURATION_MINS)]
        duration_mins: u32,
    },
    /// Staff: cancel a meeting you created that has not started; prints {"meeting_id","status":"cancelled"}.
    Cancel { meeting_id: Uuid },
    /// Download a chat attachment to a file (progress and the attachment as JSON
    /// lines). Staff who took part in its meeting need nothing more; anyone else
    /// joins the meeting with `--code` first (and leaves after).
    Download {
        attachment_id: Uuid,
        #[arg(long)]
        out: PathBuf,
        /// Access code (or invite secret) of the attachment's meeting.
        #[arg(long)]
        code: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum ConsultationCmd {
    /// Write the notes of a consultation you held, once it ended (once; then amend).
    Notes { meeting_id: Uuid, text: String },
    /// Add an amendment to the notes (kept with time and author; nothing is overwritten).
    Amend { meeting_id: Uuid, text: String },
    /// The record: meeting, times, duration, notes and amendments (one JSON line).
    Show { meeting_id: Uuid },
}

/// Media flags of `join`.
#[derive(clap::Args, Debug, Clone)]
struct MediaArgs {
    /// Publish camera and microphone: `synthetic` (test pattern + tone).
    #[arg(long)]
    publish: Option<String>,
    /// Synthetic microphone tone (Hz).
    #[arg(long, default_value_t = 440.0)]
    tone_hz: f32,
    /// Synthetic camera size WIDTHxHEIGHT.
    #[arg(long, default_value = "640x360")]
    video_size: String,
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Periodic keyframe interval (0: only on request).
    #[arg(long, default_value_t = 4)]
    keyframe_interval_secs: u32,
    /// Video encoder bitrate ceiling (bit/s).
    #[arg(long, default_value_t = 800_000)]
    video_bitrate: u32,
    /// Write the mixed remote audio as played (48 kHz mono 16-bit WAV).
    #[arg(long)]
    record_audio: Option<PathBuf>,
    /// Receive statistics line interval (ms, 0 = none).
    #[arg(long, default_value_t = 1000)]
    stats_interval_ms: u64,
    /// Check PSNR of every Nth received synthetic frame (0 = never).
    #[arg(long, default_value_t = 5)]
    psnr_every: u64,
    /// Test hook: keep sending audio after a host mute.
    #[arg(long, hide = true)]
    ignore_host_mute: bool,
    /// Bitrate of the low-resolution simulcast encoding of the camera (0 = no simulcast).
    #[arg(long, default_value_t = 150_000)]
    simulcast_low_bps: u32,
    /// Temporal layers of the camera encodings (1-3).
    #[arg(long, default_value_t = 2)]
    temporal_layers: u8,
    /// Publish this Y4M recording (4:2:0) as the camera, looping.
    #[arg(long)]
    video_file: Option<PathBuf>,
    /// Publish this WAV recording (16-bit PCM, 48 kHz) as the microphone, looping.
    #[arg(long)]
    audio_file: Option<PathBuf>,
    /// Write the H.264 (Annex B) of the first remote camera track, as received.
    #[arg(long)]
    record_video: Option<PathBuf>,
    /// Receive at most N remote cameras: those of the N most recent active speakers.
    #[arg(long)]
    max_video: Option<usize>,
    /// Camera pictures reach the encoder this many ms after capture (a slow capture
    /// pipeline; receivers must keep lip sync).
    #[arg(long, default_value_t = 0)]
    video_delay_ms: u64,
    /// Record the call into this file once in the meeting (host or moderator, where the
    /// meeting allows recording): fragmented MP4, H.264 of the active speaker or a
    /// screen share, Opus of everyone. Same as `/record start FILE`.
    #[arg(long)]
    record: Option<PathBuf>,
}

fn media_config(a: &MediaArgs) -> anyhow::Result<Option<MediaConfig>> {
    use clinicmeet_media::capture::file::{WavAudio, WavMicrophone, Y4mCamera, Y4mVideo};
    use clinicmeet_media::capture::synthetic::{SyntheticCamera, SyntheticMicrophone, SyntheticSound};
    use clinicmeet_media::capture::{Pacing, VideoFormat};
    let files = a.video_file.is_some() || a.audio_file.is_some();
    let kind = match a.publish.as_deref() {
        None if !files => {
            // Receive only.
            return Ok(Some(MediaConfig { video_policy: video_policy(a), ..MediaConfig::default() }));
        }
        None => "file",
        Some(k) => k,
    };
    if kind != "synthetic" && kind != "file" {
        anyhow::bail!("--publish supports `synthetic` (no camera or microphone on this build)");
    }
    // Recordings are read (and checked) once; every (re)publish loops them from the start.
    let video_file = match &a.video_file {
        Some(p) => Some(Arc::new(Y4mVideo::parse(
            &std::fs::read(p).map_err(|e| anyhow::anyhow!("--video-file {}: {e}", p.display()))?,
        )?)),
        None => None,
    };
    let audio_file = match &a.audio_file {
        Some(p) => Some(Arc::new(WavAudio::parse(
            &std::fs::read(p).map_err(|e| anyhow::anyhow!("--audio-file {}: {e}", p.display()))?,
        )?)),
        None => None,
    };
    let synthetic = kind == "synthetic";
    let (w, h) = a
        .video_size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .ok_or_else(|| anyhow::anyhow!("--video-size must be WIDTHxHEIGHT"))?;
    let fmt = VideoFormat { width: w, height: h, fps: a.fps };
    let tone = a.tone_hz;
    let delay = std::time::Duration::from_millis(a.video_delay_ms);
    let camera: Option<clinicmeet_client::media::VideoSourceFactory> = match video_file {
        Some(v) => Some(Arc::new(move || {
            Ok(Box::new(Y4mCamera::from_video((*v).clone(), Pacing::RealTime))
                as Box<dyn clinicmeet_media::capture::VideoSource>)
        })),
        None if synthetic => Some(Arc::new(move || {
            Ok(Box::new(SyntheticCamera::new(fmt, Pacing::RealTime)?)
                as Box<dyn clinicmeet_media::capture::VideoSource>)
        })),
        None => None,
    };
    let camera: Option<clinicmeet_client::media::VideoSourceFactory> = match camera {
        Some(f) if !delay.is_zero() => Some(Arc::new(move || {
            Ok(Box::new(clinicmeet_media::capture::Delayed::new(f()?, delay)?)
                as Box<dyn clinicmeet_media::capture::VideoSource>)
        })),
        other => other,
    };
    let microphone: Option<clinicmeet_client::media::AudioSourceFactory> = match audio_file {
        Some(w) => Some(Arc::new(move || {
            Ok(Box::new(WavMicrophone::from_audio((*w).clone(), Pacing::RealTime))
                as Box<dyn clinicmeet_media::capture::AudioSource>)
        })),
        None if synthetic => Some(Arc::new(move || {
            Ok(Box::new(SyntheticMicrophone::new(
                SyntheticSound::Tone { freq_hz: tone, amplitude: 0.3 },
                Pacing::RealTime,
            )) as Box<dyn clinicmeet_media::capture::AudioSource>)
        })),
        None => None,
    };
    Ok(Some(MediaConfig {
        camera,
        microphone,
        screen: Some(Arc::new(|| {
            let fmt = VideoFormat { width: 1280, height: 720, fps: 5 };
            Ok(Box::new(SyntheticCamera::new(fmt, Pacing::RealTime)?)
                as Box<dyn clinicmeet_media::capture::VideoSource>)
        })),
        video_bitrate_bps: a.video_bitrate,
        keyframe_interval_secs: a.keyframe_interval_secs,
        simulcast_low_bps: (a.simulcast_low_bps > 0).then_some(a.simulcast_low_bps),
        temporal_layers: a.temporal_layers.clamp(1, 3),
        video_policy: video_policy(a),
    }))
}

fn video_policy(a: &MediaArgs) -> clinicmeet_client::media::VideoPolicy {
    match a.max_video {
        Some(n) => clinicmeet_client::media::VideoPolicy::LastN(n),
        None => clinicmeet_client::media::VideoPolicy::All,
    }
}

/// Writes mixed audio to a WAV file (header sizes updated every second).
fn record_audio(path: PathBuf, rx: std::sync::mpsc::Receiver<Vec<f32>>) {
    use std::io::{Seek, SeekFrom, Write};
    let Ok(mut f) = std::fs::File::create(&path) else {
        out(&error_line("record", "cannot create the audio file", None));
        return;
    };
    let header = clinicmeet_media::capture::file::wav_header;
    let _ = f.write_all(&header(0));
    let mut data = 0u32;
    let mut frames = 0u64;
    while let Ok(pcm) = rx.recv() {
        let bytes: Vec<u8> =
            pcm.iter().flat_map(|s| clinicmeet_media::frame::f32_to_i16(*s).to_le_bytes()).collect();
        let _ = f.write_all(&bytes);
        data = data.saturating_add(bytes.len() as u32);
        frames += 1;
        if frames.is_multiple_of(10) {
            let _ = f.seek(SeekFrom::Start(0)).and_then(|_| f.write_all(&header(data)));
            let _ = f.seek(SeekFrom::End(0));
            let _ = f.flush();
        }
    }
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
            // CLINICMEET_LOG first (a test harness that sets RUST_LOG can still be overridden).
            tracing_subscriber::EnvFilter::try_from_env("CLINICMEET_LOG")
                .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
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
    cfg.mtu_discovery = !cli.no_mtu_discovery;
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
        Cmd::Download { attachment_id, out: path, code } => {
            let (session, _events, driver) = connect(&cli).await?;
            if let Some(code) = code {
                let name = cli.name.clone().unwrap_or_else(|| "clinicmeet-cli".into());
                session.join(code, &name, MediaState::default()).await?;
            }
            let r = download(&session, *attachment_id, path).await;
            if code.is_some() {
                let _ = session.leave().await;
            }
            session.close();
            let _ = driver.await;
            Ok(if r.is_ok() { ExitCode::SUCCESS } else { ExitCode::from(1) })
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
            no_self_unmute,
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
                    allow_self_unmute: !no_self_unmute,
                    waiting_room: *waiting_room,
                    max_participants: max_participants.unwrap_or(defaults.max_participants),
                    chat_enabled: true,
                },
            };
            let (session, _events, driver) = connect(&cli).await?;
            let r = session.create_meeting_with_invite(spec).await;
            session.close();
            let _ = driver.await;
            let (meeting, code, invite) = r?;
            out(&json!({
                "meeting_id": meeting.id,
                "access_code": code,
                "invite_secret": invite,
                "title": meeting.title,
                "kind": meeting.kind,
                "status": meeting.status,
            }));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Meetings { clinic } => {
            let (session, _events, driver) = connect(&cli).await?;
            let r =
                if *clinic { session.list_clinic_meetings().await } else { session.list_meetings().await };
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
        Cmd::Join { code, chat_only, stay, media } => join(&cli, code, *chat_only, *stay, media).await,
        Cmd::Consultation { cmd } => {
            let (session, _events, driver) = connect(&cli).await?;
            let r = match cmd {
                ConsultationCmd::Notes { meeting_id, text } => {
                    session.save_consultation_notes(*meeting_id, text).await
                }
                ConsultationCmd::Amend { meeting_id, text } => {
                    session.amend_consultation(*meeting_id, text).await
                }
                ConsultationCmd::Show { meeting_id } => session.consultation(*meeting_id).await,
            };
            session.close();
            let _ = driver.await;
            out(&serde_json::to_value(r?)?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Past { query, from, to, consultations, limit, local } => {
            let filter = PastFilter {
                query: query.clone(),
                from: from.as_deref().map(rfc3339_ms).transpose()?,
                to: to.as_deref().map(rfc3339_ms).transpose()?,
                consultations_only: *consultations,
                limit: *limit,
            };
            past(&cli, filter, *local).await
        }
        Cmd::Ics { meeting_id, out: path, duration_mins } => {
            ics(&cli, *meeting_id, path, *duration_mins).await
        }
        Cmd::Cancel { meeting_id } => {
            let (session, _events, driver) = connect(&cli).await?;
            let r = session.cancel_meeting(*meeting_id).await;
            session.close();
            let _ = driver.await;
            r?;
            Store::open_dir(&data_dir(&cli))?.set_meeting_status(*meeting_id, "cancelled")?;
            out(&json!({"meeting_id": meeting_id, "status": "cancelled"}));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `ics`: the meeting's schedule from the relay, its link from the local store.
async fn ics(
    cli: &Cli,
    meeting_id: Uuid,
    path: &std::path::Path,
    duration_mins: u32,
) -> anyhow::Result<ExitCode> {
    let (session, _events, driver) = connect(cli).await?;
    let r = session.list_meetings().await;
    session.close();
    let _ = driver.await;
    let Some(summary) = r?.into_iter().find(|m| m.meeting.id == meeting_id) else {
        out(&error_line("not_found", "no active or scheduled meeting of yours with this id", Some("ics")));
        return Ok(ExitCode::from(1));
    };
    let meeting = summary.meeting;
    let Some(start) = meeting.schedule.as_ref().map(|s| s.start) else {
        out(&error_line("invalid_state", "this meeting has no scheduled start", Some("ics")));
        return Ok(ExitCode::from(1));
    };
    let store = Store::open_dir(&data_dir(cli))?;
    let local = store.meeting(meeting_id)?;
    let Some(secret) = local.as_ref().and_then(|m| m.invite_secret.clone().or(m.access_code.clone())) else {
        out(&error_line("not_found", "this device kept no invite link or code for the meeting", Some("ics")));
        return Ok(ExitCode::from(1));
    };
    let relay = cli.relay.clone().unwrap_or_default();
    let pin = match cli.pin.clone() {
        Some(p) => Some(p),
        None => store.relay(&relay)?.and_then(|r| r.pin),
    };
    let link = clinicmeet_client::ics::invite_link(&secret, pin.as_deref().map(|p| (relay.as_str(), p)));
    let text = clinicmeet_client::ics::invitation(
        &meeting,
        start,
        duration_mins,
        &link,
        clinicmeet_protocol::unix_now_ms(),
    );
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    out(&json!({"meeting_id": meeting_id, "file": path, "start": start, "duration_mins": duration_mins}));
    Ok(ExitCode::SUCCESS)
}

/// An RFC 3339 time as Unix milliseconds.
fn rfc3339_ms(s: &str) -> anyhow::Result<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("`{s}` is not an RFC 3339 time"))?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// `past`: the relay's rows (staff), then local meetings the relay did not list.
async fn past(cli: &Cli, filter: PastFilter, local_only: bool) -> anyhow::Result<ExitCode> {
    let mut listed = std::collections::HashSet::new();
    if !local_only {
        let (session, _events, driver) = connect(cli).await?;
        let r = session.past_meetings(filter.clone()).await;
        session.close();
        let _ = driver.await;
        let (rows, more) = r?;
        for row in rows {
            listed.insert(row.meeting.id);
            let mut v = serde_json::to_value(&row)?;
            v["meeting_id"] = json!(row.meeting.id);
            v["source"] = json!("relay");
            out(&v);
        }
        if more {
            out(&json!({"event": "more", "source": "relay"}));
        }
    }
    if filter.consultations_only {
        return Ok(ExitCode::SUCCESS);
    }
    let store = Store::open_dir(&data_dir(cli))?;
    let query = filter.query.as_deref().map(str::to_lowercase).unwrap_or_default();
    let mut local: Vec<_> = store
        .meetings()?
        .into_iter()
        .filter(|m| !listed.contains(&m.meeting_id))
        .filter(|m| m.title.to_lowercase().contains(query.trim()))
        .filter(|m| {
            filter.from.is_none_or(|f| m.last_seen_at >= f) && filter.to.is_none_or(|t| m.last_seen_at < t)
        })
        .collect();
    local.sort_by_key(|m| std::cmp::Reverse(m.last_seen_at));
    for m in local {
        let mut v = serde_json::to_value(&m)?;
        v["source"] = json!("local");
        out(&v);
    }
    Ok(ExitCode::SUCCESS)
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

async fn join(
    cli: &Cli,
    code: &str,
    chat_only: bool,
    stay: bool,
    margs: &MediaArgs,
) -> anyhow::Result<ExitCode> {
    let mcfg = match media_config(margs) {
        Ok(c) => c,
        Err(e) => {
            out(&error_line("usage", &format!("{e:#}"), Some("join")));
            return Ok(ExitCode::from(2));
        }
    };
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

    let engine = mcfg.filter(|_| !chat_only).map(|c| {
        // The test hooks: PSNR, recording the received H.264, ignoring a host mute.
        let hooks =
            observer::CliObserver::new(margs.psnr_every, margs.record_video.clone(), margs.ignore_host_mute);
        let (engine, outputs) = MediaEngine::start_with_observer(session.clone(), c, Arc::new(hooks));
        let audio = outputs.audio;
        match margs.record_audio.clone() {
            Some(p) => {
                std::thread::spawn(move || record_audio(p, audio));
            }
            None => {
                std::thread::spawn(move || while audio.recv().is_ok() {});
            }
        }
        let video = outputs.video;
        std::thread::spawn(move || while video.recv().is_ok() {});
        engine
    });
    let stats_every = Duration::from_millis(margs.stats_interval_ms.max(100));
    let mut stats_tick = tokio::time::interval(stats_every);
    let print_stats = engine.is_some() && margs.stats_interval_ms > 0;

    let (line_tx, mut lines) = tokio::sync::mpsc::channel::<String>(256);
    tokio::spawn(async move {
        let mut reader = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(l)) = reader.next_line().await {
            if line_tx.send(l).await.is_err() {
                break;
            }
        }
    });

    // A meeting id (staff, from `meetings --clinic`): join without the code, knocking.
    let join_fut = async {
        match Uuid::parse_str(code.trim()) {
            Ok(id) => session.join_as_staff(id, &name, media).await,
            Err(_) => session.join(code, &name, media).await,
        }
    };
    tokio::pin!(join_fut);
    let mut join_done = false;
    let mut stdin_open = true;
    let mut record_on_join = margs.record.clone();
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
                if let Some(e) = &engine {
                    e.on_event(&ev);
                    if matches!(ev, ClientEvent::Joined(_) | ClientEvent::Admitted(_)) {
                        if let Some(path) = record_on_join.take() {
                            start_recording(e, path).await;
                        }
                    }
                }
                match ev {
                    ClientEvent::Left | ClientEvent::MeetingEnded(_) => break ExitCode::SUCCESS,
                    ClientEvent::Denied => break ExitCode::from(3),
                    ClientEvent::Removed => break ExitCode::from(4),
                    ClientEvent::Connection { state: clinicmeet_client::ConnectionState::Disconnected, .. } => {
                        break ExitCode::from(1)
                    }
                    _ => {}
                }
            }
            _ = stats_tick.tick(), if print_stats => {
                if let Some(e) = &engine {
                    for st in e.stats() {
                        let mut v = serde_json::to_value(&st).unwrap_or(Value::Null);
                        v["event"] = json!("stats");
                        out(&v);
                    }
                }
            }
            line = lines.recv(), if join_done && stdin_open => {
                match line {
                    Some(l) => {
                        command(&session, engine.as_ref(), l.trim_end_matches('\r')).await;
                    }
                    None => {
                        stdin_open = false;
                        if !stay {
                            if let Some(e) = &engine {
                                stop_recording(e).await;
                            }
                            leave(&session).await;
                        }
                    }
                }
            }
        }
    };
    if let Some(e) = &engine {
        stop_recording(e).await;
        e.stop();
    }
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

/// Prints a transfer's progress as JSON lines: at the start, every 4 MiB and at the end.
fn progress_printer(event: &'static str) -> impl FnMut(clinicmeet_client::attachments::Progress) + Send {
    let mut next = 0u64;
    move |p| {
        if p.done >= next || p.done == p.total {
            out(&json!({"event": event, "done": p.done, "total": p.total}));
            next = p.done + 4 * 1024 * 1024;
            if p.done == p.total {
                next = u64::MAX;
            }
        }
    }
}

/// Downloads an attachment, printing progress and then `downloaded` (or the error).
async fn download(session: &Session, id: Uuid, path: &std::path::Path) -> Result<(), ClientError> {
    match session.download(id, path, progress_printer("download_progress")).await {
        Ok(a) => {
            out(&json!({"event": "downloaded", "attachment": a, "path": path}));
            Ok(())
        }
        Err(e) => {
            out(&client_error_line(&e, Some("download")));
            Err(e)
        }
    }
}

/// Starts recording into `path`; prints `recording_started` or the refusal.
async fn start_recording(engine: &MediaEngine, path: PathBuf) {
    match engine.start_recording(path.clone()).await {
        Ok(()) => out(&json!({"event": "recording_started", "file": path})),
        Err(e) => out(&client_error_line(&e, Some("record"))),
    }
}

/// Ends this device's recording, if any; prints `recording_finished` with what the file holds.
async fn stop_recording(engine: &MediaEngine) {
    match engine.stop_recording().await {
        Ok(Some(s)) => {
            let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
            v["event"] = json!("recording_finished");
            out(&v);
        }
        Ok(None) => {}
        Err(e) => out(&client_error_line(&e, Some("record"))),
    }
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

async fn command(session: &Session, engine: Option<&MediaEngine>, line: &str) {
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
            if let Some(e) = engine {
                stop_recording(e).await;
            }
            leave(session).await;
            return; // the `left` event ends the loop
        }
        "attach" | "attach-note" => {
            let (path, caption) = arg.split_once(' ').map_or((arg, ""), |(p, c)| (p, c.trim()));
            if path.is_empty() {
                out(&error_line("usage", "/attach PATH [caption]", Some(name)));
                return;
            }
            let staff_only = name == "attach-note";
            let r = session
                .attach(std::path::Path::new(path), staff_only, progress_printer("upload_progress"))
                .await;
            match r {
                Ok(a) => {
                    out(&json!({"event": "attached", "attachment": a}));
                    session.send_chat_with_attachments(caption, staff_only, vec![a.id]).await.map(|_| None)
                }
                Err(e) => Err(e),
            }
        }
        "download" => {
            let Some((id, path)) =
                arg.split_once(' ').and_then(|(i, p)| Some((Uuid::parse_str(i).ok()?, p.trim())))
            else {
                out(&error_line("usage", "/download ATTACHMENT_ID PATH", Some(name)));
                return;
            };
            let _ = download(session, id, std::path::Path::new(path)).await;
            return;
        }
        "typing" => session.typing(true).map(|_| None),
        "lock" => session.set_locked(true).await.map(|_| Some(Value::Null)),
        "unlock" => session.set_locked(false).await.map(|_| Some(Value::Null)),
        "self-unmute" => match arg {
            "on" | "off" => session.set_self_unmute(arg == "on").await.map(|_| Some(Value::Null)),
            _ => {
                out(&error_line("usage", "/self-unmute on|off", Some(name)));
                return;
            }
        },
        "end" => session.end_meeting().await.map(|_| Some(Value::Null)),
        "rekey" => match session.rekey_meeting().await {
            Ok((code, invite)) => {
                out(&json!({"event": "rekeyed", "access_code": code, "invite_secret": invite}));
                Ok(None)
            }
            Err(e) => Err(e),
        },
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
            let r = session.update_media(m).await.map(|_| Some(Value::Null));
            if let (Ok(_), Some(e)) = (&r, engine) {
                e.set_local_media(m);
            }
            r
        }
        "screen" => {
            let on = arg == "on";
            let mut m = session
                .snapshot()
                .await
                .ok()
                .flatten()
                .and_then(|v| v.participant(v.me).map(|p| p.media))
                .unwrap_or_default();
            m.screen = on;
            let r = session.update_media(m).await.map(|_| Some(Value::Null));
            if let (Ok(_), Some(e)) = (&r, engine) {
                e.set_local_media(m);
                e.set_screen(on);
            }
            r
        }
        "record" => {
            let Some(e) = engine else {
                out(&error_line("usage", "/record needs media (not --chat-only)", Some(name)));
                return;
            };
            match arg.split_once(' ').map_or((arg, ""), |(a, b)| (a, b.trim())) {
                ("start", file) if !file.is_empty() => start_recording(e, PathBuf::from(file)).await,
                ("stop", _) => stop_recording(e).await,
                _ => out(&error_line("usage", "/record start FILE | /record stop", Some(name))),
            }
            return;
        }
        "retry" => match Uuid::parse_str(arg) {
            Ok(id) => session.retry_chat(id).await.map(|_| Some(Value::Null)),
            Err(_) => {
                out(&error_line("usage", "/retry needs a client message id", Some(name)));
                return;
            }
        },
        "admit" | "deny" | "mute" | "allow-unmute" | "remove" | "promote" | "demote" => {
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
                "allow-unmute" => session.allow_unmute(id).await,
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
