//! The typed contract between the shell and the UI: every event the UI's
//! `Engine.subscribe` listeners get is an [`EngineEvent`] (the engine's own
//! [`ClientEvent`], forwarded as is, or an [`AppEvent`] of the shell), and the
//! UI's TypeScript for these types is generated from them into
//! `ui/src/engine/generated.ts` (see [`typescript`]; a test keeps the committed
//! file current).
//!
//! Both enums are tagged by an `"event"` field, so the UI switches on `.event`.

use std::any::TypeId;
use std::collections::{BTreeMap, HashSet};

use clinicmeet_client::{ClientEvent, Entered};
use clinicmeet_protocol::{
    ConsultationRecord, ErrorBody, Event, MeetingInfo, MeetingSpec, MeetingSummary, ParticipantId,
    PastFilter, PastMeeting, StaffIdentity,
};
use serde::Serialize;
use ts_rs::{Config, TypeVisitor, TS};

use crate::launch::Invite;

/// How well media gets through, from round-trip time and loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionQuality {
    Good,
    Fair,
    Poor,
}

/// Events of the app around the engine: local devices, pictures and levels,
/// invite links.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AppEvent {
    /// Frames started or stopped arriving for a participant (or `local`).
    Video { participant_id: String, available: bool },
    /// Frames of a remote participant's screen share started or stopped arriving
    /// (framed under `screen:<participant id>`).
    Screen { participant_id: String, available: bool },
    /// Audio level 0..1 of a participant (or `local`), a few times per second.
    AudioLevel { participant_id: String, level: f64 },
    /// Media could not be set up; the meeting goes on without it.
    MediaError { message: String },
    /// How well media gets through (engines that measure it).
    Quality { quality: ConnectionQuality, rtt_ms: f64, loss: f64 },
    /// An invite link was opened while the app runs.
    Invite(Invite),
}

/// Everything the engine tells the UI.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(untagged)]
pub enum EngineEvent {
    Client(ClientEvent),
    App(AppEvent),
}

impl From<ClientEvent> for EngineEvent {
    fn from(e: ClientEvent) -> Self {
        EngineEvent::Client(e)
    }
}

impl From<AppEvent> for EngineEvent {
    fn from(e: AppEvent) -> Self {
        EngineEvent::App(e)
    }
}

/// The reply to the UI's `join` call: in the meeting, or in its waiting room.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JoinOutcome {
    Joined { join: Box<Entered> },
    Waiting { participant_id: ParticipantId, meeting: Box<MeetingInfo> },
}

/// Where the generated declarations go, from the crate's directory.
pub const GENERATED_TS: &str = "../ui/src/engine/generated.ts";

/// Collects the declaration of every named type reachable from the roots.
struct Declarations<'a> {
    cfg: &'a Config,
    seen: HashSet<TypeId>,
    /// TypeScript name → declaration (sorted, so the file is stable).
    decls: BTreeMap<String, String>,
}

impl TypeVisitor for Declarations<'_> {
    fn visit<T: TS + 'static + ?Sized>(&mut self) {
        if !self.seen.insert(TypeId::of::<T>()) {
            return;
        }
        // Named (derived) types have a file of their own in ts-rs; wrappers and
        // primitives have none and are only walked through.
        if T::output_path().is_some() {
            let docs = T::docs().unwrap_or_default();
            self.decls.insert(T::ident(self.cfg), format!("{docs}export {}", T::decl(self.cfg)));
        }
        T::visit_dependencies(self);
        T::visit_generics(self);
    }
}

/// `ui/src/engine/generated.ts`: the declarations of the types the UI receives
/// from the shell, and the relay's wire types the browser guest speaks.
pub fn typescript() -> String {
    // Integers are JSON numbers (sequence numbers and times stay far below 2^53).
    let cfg = Config::new().with_large_int("number");
    let mut d = Declarations { cfg: &cfg, seen: HashSet::new(), decls: BTreeMap::new() };
    d.visit::<EngineEvent>();
    d.visit::<JoinOutcome>();
    d.visit::<Event>();
    d.visit::<ErrorBody>();
    d.visit::<MeetingSpec>();
    d.visit::<MeetingSummary>();
    d.visit::<StaffIdentity>();
    d.visit::<ConsultationRecord>();
    d.visit::<PastMeeting>();
    d.visit::<PastFilter>();
    let mut out = String::from(
        "// Generated from the Rust types by src-tauri/src/contract.rs: do not edit.\n\
         // Update: UPDATE_CONTRACT=1 cargo test -p clinicmeet-app --lib contract\n",
    );
    for decl in d.decls.values() {
        out.push('\n');
        out.push_str(decl.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clinicmeet_protocol::{JoinState, MediaState, ParticipantInfo, Role};
    use std::path::Path;

    #[test]
    fn generated_typescript_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(GENERATED_TS);
        let text = typescript();
        if std::env::var_os("UPDATE_CONTRACT").is_some() {
            std::fs::write(&path, &text).expect("write generated.ts");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == text,
            "ui/src/engine/generated.ts is not what the Rust types say.\n\
             Update it: UPDATE_CONTRACT=1 cargo test -p clinicmeet-app --lib contract"
        );
        // ts-rs writes files only for types marked `#[ts(export)]` (none here).
        assert!(!Path::new(env!("CARGO_MANIFEST_DIR")).join("bindings").exists());
    }

    #[test]
    fn events_are_tagged_by_event_and_keep_the_resume_token_out() {
        let you = ParticipantInfo {
            id: uuid::Uuid::from_u128(2),
            display_name: "Ann".into(),
            role: Role::Host,
            verified_staff: true,
            media: MediaState::default(),
            audio_locked: false,
            joined_at: 1,
            connected: true,
        };
        let state = JoinState {
            meeting: serde_json::from_value(serde_json::json!({"id": uuid::Uuid::nil(), "title": "T",
                "kind": "video", "status": "active", "host_name": "Ann", "locked": false,
                "settings": {}, "created_at": 1}))
            .unwrap(),
            you: you.clone(),
            participants: vec![you],
            waiting: vec![],
            resume_token: "secret-resume-token".into(),
            chat_seq: 0,
            notes_seq: 0,
            tracks: vec![],
            recording: None,
        };
        let entered = Box::new(Entered::from_join(state, false));
        let joined = serde_json::to_string(&EngineEvent::from(ClientEvent::Joined(entered.clone()))).unwrap();
        let reply = serde_json::to_string(&JoinOutcome::Joined { join: entered }).unwrap();
        for json in [&joined, &reply] {
            assert!(!json.contains("secret-resume-token") && !json.contains("resume_token"), "{json}");
        }
        let v: serde_json::Value = serde_json::from_str(&joined).unwrap();
        assert_eq!((v["event"].as_str(), v["you"]["display_name"].as_str()), (Some("joined"), Some("Ann")));
        let v = serde_json::to_value(EngineEvent::from(AppEvent::AudioLevel {
            participant_id: "local".into(),
            level: 0.5,
        }))
        .unwrap();
        assert_eq!((v["event"].as_str(), v["level"].as_f64()), (Some("audio_level"), Some(0.5)));
    }
}
