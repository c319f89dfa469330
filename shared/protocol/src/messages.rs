//! Control messages. A client sends [`ClientMessage`]s (a request id and a
//! [`Request`]); the relay answers each with exactly one [`ServerMessage::Reply`]
//! or [`ServerMessage::Error`] carrying the same id, and pushes
//! [`ServerMessage::Event`]s at any time. JSON, one message per frame.
//!
//! The first request on a connection must be [`Request::Hello`].

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{ErrorBody, ErrorCode};

/// Milliseconds since the Unix epoch, UTC, from the relay's clock.
pub type UnixMillis = i64;

/// This machine's wall clock as [`UnixMillis`] (0 on a clock set before 1970).
pub fn unix_now_ms() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as UnixMillis)
        .unwrap_or(0)
}
/// Matches a reply to its request; chosen by the client, unique per connection.
pub type RequestId = u64;
pub type MeetingId = Uuid;
pub type ParticipantId = Uuid;
pub type StaffId = Uuid;

// ---------------------------------------------------------------------------
// Client → relay

/// One request from a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientMessage {
    pub id: RequestId,
    #[serde(flatten)]
    pub request: Request,
}

/// What a client asks of the relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// First message on every connection. A staff device also presents its credential.
    Hello {
        min_version: u16,
        max_version: u16,
        /// Free-form client name and version, for the audit log (e.g. `clinicmeet-cli/0.1.0`).
        client: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device_credential: Option<String>,
    },
    /// Exchanges a one-time enrollment code (from `clinicmeet-relay staff add`)
    /// for a long-lived device credential.
    Enroll { enrollment_code: String, device_name: String },
    /// Staff only: create a meeting (the creator becomes its host on join).
    CreateMeeting { spec: MeetingSpec },
    /// Staff only: meetings that are active or scheduled (the dashboard).
    ListMeetings,
    /// Join a meeting by its access code or its invite link's secret (one
    /// string, read with [`crate::JoinSecret::parse`]). Replies
    /// [`Response::Joined`] or [`Response::Waiting`].
    Join {
        access_code: String,
        display_name: String,
        #[serde(default)]
        media: MediaState,
    },
    /// Take back one's place after a lost connection (or relay restart).
    /// Replies [`Response::Joined`] or [`Response::Waiting`].
    Resume { resume_token: String },
    /// Leave the meeting for good.
    Leave,
    /// Moderators: let a waiting participant in.
    Admit { participant_id: ParticipantId },
    /// Moderators: refuse a waiting participant.
    Deny { participant_id: ParticipantId },
    /// Moderators: mute another participant's microphone. In a meeting whose
    /// participants may not unmute themselves, it stays off until [`Request::AllowUnmute`].
    Mute { participant_id: ParticipantId },
    /// Moderators: let a participant a moderator muted turn their microphone on again
    /// (it stays off until they do).
    AllowUnmute { participant_id: ParticipantId },
    /// Moderators: whether participants may unmute themselves after a moderator muted them
    /// ([`MeetingSettings::allow_self_unmute`]).
    SetSelfUnmute { allowed: bool },
    /// Moderators: remove a participant from the meeting.
    Remove { participant_id: ParticipantId },
    /// Moderators: lock or unlock the meeting (no new joins while locked).
    SetLocked { locked: bool },
    /// Host: end the meeting for everyone.
    EndMeeting,
    /// Host: make a participant a moderator.
    Promote { participant_id: ParticipantId },
    /// Host: take moderator rights back (the participant returns to staff or guest).
    Demote { participant_id: ParticipantId },
    /// Announce one's own microphone / camera / screen state.
    UpdateMedia { media: MediaState },
    /// Send a chat message. `client_msg_id` makes retries idempotent.
    SendChat {
        client_msg_id: Uuid,
        /// May be empty when the message carries attachments.
        text: String,
        #[serde(default)]
        staff_only: bool,
        /// Attachments this participant uploaded into this meeting (at most
        /// [`crate::limits::MAX_ATTACHMENTS_PER_MESSAGE`], each in one message only);
        /// staff-only ones go only in a staff-only note, and a note carries only staff-only ones.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<AttachmentId>,
    },
    /// Typing indicator (not stored).
    Typing { typing: bool },
    /// Chat history after the given sequence numbers. In a meeting: that meeting.
    /// Staff may also name an ended meeting they took part in (until retention ends).
    ChatHistory {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        meeting_id: Option<MeetingId>,
        /// Return chat messages with `seq > since_seq`.
        since_seq: u64,
        /// Return staff-only notes with `seq > notes_since_seq` (staff only; ignored for guests).
        #[serde(default)]
        notes_since_seq: u64,
        limit: u32,
    },
    /// Host of a consultation: start it (status active, start time recorded).
    StartConsultation,
    /// Host of a consultation: end it (status completed, duration recorded; everyone leaves).
    EndConsultation,
    /// Liveness / round-trip probe.
    Ping,
    /// Start sending a media track. Replies [`Response::Published`] with the flow id
    /// under which the client sends the track's RTP (and receives RTCP feedback for it).
    Publish { track: TrackSpec },
    /// Stop sending a track.
    Unpublish { track_id: TrackId },
    /// Receive another participant's track. Replies [`Response::Subscribed`] with the
    /// flow id under which the relay sends its RTP (and expects RTCP feedback for it).
    Subscribe {
        track_id: TrackId,
        /// Preferred simulcast encoding (0 = lowest); `None` lets the relay choose the best that fits.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_encoding: Option<u8>,
    },
    /// Stop receiving a track.
    Unsubscribe { track_id: TrackId },
    /// Host, in the meeting: issue a new access code and invite secret; the old
    /// ones stop working at once. Replies [`Response::Rekeyed`].
    RekeyMeeting,
    /// The staff member who held a consultation (its creator), once it is over:
    /// write its notes, once (up to [`crate::limits::MAX_NOTES_BYTES`]). A retry
    /// with the same text replies the record again; different text is refused
    /// with `invalid_state` (amend instead). Replies [`Response::Consultation`].
    SaveConsultationNotes { meeting_id: MeetingId, notes: String },
    /// The staff member who held a consultation, after its notes were saved: add
    /// an amendment (kept with its time and author; nothing is ever overwritten;
    /// at most [`crate::limits::MAX_AMENDMENTS`] per record). Replies [`Response::Consultation`].
    AmendConsultation { meeting_id: MeetingId, text: String },
    /// The staff member who held a consultation: its record (times, notes,
    /// amendments). Anyone else (other staff included) gets `not_found`.
    /// Replies [`Response::Consultation`].
    GetConsultation { meeting_id: MeetingId },
    /// Staff: meetings that are over which they created or took part in (until
    /// retention ends), newest first. Replies [`Response::PastMeetings`].
    ListPastMeetings {
        #[serde(default)]
        filter: PastFilter,
    },
    /// Its creator: cancel a meeting that has not started (status `scheduled`).
    /// Everyone already in it (the waiting room, staff who came early) gets
    /// [`Event::MeetingEnded`] with status `cancelled`; later joins get
    /// `meeting_cancelled`. Anyone else gets `not_found`. Replies [`Response::Ok`].
    CancelMeeting { meeting_id: MeetingId },
    /// Staff: every active and scheduled meeting of the clinic (the clinic view),
    /// not only their own. Meetings of others come without patient reference and
    /// description. Replies [`Response::Meetings`].
    ListClinicMeetings,
    /// Staff: join a meeting of the clinic by its id, without its code. Anyone
    /// but its creator knocks: they wait in the waiting room until a moderator
    /// admits them (in a consultation, until it starts), as a guest would. Replies
    /// [`Response::Joined`] or [`Response::Waiting`]; an unknown meeting or one
    /// that is over: `not_found`, `meeting_ended` or `meeting_cancelled`.
    JoinAsStaff {
        meeting_id: MeetingId,
        display_name: String,
        #[serde(default)]
        media: MediaState,
    },
    /// In a meeting: announce a file to attach (any participant; `staff_only`
    /// needs enrolled staff). The relay checks the declared size against its
    /// per-file limit and the meeting's quota and replies
    /// [`Response::UploadReady`]; the bytes then go outside the control stream
    /// (see [`crate::transfer`]). Asking again for the same `sha256` resumes:
    /// the reply's `offset` is what the relay holds durably.
    StartUpload {
        /// The file's name as the user sees it (kept with the attachment, never logged).
        name: String,
        /// Exact size in bytes.
        size: u64,
        /// SHA-256 of the whole file, lower-case hex (64 characters).
        sha256: String,
        #[serde(default)]
        staff_only: bool,
    },
    /// Ask to read an attachment. Replies [`Response::DownloadReady`], or
    /// `attachment_not_found` when it does not exist or is not the caller's to read.
    DownloadTicket { attachment_id: AttachmentId },
    /// Host or moderator, in a meeting whose settings allow recording
    /// ([`MeetingSettings::allow_recording`]): announce that one records the call on
    /// one's own device. Everyone gets [`Event::RecordingChanged`]; the relay keeps an
    /// audit row. Idempotent for the one recording; another's recording gives `invalid_state`.
    StartRecording,
    /// Host or moderator: the recording ended (any host or moderator may end another's;
    /// the recorder's client stops its file on the event). Replies `ok` when nobody records.
    StopRecording,
}

// ---------------------------------------------------------------------------
// Relay → client

/// One message from the relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Success reply to request `id`.
    Reply { id: RequestId, response: Response },
    /// Error reply to request `id` (`None` when the request could not even be parsed).
    Error { id: Option<RequestId>, error: ErrorBody },
    /// Something happened in the meeting.
    Event { event: Event },
}

/// A successful reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    Hello {
        version: u16,
        server: String,
        /// Present when a valid device credential was given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        staff: Option<StaffIdentity>,
    },
    Enrolled {
        staff: StaffIdentity,
        device_credential: String,
    },
    MeetingCreated {
        meeting: MeetingInfo,
        access_code: String,
        /// The invite link's secret (26 characters; see [`crate::InviteSecret`]).
        /// Absent from relays older than invite links.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        invite_secret: Option<String>,
    },
    Meetings {
        meetings: Vec<MeetingSummary>,
    },
    /// In the meeting.
    Joined(Box<JoinState>),
    /// In the waiting room; an [`Event::Admitted`] or [`Event::Denied`] follows.
    Waiting {
        participant_id: ParticipantId,
        resume_token: String,
        meeting: MeetingInfo,
    },
    /// The message was stored with its sequence number (also sent to the sender
    /// as the accepted copy; a retry of a stored message returns the same copy).
    ChatAccepted {
        message: ChatMessage,
    },
    ChatHistory {
        messages: Vec<ChatMessage>,
        /// More messages are available after the last one returned.
        more: bool,
    },
    ConsultationEnded {
        started_at: UnixMillis,
        ended_at: UnixMillis,
        duration_secs: i64,
    },
    Pong {
        server_time: UnixMillis,
    },
    /// The track is published: send its RTP (and sender reports) on `flow_id`.
    Published {
        track_id: TrackId,
        flow_id: FlowId,
    },
    /// Subscribed: the track's RTP arrives on `flow_id`; send feedback (NACK/PLI/RR) on it.
    Subscribed {
        track_id: TrackId,
        flow_id: FlowId,
    },
    /// Success with nothing to report.
    Ok,
    /// The meeting's new access code and invite secret (the old ones no longer work).
    Rekeyed {
        access_code: String,
        invite_secret: String,
    },
    /// A consultation's record as the relay keeps it.
    Consultation {
        record: ConsultationRecord,
    },
    /// Past meetings, newest first (at most the filter's limit).
    PastMeetings {
        meetings: Vec<PastMeeting>,
        /// More matched than were returned.
        more: bool,
    },
    /// Send the file's bytes from `offset` on, with `token` (see [`crate::transfer`]).
    UploadReady {
        upload_id: Uuid,
        /// Bytes the relay already holds durably (0 for a new upload).
        offset: u64,
        /// A capability for this upload by this participant; expires after
        /// [`crate::transfer::TOKEN_TTL_MS`].
        token: String,
    },
    /// Read the attachment with `token` (see [`crate::transfer`]).
    DownloadReady {
        attachment: AttachmentInfo,
        token: String,
    },
}

/// What a participant learns on entering a meeting (join, admit or resume).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct JoinState {
    pub meeting: MeetingInfo,
    pub you: ParticipantInfo,
    /// Everyone in the meeting, including `you`.
    pub participants: Vec<ParticipantInfo>,
    /// People in the waiting room (filled for host and moderators only).
    pub waiting: Vec<WaitingInfo>,
    /// Present this on [`Request::Resume`] after a lost connection.
    pub resume_token: String,
    /// Highest chat sequence number so far (fetch history up to it).
    pub chat_seq: u64,
    /// Highest staff-note sequence number so far (0 for guests).
    pub notes_seq: u64,
    /// Media tracks other participants publish now (subscribe to receive them).
    #[serde(default)]
    pub tracks: Vec<TrackInfo>,
    /// Someone records the call (show the indicator and a notice on entering).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<RecordingInfo>,
}

/// Something that happened, pushed to the participants it concerns. Most
/// payloads are structs of their own, which the client's `ClientEvent` passes
/// on as they are (a newtype variant of an internally tagged enum serializes
/// like a struct variant: `{"type":"typing","participant_id":..,"typing":true}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(rename = "WireEvent"))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    ParticipantJoined(ParticipantJoined),
    ParticipantLeft(ParticipantLeft),
    MediaChanged(MediaChanged),
    RoleChanged {
        participant_id: ParticipantId,
        role: Role,
    },
    ConnectionChanged(ParticipantConnection),
    WaitingRoom(WaitingRoom),
    /// You were let in from the waiting room.
    Admitted(Box<JoinState>),
    /// You were refused entry; the relay closes the connection after this.
    Denied,
    /// You were removed by a moderator; the relay closes the connection after this.
    Removed,
    MutedBy(MutedBy),
    MeetingUpdated(MeetingUpdated),
    MeetingEnded(MeetingEnded),
    Chat {
        message: ChatMessage,
    },
    Typing(Typing),
    TrackPublished(TrackPublished),
    TrackUnpublished(TrackUnpublished),
    KeyframeRequest(KeyframeRequest),
    RecordingChanged(RecordingChanged),
}

// Event payloads (also `ClientEvent` payloads, under the same names but
// `ConnectionChanged`, which the client calls `participant_connection`, and
// `MutedBy`, which it calls `muted`).

/// A participant entered the meeting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ParticipantJoined {
    pub participant: ParticipantInfo,
}

/// A participant is no longer in the meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ParticipantLeft {
    pub participant_id: ParticipantId,
    pub reason: LeaveReason,
}

/// A participant's announced (or host-muted) media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct MediaChanged {
    pub participant_id: ParticipantId,
    pub media: MediaState,
    /// See [`ParticipantInfo::audio_locked`].
    #[serde(default)]
    pub audio_locked: bool,
}

/// A participant's connection dropped (still in the meeting during the resume
/// grace) or came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ParticipantConnection {
    pub participant_id: ParticipantId,
    pub connected: bool,
}

/// The waiting room changed (sent to host and moderators): the whole list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct WaitingRoom {
    pub waiting: Vec<WaitingInfo>,
}

/// A moderator muted your microphone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct MutedBy {
    pub by: ParticipantId,
}

/// Title, status, lock or settings changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct MeetingUpdated {
    pub meeting: MeetingInfo,
}

/// The meeting is over for everyone; the relay closes the connection after this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct MeetingEnded {
    pub status: MeetingStatus,
}

/// A participant started or stopped typing (not stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Typing {
    pub participant_id: ParticipantId,
    pub typing: bool,
}

/// Another participant published a track (subscribe to receive it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TrackPublished {
    pub track: TrackInfo,
}

/// A track is gone (unpublished, or its publisher left).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TrackUnpublished {
    pub track_id: TrackId,
}

/// The relay wants a keyframe of one of your video tracks (optional; PLI on the
/// flow is the main path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct KeyframeRequest {
    pub track_id: TrackId,
}

/// A recording started or stopped (sent to everyone in the meeting, the recorder too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RecordingChanged {
    /// `None`: nobody records any more.
    pub recording: Option<RecordingInfo>,
}

/// Who records the call on their device, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RecordingInfo {
    pub by: ParticipantId,
    pub since: UnixMillis,
}

/// Why a participant is no longer in the meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    Left,
    Removed,
    ConnectionLost,
    MeetingEnded,
}

// ---------------------------------------------------------------------------
// Shared types

/// Meeting roles, from most to least rights. See the rights table in `docs/ARCHITECTURE.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Host,
    Moderator,
    Staff,
    Guest,
}

impl Role {
    /// Enter without passing through the waiting room.
    pub fn skips_waiting_room(self) -> bool {
        !matches!(self, Role::Guest)
    }
    /// Admit/deny, mute or remove others, lock.
    pub fn can_moderate(self) -> bool {
        matches!(self, Role::Host | Role::Moderator)
    }
    /// End for all, promote/demote.
    pub fn is_host(self) -> bool {
        matches!(self, Role::Host)
    }
}

/// A participant's media as they announce it (or as a host mute forces it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct MediaState {
    pub audio: bool,
    pub video: bool,
    pub screen: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ParticipantInfo {
    pub id: ParticipantId,
    pub display_name: String,
    pub role: Role,
    /// Enrolled staff (display names of staff carry a verified mark).
    pub verified_staff: bool,
    pub media: MediaState,
    /// A moderator muted this participant and the meeting does not let participants
    /// unmute themselves: the relay refuses their microphone (and forwards none of
    /// its audio) until a moderator allows it.
    #[serde(default)]
    pub audio_locked: bool,
    pub joined_at: UnixMillis,
    pub connected: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct WaitingInfo {
    pub participant_id: ParticipantId,
    pub display_name: String,
    pub since: UnixMillis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct StaffIdentity {
    pub staff_id: StaffId,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum MeetingKind {
    Video,
    AudioOnly,
    Consultation,
}

/// Scheduled → Active → Ended | Cancelled; consultations end as Completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum MeetingStatus {
    Scheduled,
    Active,
    Ended,
    Cancelled,
    Completed,
}

impl MeetingStatus {
    /// The meeting is over; its code admits nobody.
    pub fn is_over(self) -> bool {
        matches!(self, MeetingStatus::Ended | MeetingStatus::Cancelled | MeetingStatus::Completed)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MeetingStatus::Scheduled => "scheduled",
            MeetingStatus::Active => "active",
            MeetingStatus::Ended => "ended",
            MeetingStatus::Cancelled => "cancelled",
            MeetingStatus::Completed => "completed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct MeetingSettings {
    pub allow_screen_share: bool,
    pub allow_recording: bool,
    pub mute_on_join: bool,
    /// Participants may turn their microphone back on after a moderator (or
    /// `mute_on_join`) muted it. Off: only a moderator's [`Request::AllowUnmute`]
    /// lets them. Moderators may always unmute themselves.
    pub allow_self_unmute: bool,
    pub waiting_room: bool,
    pub max_participants: u32,
    pub chat_enabled: bool,
}

impl Default for MeetingSettings {
    fn default() -> Self {
        MeetingSettings {
            allow_screen_share: true,
            allow_recording: false,
            mute_on_join: false,
            allow_self_unmute: true,
            waiting_room: false,
            max_participants: crate::limits::DEFAULT_MAX_PARTICIPANTS,
            chat_enabled: true,
        }
    }
}

/// An optional schedule: the start in UTC plus the creator's IANA time-zone name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Schedule {
    pub start: UnixMillis,
    pub time_zone: String,
}

/// What a staff member fills in to create a meeting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct MeetingSpec {
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub kind: MeetingKind,
    /// Consultations: the clinic's reference for the patient (never a name in logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    #[serde(default)]
    pub settings: MeetingSettings,
}

/// A meeting as participants see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct MeetingInfo {
    pub id: MeetingId,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub kind: MeetingKind,
    pub status: MeetingStatus,
    pub host_name: String,
    pub locked: bool,
    pub settings: MeetingSettings,
    /// Staff only; omitted for guests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    pub created_at: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<UnixMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<UnixMillis>,
}

/// A dashboard row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct MeetingSummary {
    pub meeting: MeetingInfo,
    pub participant_count: u32,
    pub waiting_count: u32,
}

/// A chat message or staff-only note as stored by the relay.
/// Chat messages and notes are numbered in two separate sequences, so guests
/// see no gaps and cannot count notes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ChatMessage {
    pub meeting_id: MeetingId,
    pub seq: u64,
    pub client_msg_id: Uuid,
    pub sender_id: ParticipantId,
    pub sender_name: String,
    pub sender_verified: bool,
    pub text: String,
    pub staff_only: bool,
    pub sent_at: UnixMillis,
    /// A line the relay wrote itself (its text is empty; the sender fields name
    /// the participant it is about). Absent for what people wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<SystemLine>,
    /// Files attached to the message (download with [`Request::DownloadTicket`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentInfo>,
}

/// What a relay-written chat line says, typed so each client words (and
/// translates) it. Stored and numbered with the chat, kept as long as the chat,
/// seen by everyone who sees the chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum SystemLine {
    /// Entered the meeting (not through the waiting room).
    Joined,
    /// Left the meeting (left, removed or lost past the resume grace).
    Left,
    /// Let in from the waiting room.
    Admitted,
    /// The host started the consultation.
    ConsultationStarted,
    /// The host ended the consultation.
    ConsultationEnded,
    /// Recording started (written by the recording feature).
    RecordingStarted,
    /// Recording stopped (written by the recording feature).
    RecordingStopped,
}

impl SystemLine {
    pub fn as_str(self) -> &'static str {
        match self {
            SystemLine::Joined => "joined",
            SystemLine::Left => "left",
            SystemLine::Admitted => "admitted",
            SystemLine::ConsultationStarted => "consultation_started",
            SystemLine::ConsultationEnded => "consultation_ended",
            SystemLine::RecordingStarted => "recording_started",
            SystemLine::RecordingStopped => "recording_stopped",
        }
    }

    pub fn parse(s: &str) -> Option<SystemLine> {
        [
            SystemLine::Joined,
            SystemLine::Left,
            SystemLine::Admitted,
            SystemLine::ConsultationStarted,
            SystemLine::ConsultationEnded,
            SystemLine::RecordingStarted,
            SystemLine::RecordingStopped,
        ]
        .into_iter()
        .find(|l| l.as_str() == s)
    }
}

/// Which past meetings [`Request::ListPastMeetings`] returns. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct PastFilter {
    /// Words the title contains (case-insensitive, as typed; empty = any title).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Meetings that started (or were created, if they never started) at or after this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<UnixMillis>,
    /// … and before this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<UnixMillis>,
    /// Only consultations the caller held (created).
    pub consultations_only: bool,
    /// Most rows to return (0 or more than [`crate::limits::MAX_PAST_PAGE`]: that many).
    pub limit: u32,
}

/// A past meeting in the caller's list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PastMeeting {
    pub meeting: MeetingInfo,
    /// The caller created it (for a consultation: held it, and may read and write its record).
    pub held: bool,
    /// When the consultation's notes were written (held consultations only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes_written_at: Option<UnixMillis>,
}

/// A consultation's notes as first written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ConsultationNotes {
    pub text: String,
    pub author_name: String,
    pub written_at: UnixMillis,
}

/// An amendment to a consultation's notes: appended, never changed or removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ConsultationAmendment {
    /// 1, 2, … in the order they were made.
    pub seq: u32,
    pub text: String,
    pub author_name: String,
    pub at: UnixMillis,
}

/// A consultation as kept on the relay for the staff member who held it (on
/// every device they enrolled): the meeting (title, patient reference, start
/// and end), its duration, the notes and every amendment in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ConsultationRecord {
    pub meeting: MeetingInfo,
    /// End minus start, when both are known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<ConsultationNotes>,
    #[serde(default)]
    pub amendments: Vec<ConsultationAmendment>,
}

/// Identifies a stored attachment (chosen by the relay).
pub type AttachmentId = Uuid;

/// A file stored on the relay with a meeting's chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct AttachmentInfo {
    pub id: AttachmentId,
    pub meeting_id: MeetingId,
    /// The name the uploader gave (user text: never logged).
    pub name: String,
    pub size: u64,
    /// The type the relay found in the content (e.g. `application/pdf`).
    pub mime: String,
    /// SHA-256 of the content, lower-case hex.
    pub sha256: String,
    /// Readable by enrolled staff only.
    pub staff_only: bool,
    pub uploader: ParticipantId,
    pub created_at: UnixMillis,
}

/// Identifies a published track within a meeting (chosen by the relay).
pub type TrackId = Uuid;
/// Identifies a media flow on one QUIC connection: the prefix of every datagram
/// (see [`crate::datagram`]). Chosen by the relay, unique per connection.
pub type FlowId = u64;

/// What a track carries. Audio is never dropped by the relay; screen is video
/// from a screen and only allowed when the meeting allows screen share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum TrackKind {
    Audio,
    Video,
    Screen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Codec {
    /// RFC 7587, 48 kHz, payload type 111.
    Opus,
    /// RFC 6184 constrained baseline, packetization mode 1, payload type 102.
    H264,
}

/// One encoding of a video track (simulcast sends several, lowest first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct EncodingSpec {
    pub ssrc: u32,
    pub width: u32,
    pub height: u32,
    pub max_bitrate_bps: u32,
    /// Number of temporal layers (1 = none).
    pub temporal_layers: u8,
}

/// What a publisher announces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TrackSpec {
    pub kind: TrackKind,
    pub codec: Codec,
    /// Audio: one entry (width/height 0). Video: one per simulcast encoding, lowest first.
    pub encodings: Vec<EncodingSpec>,
}

impl TrackSpec {
    /// A track of one encoding whose size and bitrate the publisher does not
    /// announce (a browser's track): Opus for audio, H.264 for video.
    pub fn single(kind: TrackKind, ssrc: u32) -> TrackSpec {
        let codec = if kind == TrackKind::Audio { Codec::Opus } else { Codec::H264 };
        let encoding = EncodingSpec { ssrc, width: 0, height: 0, max_bitrate_bps: 0, temporal_layers: 1 };
        TrackSpec { kind, codec, encodings: vec![encoding] }
    }
}

/// A published track as other participants see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TrackInfo {
    pub track_id: TrackId,
    pub participant_id: ParticipantId,
    #[serde(flatten)]
    pub spec: TrackSpec,
}

// ---------------------------------------------------------------------------
// Decoding with precise errors

/// Why a client frame could not be turned into a request. Carries the request
/// id when it could be read, so the error reply can name it.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeError {
    pub id: Option<RequestId>,
    pub error: ErrorBody,
}

impl ClientMessage {
    /// Parses one frame body. Unknown message types give `unknown_message`,
    /// anything else unreadable gives `malformed`; both keep the request id if present.
    pub fn decode(body: &[u8]) -> Result<ClientMessage, DecodeError> {
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| DecodeError {
            id: None,
            error: ErrorBody::new(ErrorCode::Malformed, "message is not valid JSON"),
        })?;
        let id = value.get("id").and_then(|v| v.as_u64());
        let ty = value.get("type").and_then(|v| v.as_str()).map(str::to_owned);
        serde_json::from_value::<ClientMessage>(value).map_err(|e| {
            let unknown = e.to_string().starts_with("unknown variant");
            let error = match (unknown, ty) {
                (true, Some(t)) => ErrorBody::new(
                    ErrorCode::UnknownMessage,
                    format!("unknown message type `{}`", t.chars().take(40).collect::<String>()),
                ),
                _ => {
                    ErrorBody::new(ErrorCode::Malformed, format!("malformed message: {}", without_input(&e)))
                }
            };
            DecodeError { id, error }
        })
    }
}

/// serde's message without the input it quotes (`invalid type: string "…"`,
/// `unknown field `…``): what was wrong and what was expected, never the
/// sender's text, which may be anything up to a frame long.
fn without_input(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    if msg.starts_with("missing field") {
        return msg.chars().take(100).collect();
    }
    let what = msg.split([':', '`']).next().unwrap_or("").trim_end_matches([' ', ',']);
    let expected = msg.rsplit_once(", expected ").map(|(_, x)| x.chars().take(100).collect::<String>());
    match expected {
        Some(x) => format!("{what}, expected {x}"),
        None => what.to_string(),
    }
}

impl ServerMessage {
    pub fn decode(body: &[u8]) -> Result<ServerMessage, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_requests_are_described_without_quoting_the_input() {
        let secret = "Patient Jane Doe, 12 Elm Street";
        for body in [
            format!(r#"{{"id":3,"type":"send_chat","client_msg_id":"{secret}","text":"x"}}"#),
            format!(r#"{{"id":3,"type":"set_locked","locked":"{secret}"}}"#),
            format!(r#"{{"id":3,"type":"mute","participant_id":"{secret}"}}"#),
            format!(r#"{{"id":3,"type":"update_media","media":{{"audio":"{secret}"}}}}"#),
            format!(r#"{{"id":3,"type":"join","access_code":1,"display_name":"{secret}"}}"#),
        ] {
            let err = ClientMessage::decode(body.as_bytes()).unwrap_err();
            assert_eq!((err.id, err.error.code), (Some(3), ErrorCode::Malformed), "{body}");
            assert!(!err.error.message.contains("Jane"), "{}", err.error.message);
            assert!(err.error.message.len() < 160, "{}", err.error.message);
        }
        let err = ClientMessage::decode(br#"{"id":4,"type":"send_chat"}"#).unwrap_err();
        assert!(err.error.message.contains("missing field `client_msg_id`"), "{}", err.error.message);
        let err = ClientMessage::decode(br#"{"id":4,"type":"set_locked","locked":"yes"}"#).unwrap_err();
        assert_eq!(err.error.message, "malformed message: invalid type, expected a boolean");
    }

    fn roundtrip_client(req: Request) {
        let msg = ClientMessage { id: 7, request: req };
        let bytes = serde_json::to_vec(&msg).unwrap();
        assert_eq!(ClientMessage::decode(&bytes).unwrap(), msg);
    }

    #[test]
    fn requests_roundtrip() {
        roundtrip_client(Request::Hello {
            min_version: 1,
            max_version: 1,
            client: "t".into(),
            device_credential: None,
        });
        roundtrip_client(Request::Join {
            access_code: "ABCD-EFGH".into(),
            display_name: "Ann".into(),
            media: MediaState::default(),
        });
        roundtrip_client(Request::SendChat {
            client_msg_id: Uuid::now_v7(),
            text: "hi".into(),
            staff_only: true,
            attachments: vec![Uuid::now_v7()],
        });
        roundtrip_client(Request::Leave);
        roundtrip_client(Request::ChatHistory {
            meeting_id: None,
            since_seq: 3,
            notes_since_seq: 0,
            limit: 100,
        });
    }

    #[test]
    fn wire_shape_is_flat_json() {
        let msg = ClientMessage { id: 1, request: Request::SetLocked { locked: true } };
        assert_eq!(serde_json::to_string(&msg).unwrap(), r#"{"id":1,"type":"set_locked","locked":true}"#);
        let reply = ServerMessage::Reply { id: 1, response: Response::Ok };
        assert_eq!(
            serde_json::to_string(&reply).unwrap(),
            r#"{"kind":"reply","id":1,"response":{"type":"ok"}}"#
        );
    }

    #[test]
    fn decode_errors_keep_the_id() {
        let e = ClientMessage::decode(br#"{"id":5,"type":"fly_to_moon"}"#).unwrap_err();
        assert_eq!(e.id, Some(5));
        assert_eq!(e.error.code, ErrorCode::UnknownMessage);

        let e = ClientMessage::decode(br#"{"id":6,"type":"set_locked","locked":"yes"}"#).unwrap_err();
        assert_eq!(e.id, Some(6));
        assert_eq!(e.error.code, ErrorCode::Malformed);

        let e = ClientMessage::decode(b"\xff\x00garbage").unwrap_err();
        assert_eq!(e.id, None);
        assert_eq!(e.error.code, ErrorCode::Malformed);
    }

    #[test]
    fn server_messages_roundtrip() {
        let ev = ServerMessage::Event {
            event: Event::Typing(Typing { participant_id: Uuid::now_v7(), typing: true }),
        };
        let bytes = serde_json::to_vec(&ev).unwrap();
        assert_eq!(ServerMessage::decode(&bytes).unwrap(), ev);
        let err = ServerMessage::Error {
            id: Some(3),
            error: ErrorBody::new(ErrorCode::Forbidden, "no").retry_after(5),
        };
        let bytes = serde_json::to_vec(&err).unwrap();
        assert_eq!(ServerMessage::decode(&bytes).unwrap(), err);
    }

    /// Sample JSON of the nested objects in the event samples below.
    const PERSON: &str = r#"{"id":"00000000-0000-0000-0000-000000000001","display_name":"Ann","role":"guest","verified_staff":false,"media":{"audio":true,"video":false,"screen":false},"audio_locked":false,"joined_at":5,"connected":true}"#;
    const MEETING: &str = r#"{"id":"00000000-0000-0000-0000-000000000004","title":"Visit","kind":"video","status":"active","host_name":"Dr B","locked":true,"settings":{"allow_screen_share":true,"allow_recording":false,"mute_on_join":false,"allow_self_unmute":true,"waiting_room":true,"max_participants":8,"chat_enabled":true},"created_at":1,"started_at":2}"#;
    const TRACK: &str = r#"{"track_id":"00000000-0000-0000-0000-000000000003","participant_id":"00000000-0000-0000-0000-000000000001","kind":"video","codec":"h264","encodings":[{"ssrc":7,"width":0,"height":0,"max_bitrate_bps":0,"temporal_layers":1}]}"#;
    const WAITING: &str =
        r#"{"participant_id":"00000000-0000-0000-0000-000000000001","display_name":"Ann","since":9}"#;

    /// The wire JSON of the events the client passes on (written down from the
    /// code before their payloads became structs shared with `ClientEvent`).
    #[test]
    fn event_json_is_stable() {
        let (p, t) = (Uuid::from_u128(1), Uuid::from_u128(3));
        let person: ParticipantInfo = serde_json::from_str(PERSON).unwrap();
        let meeting: MeetingInfo = serde_json::from_str(MEETING).unwrap();
        let track: TrackInfo = serde_json::from_str(TRACK).unwrap();
        let waiting: WaitingInfo = serde_json::from_str(WAITING).unwrap();
        let media = MediaState { audio: false, video: true, screen: false };
        let ids = r#""participant_id":"00000000-0000-0000-0000-000000000001""#;
        let tid = r#""track_id":"00000000-0000-0000-0000-000000000003""#;
        let cases = [
            (
                Event::ParticipantJoined(ParticipantJoined { participant: person }),
                format!(r#"{{"type":"participant_joined","participant":{PERSON}}}"#),
            ),
            (
                Event::ParticipantLeft(ParticipantLeft {
                    participant_id: p,
                    reason: LeaveReason::ConnectionLost,
                }),
                format!(r#"{{"type":"participant_left",{ids},"reason":"connection_lost"}}"#),
            ),
            (
                Event::MediaChanged(MediaChanged { participant_id: p, media, audio_locked: true }),
                format!(
                    r#"{{"type":"media_changed",{ids},"media":{{"audio":false,"video":true,"screen":false}},"audio_locked":true}}"#
                ),
            ),
            (
                Event::RoleChanged { participant_id: p, role: Role::Moderator },
                format!(r#"{{"type":"role_changed",{ids},"role":"moderator"}}"#),
            ),
            (
                Event::ConnectionChanged(ParticipantConnection { participant_id: p, connected: false }),
                format!(r#"{{"type":"connection_changed",{ids},"connected":false}}"#),
            ),
            (
                Event::WaitingRoom(WaitingRoom { waiting: vec![waiting] }),
                format!(r#"{{"type":"waiting_room","waiting":[{WAITING}]}}"#),
            ),
            (
                Event::MutedBy(MutedBy { by: p }),
                r#"{"type":"muted_by","by":"00000000-0000-0000-0000-000000000001"}"#.into(),
            ),
            (
                Event::MeetingUpdated(MeetingUpdated { meeting }),
                format!(r#"{{"type":"meeting_updated","meeting":{MEETING}}}"#),
            ),
            (
                Event::MeetingEnded(MeetingEnded { status: MeetingStatus::Completed }),
                r#"{"type":"meeting_ended","status":"completed"}"#.into(),
            ),
            (
                Event::Typing(Typing { participant_id: p, typing: true }),
                format!(r#"{{"type":"typing",{ids},"typing":true}}"#),
            ),
            (
                Event::TrackPublished(TrackPublished { track }),
                format!(r#"{{"type":"track_published","track":{TRACK}}}"#),
            ),
            (
                Event::TrackUnpublished(TrackUnpublished { track_id: t }),
                format!(r#"{{"type":"track_unpublished",{tid}}}"#),
            ),
            (
                Event::KeyframeRequest(KeyframeRequest { track_id: t }),
                format!(r#"{{"type":"keyframe_request",{tid}}}"#),
            ),
            (
                Event::RecordingChanged(RecordingChanged { recording: Some(RecordingInfo { by: p, since: 9 }) }),
                r#"{"type":"recording_changed","recording":{"by":"00000000-0000-0000-0000-000000000001","since":9}}"#
                    .into(),
            ),
            (
                Event::RecordingChanged(RecordingChanged { recording: None }),
                r#"{"type":"recording_changed","recording":null}"#.into(),
            ),
        ];
        for (event, json) in cases {
            assert_eq!(serde_json::to_string(&event).unwrap(), json);
            assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), event, "{json}");
        }
    }

    #[test]
    fn rights() {
        assert!(!Role::Guest.skips_waiting_room());
        assert!(Role::Staff.skips_waiting_room());
        assert!(Role::Moderator.can_moderate() && !Role::Moderator.is_host());
        assert!(!Role::Staff.can_moderate());
    }
}
