//! The engine the UI talks to: owns one `clinicmeet_client::Session` (and its
//! driver task), forwards its events to the UI as they are (with the app's own
//! media events: [`crate::contract::EngineEvent`]), and answers the UI's calls. No Tauri types here: the commands (`crate::commands`) are a thin
//! adapter, and tests drive this directly against a real relay.
//!
//! A session ends by itself when the user is denied, removed or the meeting
//! ends; the next call then reconnects to the same relay (pin from the store).

pub mod devices;
pub mod media;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clinicmeet_client::session::{Connected, JoinOutcome};
use clinicmeet_client::{ics, ClientEvent, ConnectionState, Entered, Session, SessionConfig, Store};
use clinicmeet_protocol::{
    AccessCode, ConsultationRecord, JoinSecret, MediaState, MeetingId, MeetingSpec, ParticipantId,
    PastFilter, PastMeeting, StaffIdentity,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::contract::{EngineEvent, JoinOutcome as JoinReply};
use crate::error::{AppError, Result};
use crate::frames::FrameSlots;
use crate::launch::{self, RelayConfig};
use crate::pin;
use devices::{DeviceKind, DeviceList, Devices};
use media::{AppMedia, Choice, Preview, Taps};

/// Where the UI's events go (a Tauri channel in the app, a vector in tests).
pub type EventSink = Arc<dyn Fn(EngineEvent) + Send + Sync>;

/// Longest wait for the relay's hello after the QUIC handshake.
const HELLO_TIMEOUT: Duration = Duration::from_secs(15);

/// `HelloInfo` of the UI.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HelloInfo {
    pub server: String,
    pub version: u16,
    pub staff: Option<StaffIdentity>,
}

/// `JoinOptions` of the UI.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinOptions {
    pub camera: bool,
    pub mic: bool,
    pub chat_only: bool,
}

struct Live {
    session: Session,
    driver: JoinHandle<()>,
    forwarder: JoinHandle<()>,
    /// Closed for good (denied, removed, ended, refused): reconnect before the next call.
    dead: Arc<AtomicBool>,
    media: AppMedia,
}

impl Live {
    fn usable(&self) -> bool {
        !self.dead.load(Ordering::SeqCst) && !self.driver.is_finished()
    }

    fn close(self) {
        self.forwarder.abort();
        self.session.close();
        drop(self.media);
    }
}

#[derive(Default)]
struct Inner {
    relay: Option<RelayConfig>,
    live: Option<Live>,
}

pub struct Engine {
    data_dir: PathBuf,
    sink: EventSink,
    inner: tokio::sync::Mutex<Inner>,
    devices: Mutex<Devices>,
    /// Frames on their way to the web view (`next_frames`).
    slots: Arc<FrameSlots>,
    /// The devices the next publish uses (set at join).
    choice: Arc<Mutex<Choice>>,
    preview: Mutex<Option<Preview>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Engine {
    pub fn new(data_dir: impl Into<PathBuf>, sink: EventSink) -> Engine {
        Engine {
            data_dir: data_dir.into(),
            sink,
            inner: tokio::sync::Mutex::new(Inner::default()),
            devices: Mutex::new(Devices::default()),
            slots: Arc::new(FrameSlots::default()),
            choice: Arc::new(Mutex::new(Choice::default())),
            preview: Mutex::new(None),
        }
    }

    /// Video frames for the web view.
    pub fn frames(&self) -> Arc<FrameSlots> {
        self.slots.clone()
    }

    fn taps(&self) -> Taps {
        Taps { slots: self.slots.clone(), sink: self.sink.clone() }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A connection of its own to the local store (WAL: reads beside the driver's writes).
    fn store(&self) -> Result<Store> {
        Ok(Store::open_dir(&self.data_dir)?)
    }

    fn emit(&self, e: impl Into<EngineEvent>) {
        (self.sink)(e.into())
    }

    // ------------------------------------------------------------------ relay

    /// The relay this device used last (its pin saved by a successful connect).
    pub fn saved_relay(&self) -> Result<Option<RelayConfig>> {
        let relays = self.store()?.recent_relays()?;
        Ok(relays.into_iter().find_map(|r| r.pin.map(|pin| RelayConfig { address: r.relay, pin })))
    }

    /// Connects with the given pin; on `pin_mismatch` nothing is saved.
    pub async fn connect(&self, relay: RelayConfig) -> Result<HelloInfo> {
        let relay =
            RelayConfig { address: launch::check_address(&relay.address)?, pin: pin::normalize(&relay.pin)? };
        let mut inner = self.inner.lock().await;
        if let Some(old) = inner.live.take() {
            old.close();
        }
        let (live, hello) = self.open(&relay).await?;
        inner.live = Some(live);
        inner.relay = Some(relay);
        Ok(hello)
    }

    pub async fn disconnect(&self) {
        let mut inner = self.inner.lock().await;
        if let Some(old) = inner.live.take() {
            old.close();
        }
        inner.relay = None;
        self.emit(connection(ConnectionState::Disconnected, None));
    }

    fn staff_of(&self, relay: &str) -> Option<StaffIdentity> {
        let rec = self.store().ok()?.relay(relay).ok()??;
        rec.device_credential.as_ref()?;
        Some(StaffIdentity { staff_id: rec.staff_id?.parse().ok()?, name: rec.staff_name? })
    }

    async fn open(&self, relay: &RelayConfig) -> Result<(Live, HelloInfo)> {
        self.emit(connection(ConnectionState::Connecting, None));
        let mut cfg = SessionConfig::new(relay.address.clone(), self.data_dir.clone());
        cfg.pin = Some(relay.pin.clone());
        cfg.client_name = format!("clinicmeet-app/{}", env!("CARGO_PKG_VERSION"));
        let Connected { session, mut events, driver } = match Session::connect(cfg).await {
            Ok(c) => c,
            Err(e) => {
                let e = AppError::from(e);
                self.emit(connection(ConnectionState::Disconnected, Some(e.code.clone())));
                return Err(e);
            }
        };
        let driver = tokio::spawn(async move {
            if let Err(e) = driver.run().await {
                tracing::warn!(error = %e, "session driver ended with an error");
            }
        });
        let (ready_tx, ready_rx) = oneshot::channel::<Result<()>>();
        let dead = Arc::new(AtomicBool::new(false));
        let (sink, dead2) = (self.sink.clone(), dead.clone());
        let media = AppMedia::start(session.clone(), self.choice.clone(), self.taps());
        let media_engine = media.engine().clone();
        let forwarder = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            while let Some(ev) = events.recv().await {
                media_engine.on_event(&ev);
                match &ev {
                    ClientEvent::Connection { state: ConnectionState::Connected, .. } => {
                        if let Some(tx) = ready.take() {
                            let _ = tx.send(Ok(()));
                        }
                    }
                    ClientEvent::Connection { state: ConnectionState::Disconnected, reason, .. } => {
                        dead2.store(true, Ordering::SeqCst);
                        if let Some(tx) = ready.take() {
                            let why = reason.clone().unwrap_or_else(|| "closed".into());
                            let _ = tx.send(Err(AppError::new("unreachable", why)));
                        }
                    }
                    ClientEvent::Denied | ClientEvent::Removed | ClientEvent::MeetingEnded(_) => {
                        dead2.store(true, Ordering::SeqCst);
                    }
                    ClientEvent::Error { code, message } => {
                        tracing::warn!(code = %code, "engine error");
                        if code != "store" {
                            if let Some(tx) = ready.take() {
                                let _ = tx.send(Err(AppError::new(code, message.clone())));
                            }
                        }
                    }
                    _ => {}
                }
                sink(EngineEvent::Client(ev));
            }
        });
        let live = Live { session, driver, forwarder, dead, media };
        match tokio::time::timeout(HELLO_TIMEOUT, ready_rx).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                live.close();
                return Err(e);
            }
            _ => {
                live.close();
                return Err(AppError::new("unreachable", "The server did not finish the greeting."));
            }
        }
        let hello = HelloInfo {
            server: relay.address.clone(),
            version: clinicmeet_protocol::PROTOCOL_VERSION,
            staff: self.staff_of(&relay.address),
        };
        Ok((live, hello))
    }

    /// The live session, reconnecting first when the last one closed itself.
    async fn session(&self) -> Result<Session> {
        let mut inner = self.inner.lock().await;
        if let Some(live) = &inner.live {
            if live.usable() {
                return Ok(live.session.clone());
            }
        }
        let relay = inner.relay.clone().ok_or_else(AppError::not_connected)?;
        if let Some(old) = inner.live.take() {
            old.close();
        }
        let (live, _) = self.open(&relay).await?;
        let session = live.session.clone();
        inner.live = Some(live);
        Ok(session)
    }

    pub async fn enroll(&self, code: &str, device_name: &str) -> Result<StaffIdentity> {
        if code.trim().is_empty() || device_name.trim().is_empty() {
            return Err(AppError::invalid_input("Enter the enrollment code and a name for this device."));
        }
        Ok(self.session().await?.enroll(code.trim(), device_name.trim()).await?)
    }

    // --------------------------------------------------------------- meetings

    pub async fn create_meeting(&self, spec: MeetingSpec) -> Result<Value> {
        let (meeting, code, invite) = self.session().await?.create_meeting_with_invite(spec).await?;
        Ok(json!({"meeting": meeting, "access_code": display_code(&code), "invite_secret": invite}))
    }

    pub async fn list_meetings(&self) -> Result<Vec<Value>> {
        let meetings = self.session().await?.list_meetings().await?;
        let store = self.store()?;
        Ok(meetings
            .into_iter()
            .map(|m| {
                // Known on this device when it created or re-keyed the meeting.
                let rec = store.meeting(m.meeting.id).ok().flatten();
                let code = rec.as_ref().and_then(|r| r.access_code.as_deref().map(display_code));
                let invite = rec.and_then(|r| r.invite_secret);
                let mut v = serde_json::to_value(&m).unwrap_or(Value::Null);
                if let Some(o) = v.as_object_mut() {
                    o.insert("access_code".into(), json!(code));
                    o.insert("invite_secret".into(), json!(invite));
                }
                v
            })
            .collect())
    }

    pub async fn join(&self, code: &str, name: &str, options: JoinOptions) -> Result<JoinReply> {
        let code = join_secret_text(code).ok_or_else(|| {
            AppError::invalid_input("A meeting code has 8 letters and digits, like ABCD-EFGH.")
        })?;
        if name.trim().is_empty() {
            return Err(AppError::invalid_input("Enter your name."));
        }
        let media = self.join_media(options);
        Ok(entered(self.session().await?.join(&code, name.trim(), media).await?))
    }

    /// Staff: join a clinic meeting by its id (the clinic view), without its code.
    pub async fn join_as_staff(
        &self,
        meeting: MeetingId,
        name: &str,
        options: JoinOptions,
    ) -> Result<JoinReply> {
        if name.trim().is_empty() {
            return Err(AppError::invalid_input("Enter your name."));
        }
        let media = self.join_media(options);
        Ok(entered(self.session().await?.join_as_staff(meeting, name.trim(), media).await?))
    }

    /// Stops the device check and picks the devices a join publishes.
    fn join_media(&self, options: JoinOptions) -> MediaState {
        self.stop_preview();
        let mut devices = lock(&self.devices);
        // Publish the devices that exist (unless chat-only), on or off as asked:
        // the user can turn them on later in the call.
        let publish = !options.chat_only;
        let choice = Choice {
            camera: devices.chosen(DeviceKind::Camera).filter(|_| publish),
            microphone: devices.chosen(DeviceKind::Microphone).filter(|_| publish),
            speaker: devices.chosen(DeviceKind::Speaker),
        };
        let media = MediaState {
            audio: options.mic && choice.microphone.is_some(),
            video: options.camera && choice.camera.is_some(),
            screen: false,
        };
        *lock(&self.choice) = choice;
        media
    }

    /// Staff: every active and scheduled meeting of the clinic, each with
    /// `created_here` (this device created it: it may cancel it).
    pub async fn clinic_meetings(&self) -> Result<Vec<Value>> {
        let meetings = self.session().await?.list_clinic_meetings().await?;
        let store = self.store()?;
        Ok(meetings
            .into_iter()
            .map(|m| {
                let created_here =
                    store.meeting(m.meeting.id).ok().flatten().is_some_and(|r| r.access_code.is_some());
                let mut v = serde_json::to_value(&m).unwrap_or(Value::Null);
                if let Some(o) = v.as_object_mut() {
                    o.insert("created_here".into(), json!(created_here));
                }
                v
            })
            .collect())
    }

    /// "Add to calendar": writes the `.ics` invitation of a scheduled meeting this
    /// device created (it alone knows the invite link) into the Downloads folder
    /// (`$XDG_DOWNLOAD_DIR`, else `~/Downloads`) and returns the file's path. The
    /// file is named by the meeting's id, never its title.
    pub async fn save_invitation(&self, meeting: MeetingId) -> Result<String> {
        let info = self
            .session()
            .await?
            .list_clinic_meetings()
            .await?
            .into_iter()
            .find(|m| m.meeting.id == meeting)
            .map(|m| m.meeting)
            .ok_or_else(|| AppError::new("not_found", "No such active or scheduled meeting."))?;
        let start = info
            .schedule
            .as_ref()
            .map(|s| s.start)
            .ok_or_else(|| AppError::invalid_input("This meeting has no start time."))?;
        let rec = self.store()?.meeting(meeting)?;
        let secret = rec.and_then(|r| r.invite_secret.or(r.access_code)).ok_or_else(|| {
            AppError::new("forbidden", "Only the device that created the meeting knows its link.")
        })?;
        let relay = self.inner.lock().await.relay.clone();
        let link = ics::invite_link(&secret, relay.as_ref().map(|r| (r.address.as_str(), r.pin.as_str())));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let text = ics::invitation(&info, start, ics::DEFAULT_DURATION_MINS, &link, now);
        let dir = std::env::var_os("XDG_DOWNLOAD_DIR")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join("Downloads")))
            .ok_or_else(|| AppError::new("internal", "No Downloads folder."))?;
        let write = |dir: &Path| -> std::io::Result<PathBuf> {
            std::fs::create_dir_all(dir)?;
            let path = dir.join(format!("clinicmeet-{}.ics", &meeting.to_string()[..8]));
            std::fs::write(&path, text.as_bytes())?;
            Ok(path)
        };
        let path = write(&dir)
            .map_err(|e| AppError::new("internal", format!("Could not save the invitation: {e}")))?;
        Ok(path.display().to_string())
    }

    /// Its creator: cancel a meeting that has not started.
    pub async fn cancel_meeting(&self, meeting: MeetingId) -> Result<()> {
        Ok(self.session().await?.cancel_meeting(meeting).await?)
    }

    pub async fn leave(&self) -> Result<()> {
        match self.session().await?.leave().await {
            Ok(()) => Ok(()),
            // Already out (ended, removed): leaving is done.
            Err(clinicmeet_client::ClientError::InvalidState(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    // ------------------------------------------------------------- moderation

    pub async fn moderate(&self, action: &str, participant: ParticipantId) -> Result<()> {
        let s = self.session().await?;
        match action {
            "admit" => s.admit(participant).await?,
            "deny" => s.deny(participant).await?,
            "mute" => s.mute(participant).await?,
            "allow_unmute" => s.allow_unmute(participant).await?,
            "remove" => s.remove(participant).await?,
            "promote" => s.promote(participant).await?,
            "demote" => s.demote(participant).await?,
            other => {
                return Err(AppError::invalid_input(format!(
                    "unknown action `{}`",
                    other.chars().take(20).collect::<String>()
                )))
            }
        }
        Ok(())
    }

    pub async fn set_self_unmute(&self, allowed: bool) -> Result<()> {
        Ok(self.session().await?.set_self_unmute(allowed).await?)
    }

    pub async fn set_locked(&self, locked: bool) -> Result<()> {
        Ok(self.session().await?.set_locked(locked).await?)
    }

    /// Host: a new code and invite secret for the meeting we are in; the old ones stop
    /// working at once. The session stores both (the meeting list then offers the new link).
    pub async fn rekey_meeting(&self) -> Result<Value> {
        let (code, invite) = self.session().await?.rekey_meeting().await?;
        Ok(json!({"access_code": display_code(&code), "invite_secret": invite}))
    }

    pub async fn end_meeting(&self) -> Result<()> {
        Ok(self.session().await?.end_meeting().await?)
    }

    // ---------------------------------------------------------- consultations

    pub async fn start_consultation(&self) -> Result<()> {
        Ok(self.session().await?.start_consultation().await?)
    }

    pub async fn end_consultation(&self, notes: String) -> Result<Value> {
        let t = self.session().await?.end_consultation(Some(notes)).await?;
        Ok(json!({"started_at": t.started_at, "ended_at": t.ended_at, "duration_secs": t.duration_secs}))
    }

    /// Writes a consultation's notes: into this device's store (when it holds the
    /// consultation) and, once, into the relay's record, which it returns. Later
    /// changes are amendments.
    pub async fn save_consultation_notes(
        &self,
        meeting: MeetingId,
        notes: String,
    ) -> Result<ConsultationRecord> {
        {
            let store = self.store()?;
            if let Some(mut rec) = store.consultations()?.into_iter().find(|c| c.meeting_id == meeting) {
                rec.notes = Some(notes.clone());
                store.consultation_ended(&rec)?;
            }
        }
        Ok(self.session().await?.save_consultation_notes(meeting, &notes).await?)
    }

    /// The relay's record of a consultation this staff member held.
    pub async fn consultation_record(&self, meeting: MeetingId) -> Result<ConsultationRecord> {
        Ok(self.session().await?.consultation(meeting).await?)
    }

    /// The meetings this device took part in, from its store, newest first (no codes,
    /// invite secrets or resume tokens: the UI lists them, readable offline).
    pub fn local_meetings(&self) -> Result<Vec<Value>> {
        let store = self.store()?;
        Ok(store
            .meetings()?
            .into_iter()
            .filter(|m| m.participant_id.is_some() || m.role.is_some())
            .map(|m| {
                json!({
                    "meeting_id": m.meeting_id,
                    "title": m.title,
                    "kind": m.kind,
                    "status": m.status,
                    "role": m.role,
                    "patient_reference": m.patient_reference,
                    "last_seen_at": m.last_seen_at,
                })
            })
            .collect())
    }

    /// Staff: the relay's meetings that are over which they created or took part in.
    pub async fn past_meetings(&self, filter: PastFilter) -> Result<Vec<PastMeeting>> {
        Ok(self.session().await?.past_meetings(filter).await?.0)
    }

    /// Appends an amendment to a consultation's notes on the relay; returns the record.
    pub async fn amend_consultation(&self, meeting: MeetingId, text: String) -> Result<ConsultationRecord> {
        Ok(self.session().await?.amend_consultation(meeting, &text).await?)
    }

    pub fn consultations(&self) -> Result<Vec<Value>> {
        let store = self.store()?;
        Ok(store
            .consultations()?
            .into_iter()
            .map(|c| {
                let m = store.meeting(c.meeting_id).ok().flatten();
                let status = c.status.clone().or_else(|| m.as_ref().map(|m| m.status.clone()));
                json!({
                    "meeting_id": c.meeting_id,
                    "title": c.title.clone().or_else(|| m.as_ref().map(|m| m.title.clone())).unwrap_or_default(),
                    "patient_reference": c.patient_reference.clone().or_else(|| m.as_ref().and_then(|m| m.patient_reference.clone())),
                    "access_code": m.as_ref().and_then(|m| m.access_code.as_deref().map(display_code)),
                    "status": status.unwrap_or_else(|| "active".into()),
                    "created_at": c.started_at.or(m.as_ref().map(|m| m.last_seen_at)).unwrap_or(0),
                    "started_at": c.started_at,
                    "ended_at": c.ended_at,
                    "duration_secs": c.duration_secs,
                    "notes": c.notes.unwrap_or_default(),
                })
            })
            .collect())
    }

    // ------------------------------------------------------------------ media

    pub async fn update_media(&self, media: MediaState) -> Result<()> {
        {
            let c = lock(&self.choice);
            if media.video && c.camera.is_none() {
                return Err(AppError::no_device("No camera in this call."));
            }
            if media.audio && c.microphone.is_none() {
                return Err(AppError::no_device("No microphone in this call."));
            }
        }
        if media.screen {
            // Open the screen once now: a clear message instead of a share that never starts.
            media::open_screen()
                .map_err(|e| AppError::no_device(format!("Your screen cannot be shared here: {e}")))?;
        }
        self.session().await?.update_media(media).await?;
        if let Some(live) = &self.inner.lock().await.live {
            let engine = live.media.engine();
            engine.set_local_media(media);
            // Publishes or unpublishes the screen track (nothing when unchanged).
            engine.set_screen(media.screen);
        }
        Ok(())
    }

    pub fn list_devices(&self) -> DeviceList {
        lock(&self.devices).enumerate()
    }

    /// Uses `list` instead of scanning (kiosk setups with fixed devices; tests with the
    /// synthetic devices). The next `list_devices` scans again.
    pub fn set_devices(&self, list: DeviceList) -> DeviceList {
        lock(&self.devices).set_found(list)
    }

    /// Frames shown per participant so far (for measurements).
    pub fn frame_stats(&self) -> std::collections::HashMap<String, crate::frames::SlotStats> {
        self.slots.stats()
    }

    pub fn select_device(&self, kind: DeviceKind, id: &str) -> Result<()> {
        lock(&self.devices).select(kind, id)
    }

    /// Device check: the chosen camera's picture (`local` frames) and the chosen
    /// microphone's level (`audio_level` events) until [`Engine::stop_preview`] or
    /// the join. With neither device there is nothing to preview (the UI says so).
    pub fn start_preview(&self) -> Result<()> {
        self.stop_preview();
        let choice = {
            let mut d = lock(&self.devices);
            Choice {
                camera: d.chosen(DeviceKind::Camera),
                microphone: d.chosen(DeviceKind::Microphone),
                speaker: None,
            }
        };
        *lock(&self.preview) = Some(Preview::start(&choice, &self.taps()));
        Ok(())
    }

    pub fn stop_preview(&self) {
        let p = lock(&self.preview).take();
        if let Some(p) = p {
            p.stop();
        }
    }

    // ------------------------------------------------------------------- chat

    /// Queues a message and returns its id; its `chat_status` events (the first,
    /// `sending`, with the text) come from the engine.
    pub async fn send_chat(&self, text: &str, staff_only: bool) -> Result<Uuid> {
        Ok(self.session().await?.send_chat(text, staff_only).await?)
    }

    pub async fn retry_chat(&self, id: Uuid) -> Result<()> {
        Ok(self.session().await?.retry_chat(id).await?)
    }

    pub async fn typing(&self, typing: bool) -> Result<()> {
        Ok(self.session().await?.typing(typing)?)
    }

    /// The stored chat (and notes, if this device received any), by time then seq.
    pub fn chat_history(&self, meeting: MeetingId) -> Result<Vec<clinicmeet_protocol::ChatMessage>> {
        let store = self.store()?;
        let mut all = store.chat(meeting, false)?;
        all.extend(store.chat(meeting, true)?);
        all.sort_by_key(|m| (m.sent_at, m.staff_only, m.seq));
        Ok(all)
    }
}

/// The UI's join reply of a join outcome.
fn entered(outcome: JoinOutcome) -> JoinReply {
    match outcome {
        JoinOutcome::Joined(state) => JoinReply::Joined { join: Box::new(Entered::from_join(*state, false)) },
        JoinOutcome::Waiting { participant_id, meeting } => JoinReply::Waiting { participant_id, meeting },
    }
}

/// A connection event of the app (the engine reports the rest).
fn connection(state: ConnectionState, reason: Option<String>) -> ClientEvent {
    ClientEvent::Connection { state, attempt: None, retry_in_ms: None, reason }
}

/// The canonical text of a code (`ABCD-EFGH`) or of an invite link's secret; `None` if it is neither.
pub(crate) fn join_secret_text(raw: &str) -> Option<String> {
    match JoinSecret::parse(raw).ok()? {
        JoinSecret::Code(c) => Some(c.to_string()),
        JoinSecret::Invite(i) => Some(i.to_string()),
    }
}

/// `ABCD-EFGH` for any accepted spelling of a code.
fn display_code(code: &str) -> String {
    AccessCode::parse(code).map(|c| c.to_string()).unwrap_or_else(|_| code.to_string())
}
