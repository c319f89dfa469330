//! Typed events the engine hands to the application. They serialize as one
//! flat JSON object with an `"event"` field naming the event: the CLI prints
//! exactly this (see the crate docs for the list).

use clinicmeet_protocol::{
    ChatMessage, JoinState, KeyframeRequest, MediaChanged, MeetingEnded, MeetingInfo, MeetingUpdated,
    MutedBy, ParticipantConnection, ParticipantId, ParticipantInfo, ParticipantJoined, ParticipantLeft,
    RecordingChanged, RecordingInfo, Role, TrackInfo, TrackPublished, TrackUnpublished, Typing, WaitingInfo,
    WaitingRoom,
};
use serde::Serialize;
use uuid::Uuid;

use crate::store::OutboxState;

/// State of the connection to the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    /// An attempt to connect is under way. The application announces it before
    /// [`crate::Session::connect`]; the engine reports the outcome.
    Connecting,
    /// Connected and greeted (hello done).
    Connected,
    /// Lost; a new attempt follows after a backoff delay.
    Reconnecting,
    /// Closed and not coming back by itself.
    Disconnected,
}

/// What a participant learns on entering a meeting.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Entered {
    pub meeting: MeetingInfo,
    pub you: ParticipantInfo,
    pub participants: Vec<ParticipantInfo>,
    pub waiting: Vec<WaitingInfo>,
    /// Media tracks others publish now.
    pub tracks: Vec<TrackInfo>,
    /// Entered again through `resume` after a lost connection.
    pub resumed: bool,
    /// Someone records the call: show the indicator and a notice.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub recording: Option<RecordingInfo>,
}

impl Entered {
    /// What the relay's join state tells the application. The resume token stays
    /// behind: it is a bearer secret the engine keeps to itself.
    pub fn from_join(state: JoinState, resumed: bool) -> Entered {
        Entered {
            meeting: state.meeting,
            you: state.you,
            participants: state.participants,
            waiting: state.waiting,
            tracks: state.tracks,
            resumed,
            recording: state.recording,
        }
    }
}

/// An own message as queued: what an application shows while it is `sending`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PendingChat {
    pub text: String,
    pub staff_only: bool,
    /// When it was written, milliseconds since the Unix epoch (this device's clock).
    pub created_at: i64,
}

/// An event for the application.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClientEvent {
    Connection {
        state: ConnectionState,
        #[serde(skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(optional))]
        attempt: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(optional))]
        retry_in_ms: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(optional))]
        reason: Option<String>,
    },
    /// In the meeting (by join or resume).
    Joined(Box<Entered>),
    /// In the waiting room.
    Waiting {
        participant_id: ParticipantId,
        meeting: Box<MeetingInfo>,
        resumed: bool,
    },
    /// Let in from the waiting room.
    Admitted(Box<Entered>),
    /// Refused entry; the session is closed.
    Denied,
    /// Removed by a moderator; the session is closed.
    Removed,
    ParticipantJoined(ParticipantJoined),
    ParticipantLeft(ParticipantLeft),
    MediaChanged(MediaChanged),
    RoleChanged {
        participant_id: ParticipantId,
        role: Role,
        /// The change concerns this client.
        you: bool,
    },
    /// Another participant's connection dropped or came back.
    ParticipantConnection(ParticipantConnection),
    /// The waiting room (host and moderators): the whole list.
    WaitingRoom(WaitingRoom),
    /// A moderator muted this client's microphone.
    Muted(MutedBy),
    MeetingUpdated(Box<MeetingUpdated>),
    /// The meeting is over; the session is closed.
    MeetingEnded(MeetingEnded),
    /// A chat message or staff-only note, new to this client (each once).
    Chat {
        #[serde(flatten)]
        message: ChatMessage,
        /// Sent by this client.
        own: bool,
    },
    /// An own message changed state (sending → sent, or failed).
    ChatStatus {
        client_msg_id: Uuid,
        status: OutboxState,
        /// On `sending` when queued or queued again by hand: what was sent, so an
        /// application can show it at once. Absent on automatic retries.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(optional))]
        pending: Option<PendingChat>,
        #[serde(skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(optional))]
        seq: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(optional))]
        error: Option<String>,
        /// Rate-limited: retried automatically after this long.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(optional))]
        retry_in_ms: Option<u64>,
    },
    Typing(Typing),
    /// Chat history fetched up to the relay's current sequence numbers.
    ChatSynced {
        chat_seq: u64,
        notes_seq: u64,
        /// Messages fetched in this resync (new or not).
        fetched: u64,
    },
    /// Another participant published a media track.
    TrackPublished(TrackPublished),
    /// A media track is gone.
    TrackUnpublished(TrackUnpublished),
    /// The relay asks for a keyframe of one of this client's tracks.
    KeyframeRequest(KeyframeRequest),
    /// This client left the meeting.
    Left,
    /// An error not tied to a call the application made.
    Error {
        code: String,
        message: String,
    },
    /// Someone started recording the call, or the recording ended (`recording: null`).
    RecordingChanged(RecordingChanged),
}

impl ClientEvent {
    /// The event's name (the `"event"` field of its JSON).
    pub fn name(&self) -> &'static str {
        match self {
            ClientEvent::Connection { .. } => "connection",
            ClientEvent::Joined(_) => "joined",
            ClientEvent::Waiting { .. } => "waiting",
            ClientEvent::Admitted(_) => "admitted",
            ClientEvent::Denied => "denied",
            ClientEvent::Removed => "removed",
            ClientEvent::ParticipantJoined(_) => "participant_joined",
            ClientEvent::ParticipantLeft(_) => "participant_left",
            ClientEvent::MediaChanged(_) => "media_changed",
            ClientEvent::RoleChanged { .. } => "role_changed",
            ClientEvent::ParticipantConnection(_) => "participant_connection",
            ClientEvent::WaitingRoom(_) => "waiting_room",
            ClientEvent::Muted(_) => "muted",
            ClientEvent::MeetingUpdated(_) => "meeting_updated",
            ClientEvent::MeetingEnded(_) => "meeting_ended",
            ClientEvent::Chat { .. } => "chat",
            ClientEvent::ChatStatus { .. } => "chat_status",
            ClientEvent::Typing(_) => "typing",
            ClientEvent::ChatSynced { .. } => "chat_synced",
            ClientEvent::TrackPublished(_) => "track_published",
            ClientEvent::TrackUnpublished(_) => "track_unpublished",
            ClientEvent::KeyframeRequest(_) => "keyframe_request",
            ClientEvent::Left => "left",
            ClientEvent::Error { .. } => "error",
            ClientEvent::RecordingChanged(_) => "recording_changed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clinicmeet_protocol::{LeaveReason, MediaState, MeetingStatus};

    /// Serializes `ev` and checks its JSON and its name.
    fn check(ev: ClientEvent, json: &str) {
        assert_eq!(serde_json::to_string(&ev).unwrap(), json);
        assert!(json.starts_with(&format!(r#"{{"event":"{}""#, ev.name())), "{json}");
    }

    /// The JSON the UI gets for the events that pass a relay event on (written
    /// down from the code before their payloads became the protocol's structs).
    #[test]
    fn passed_on_events_json_is_stable() {
        let id = Uuid::from_u128(0xa);
        let guy = r#"{"id":"00000000-0000-0000-0000-00000000000a","display_name":"Bo","role":"host","verified_staff":true,"media":{"audio":false,"video":false,"screen":true},"audio_locked":false,"joined_at":3,"connected":false}"#;
        let room = r#"{"id":"00000000-0000-0000-0000-00000000000b","title":"Check","description":"d","kind":"consultation","status":"scheduled","host_name":"H","locked":false,"settings":{"allow_screen_share":false,"allow_recording":true,"mute_on_join":true,"allow_self_unmute":true,"waiting_room":false,"max_participants":2,"chat_enabled":false},"patient_reference":"P1","schedule":{"start":6,"time_zone":"Europe/Oslo"},"created_at":4,"ended_at":8}"#;
        let feed = r#"{"track_id":"00000000-0000-0000-0000-00000000000c","participant_id":"00000000-0000-0000-0000-00000000000a","kind":"audio","codec":"opus","encodings":[{"ssrc":5,"width":0,"height":0,"max_bitrate_bps":0,"temporal_layers":1}]}"#;
        let line =
            r#"{"participant_id":"00000000-0000-0000-0000-00000000000a","display_name":"Bo","since":2}"#;
        let pid = r#""participant_id":"00000000-0000-0000-0000-00000000000a""#;
        let track_id = Uuid::from_u128(0xc);
        let tid = r#""track_id":"00000000-0000-0000-0000-00000000000c""#;
        let participant: ParticipantInfo = serde_json::from_str(guy).unwrap();
        check(
            ClientEvent::ParticipantJoined(ParticipantJoined { participant }),
            &format!(r#"{{"event":"participant_joined","participant":{guy}}}"#),
        );
        let reason = LeaveReason::MeetingEnded;
        check(
            ClientEvent::ParticipantLeft(ParticipantLeft { participant_id: id, reason }),
            &format!(r#"{{"event":"participant_left",{pid},"reason":"meeting_ended"}}"#),
        );
        let media = MediaState { audio: true, video: true, screen: false };
        let json = format!(
            r#"{{"event":"media_changed",{pid},"media":{{"audio":true,"video":true,"screen":false}},"audio_locked":false}}"#
        );
        check(
            ClientEvent::MediaChanged(MediaChanged { participant_id: id, media, audio_locked: false }),
            &json,
        );
        let role = Role::Staff;
        check(
            ClientEvent::RoleChanged { participant_id: id, role, you: true },
            &format!(r#"{{"event":"role_changed",{pid},"role":"staff","you":true}}"#),
        );
        check(
            ClientEvent::ParticipantConnection(ParticipantConnection { participant_id: id, connected: true }),
            &format!(r#"{{"event":"participant_connection",{pid},"connected":true}}"#),
        );
        let waiting = vec![serde_json::from_str(line).unwrap()];
        check(
            ClientEvent::WaitingRoom(WaitingRoom { waiting }),
            &format!(r#"{{"event":"waiting_room","waiting":[{line}]}}"#),
        );
        check(
            ClientEvent::Muted(MutedBy { by: id }),
            r#"{"event":"muted","by":"00000000-0000-0000-0000-00000000000a"}"#,
        );
        let meeting = serde_json::from_str(room).unwrap();
        check(
            ClientEvent::MeetingUpdated(Box::new(MeetingUpdated { meeting })),
            &format!(r#"{{"event":"meeting_updated","meeting":{room}}}"#),
        );
        check(
            ClientEvent::MeetingEnded(MeetingEnded { status: MeetingStatus::Cancelled }),
            r#"{"event":"meeting_ended","status":"cancelled"}"#,
        );
        check(
            ClientEvent::Typing(Typing { participant_id: id, typing: false }),
            &format!(r#"{{"event":"typing",{pid},"typing":false}}"#),
        );
        let track = serde_json::from_str(feed).unwrap();
        check(
            ClientEvent::TrackPublished(TrackPublished { track }),
            &format!(r#"{{"event":"track_published","track":{feed}}}"#),
        );
        check(
            ClientEvent::TrackUnpublished(TrackUnpublished { track_id }),
            &format!(r#"{{"event":"track_unpublished",{tid}}}"#),
        );
        check(
            ClientEvent::KeyframeRequest(KeyframeRequest { track_id }),
            &format!(r#"{{"event":"keyframe_request",{tid}}}"#),
        );
    }

    #[test]
    fn json_is_flat_with_event_name() {
        let ev = ClientEvent::ChatStatus {
            client_msg_id: Uuid::nil(),
            status: OutboxState::Sent,
            pending: None,
            seq: Some(4),
            error: None,
            retry_in_ms: None,
        };
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["event"], "chat_status");
        assert_eq!(v["status"], "sent");
        assert_eq!(v["seq"], 4);
        assert_eq!(serde_json::to_value(ClientEvent::Denied).unwrap()["event"], "denied");
        let chat = ClientEvent::Chat {
            message: ChatMessage {
                meeting_id: Uuid::nil(),
                seq: 9,
                client_msg_id: Uuid::nil(),
                sender_id: Uuid::nil(),
                sender_name: "A".into(),
                sender_verified: true,
                text: "hi".into(),
                staff_only: false,
                sent_at: 1,
                system: None,
                attachments: Vec::new(),
            },
            own: false,
        };
        let v = serde_json::to_value(&chat).unwrap();
        assert_eq!(
            (v["event"].as_str(), v["seq"].as_u64(), v["text"].as_str()),
            (Some("chat"), Some(9), Some("hi"))
        );
        assert_eq!(chat.name(), "chat");
    }
}
