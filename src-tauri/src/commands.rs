//! Tauri commands: one per `Engine` method of the UI, each a thin call into
//! [`crate::engine::Engine`]. Errors reach the UI as `AppError` JSON.

use std::sync::{Arc, Mutex};

use clinicmeet_protocol::{
    ConsultationRecord, MediaState, MeetingId, MeetingSpec, ParticipantId, PastFilter, PastMeeting,
    StaffIdentity,
};
use serde_json::Value;
use tauri::ipc::Channel;
use tauri::State;
use uuid::Uuid;

use crate::contract::{EngineEvent, JoinOutcome};
use crate::engine::devices::{self, DeviceList};
use crate::engine::{Engine, HelloInfo, JoinOptions};
use crate::error::Result;
use crate::frame_socket::FrameSocket;
use crate::launch::{Invite, RelayConfig};

/// Everything the commands share.
pub struct AppState {
    pub engine: Arc<Engine>,
    /// The UI's event channel (replaced when the page subscribes again, e.g. after a reload).
    pub events: Arc<Mutex<Option<Channel<EngineEvent>>>>,
    /// How the app was opened (invite link, environment); the code is handed out once.
    pub launch: Mutex<Invite>,
    /// Where the page fetches video frames.
    pub frame_socket: Arc<FrameSocket>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[tauri::command]
pub fn subscribe(state: State<'_, AppState>, channel: Channel<EngineEvent>) {
    *lock(&state.events) = Some(channel);
}

/// The URL of the frame socket (`crate::frame_socket`), token included.
#[tauri::command]
pub fn frame_socket(state: State<'_, AppState>) -> String {
    state.frame_socket.url()
}

/// A tile of `participant` (or `local`, or `screen:<id>`) is `width`×`height` device
/// pixels: its frames are scaled to fit that in Rust (0×0: out of view, none sent).
#[tauri::command]
pub fn set_video_size(state: State<'_, AppState>, participant: String, width: u16, height: u16) {
    if participant.len() <= 80 {
        state.engine.frames().set_size(&participant, width, height);
    }
}

/// The relay to pre-fill (invite link or environment) and the invite's meeting code (once).
#[tauri::command]
pub fn launch_info(state: State<'_, AppState>) -> Invite {
    let mut launch = lock(&state.launch);
    let out = launch.clone();
    launch.code = None;
    out
}

#[tauri::command]
pub fn saved_relay(state: State<'_, AppState>) -> Result<Option<RelayConfig>> {
    state.engine.saved_relay()
}

#[tauri::command]
pub async fn connect(state: State<'_, AppState>, relay: RelayConfig) -> Result<HelloInfo> {
    state.engine.connect(relay).await
}

#[tauri::command]
pub async fn disconnect(state: State<'_, AppState>) -> Result<()> {
    state.engine.disconnect().await;
    Ok(())
}

#[tauri::command]
pub async fn enroll(state: State<'_, AppState>, code: String, device_name: String) -> Result<StaffIdentity> {
    state.engine.enroll(&code, &device_name).await
}

#[tauri::command]
pub async fn create_meeting(state: State<'_, AppState>, spec: MeetingSpec) -> Result<Value> {
    state.engine.create_meeting(spec).await
}

#[tauri::command]
pub async fn list_meetings(state: State<'_, AppState>) -> Result<Vec<Value>> {
    state.engine.list_meetings().await
}

#[tauri::command]
pub async fn join(
    state: State<'_, AppState>,
    code: String,
    name: String,
    options: JoinOptions,
) -> Result<JoinOutcome> {
    state.engine.join(&code, &name, options).await
}

#[tauri::command]
pub async fn leave(state: State<'_, AppState>) -> Result<()> {
    state.engine.leave().await
}

#[tauri::command]
pub async fn admit(state: State<'_, AppState>, participant: ParticipantId) -> Result<()> {
    state.engine.moderate("admit", participant).await
}

#[tauri::command]
pub async fn deny(state: State<'_, AppState>, participant: ParticipantId) -> Result<()> {
    state.engine.moderate("deny", participant).await
}

#[tauri::command]
pub async fn mute(state: State<'_, AppState>, participant: ParticipantId) -> Result<()> {
    state.engine.moderate("mute", participant).await
}

#[tauri::command]
pub async fn allow_unmute(state: State<'_, AppState>, participant: ParticipantId) -> Result<()> {
    state.engine.moderate("allow_unmute", participant).await
}

#[tauri::command]
pub async fn remove(state: State<'_, AppState>, participant: ParticipantId) -> Result<()> {
    state.engine.moderate("remove", participant).await
}

#[tauri::command]
pub async fn promote(state: State<'_, AppState>, participant: ParticipantId) -> Result<()> {
    state.engine.moderate("promote", participant).await
}

#[tauri::command]
pub async fn demote(state: State<'_, AppState>, participant: ParticipantId) -> Result<()> {
    state.engine.moderate("demote", participant).await
}

#[tauri::command]
pub async fn set_locked(state: State<'_, AppState>, locked: bool) -> Result<()> {
    state.engine.set_locked(locked).await
}

#[tauri::command]
pub async fn set_self_unmute(state: State<'_, AppState>, allowed: bool) -> Result<()> {
    state.engine.set_self_unmute(allowed).await
}

/// Host: `{access_code, invite_secret}`, the meeting's new ones.
#[tauri::command]
pub async fn rekey_meeting(state: State<'_, AppState>) -> Result<Value> {
    state.engine.rekey_meeting().await
}

#[tauri::command]
pub async fn end_meeting(state: State<'_, AppState>) -> Result<()> {
    state.engine.end_meeting().await
}

#[tauri::command]
pub async fn start_consultation(state: State<'_, AppState>) -> Result<()> {
    state.engine.start_consultation().await
}

#[tauri::command]
pub async fn end_consultation(state: State<'_, AppState>, notes: String) -> Result<Value> {
    state.engine.end_consultation(notes).await
}

#[tauri::command]
pub async fn save_consultation_notes(
    state: State<'_, AppState>,
    meeting: MeetingId,
    notes: String,
) -> Result<ConsultationRecord> {
    state.engine.save_consultation_notes(meeting, notes).await
}

#[tauri::command]
pub fn consultations(state: State<'_, AppState>) -> Result<Vec<Value>> {
    state.engine.consultations()
}

#[tauri::command]
pub async fn update_media(state: State<'_, AppState>, media: MediaState) -> Result<()> {
    state.engine.update_media(media).await
}

#[tauri::command]
pub fn list_devices(state: State<'_, AppState>) -> DeviceList {
    state.engine.list_devices()
}

#[tauri::command]
pub fn select_device(state: State<'_, AppState>, kind: String, id: String) -> Result<()> {
    state.engine.select_device(devices::parse_kind(&kind)?, &id)
}

#[tauri::command]
pub fn start_preview(state: State<'_, AppState>) -> Result<()> {
    state.engine.start_preview()
}

#[tauri::command]
pub fn stop_preview(state: State<'_, AppState>) {
    state.engine.stop_preview()
}

#[tauri::command]
pub async fn send_chat(state: State<'_, AppState>, text: String, staff_only: bool) -> Result<Uuid> {
    state.engine.send_chat(&text, staff_only).await
}

#[tauri::command]
pub async fn retry_chat(state: State<'_, AppState>, id: Uuid) -> Result<()> {
    state.engine.retry_chat(id).await
}

#[tauri::command]
pub async fn typing(state: State<'_, AppState>, typing: bool) -> Result<()> {
    state.engine.typing(typing).await
}

#[tauri::command]
pub fn chat_history(
    state: State<'_, AppState>,
    meeting: MeetingId,
) -> Result<Vec<clinicmeet_protocol::ChatMessage>> {
    state.engine.chat_history(meeting)
}

#[tauri::command]
pub async fn consultation_record(
    state: State<'_, AppState>,
    meeting: MeetingId,
) -> Result<ConsultationRecord> {
    state.engine.consultation_record(meeting).await
}

#[tauri::command]
pub async fn amend_consultation(
    state: State<'_, AppState>,
    meeting: MeetingId,
    text: String,
) -> Result<ConsultationRecord> {
    state.engine.amend_consultation(meeting, text).await
}

#[tauri::command]
pub fn local_meetings(state: State<'_, AppState>) -> Result<Vec<Value>> {
    state.engine.local_meetings()
}

#[tauri::command]
pub async fn past_meetings(state: State<'_, AppState>, filter: PastFilter) -> Result<Vec<PastMeeting>> {
    state.engine.past_meetings(filter).await
}

#[tauri::command]
pub async fn clinic_meetings(state: State<'_, AppState>) -> Result<Vec<Value>> {
    state.engine.clinic_meetings().await
}

#[tauri::command]
pub async fn join_as_staff(
    state: State<'_, AppState>,
    meeting: MeetingId,
    name: String,
    options: JoinOptions,
) -> Result<JoinOutcome> {
    state.engine.join_as_staff(meeting, &name, options).await
}

#[tauri::command]
pub async fn cancel_meeting(state: State<'_, AppState>, meeting: MeetingId) -> Result<()> {
    state.engine.cancel_meeting(meeting).await
}

#[tauri::command]
pub async fn save_invitation(state: State<'_, AppState>, meeting: MeetingId) -> Result<String> {
    state.engine.save_invitation(meeting).await
}
