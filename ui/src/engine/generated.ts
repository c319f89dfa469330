// Generated from the Rust types by src-tauri/src/contract.rs: do not edit.
// Update: UPDATE_CONTRACT=1 cargo test -p clinicmeet-app --lib contract

/**
 * Events of the app around the engine: local devices, pictures and levels,
 * invite links.
 */
export type AppEvent = { "event": "video", participant_id: string, available: boolean, } | { "event": "screen", participant_id: string, available: boolean, } | { "event": "audio_level", participant_id: string, level: number, } | { "event": "media_error", message: string, } | { "event": "quality", quality: ConnectionQuality, rtt_ms: number, loss: number, } | { "event": "invite" } & Invite;

/**
 * A file stored on the relay with a meeting's chat.
 */
export type AttachmentInfo = { id: string, meeting_id: string, 
/**
 * The name the uploader gave (user text: never logged).
 */
name: string, size: number, 
/**
 * The type the relay found in the content (e.g. `application/pdf`).
 */
mime: string, 
/**
 * SHA-256 of the content, lower-case hex.
 */
sha256: string, 
/**
 * Readable by enrolled staff only.
 */
staff_only: boolean, uploader: string, created_at: number, };

/**
 * A chat message or staff-only note as stored by the relay.
 * Chat messages and notes are numbered in two separate sequences, so guests
 * see no gaps and cannot count notes.
 */
export type ChatMessage = { meeting_id: string, seq: number, client_msg_id: string, sender_id: string, sender_name: string, sender_verified: boolean, text: string, staff_only: boolean, sent_at: number, 
/**
 * A line the relay wrote itself (its text is empty; the sender fields name
 * the participant it is about). Absent for what people wrote.
 */
system?: SystemLine | null, 
/**
 * Files attached to the message (download with [`Request::DownloadTicket`]).
 */
attachments?: Array<AttachmentInfo>, };

/**
 * An event for the application.
 */
export type ClientEvent = { "event": "connection", state: ConnectionState, attempt?: number, retry_in_ms?: number, reason?: string, } | { "event": "joined" } & Entered | { "event": "waiting", participant_id: string, meeting: MeetingInfo, resumed: boolean, } | { "event": "admitted" } & Entered | { "event": "denied" } | { "event": "removed" } | { "event": "participant_joined" } & ParticipantJoined | { "event": "participant_left" } & ParticipantLeft | { "event": "media_changed" } & MediaChanged | { "event": "role_changed", participant_id: string, role: Role, 
/**
 * The change concerns this client.
 */
you: boolean, } | { "event": "participant_connection" } & ParticipantConnection | { "event": "waiting_room" } & WaitingRoom | { "event": "muted" } & MutedBy | { "event": "meeting_updated" } & MeetingUpdated | { "event": "meeting_ended" } & MeetingEnded | { "event": "chat", 
/**
 * Sent by this client.
 */
own: boolean, meeting_id: string, seq: number, client_msg_id: string, sender_id: string, sender_name: string, sender_verified: boolean, text: string, staff_only: boolean, sent_at: number, 
/**
 * A line the relay wrote itself (its text is empty; the sender fields name
 * the participant it is about). Absent for what people wrote.
 */
system?: SystemLine | null, 
/**
 * Files attached to the message (download with [`Request::DownloadTicket`]).
 */
attachments?: Array<AttachmentInfo>, } | { "event": "chat_status", client_msg_id: string, status: OutboxState, 
/**
 * On `sending` when queued or queued again by hand: what was sent, so an
 * application can show it at once. Absent on automatic retries.
 */
pending?: PendingChat, seq?: number, error?: string, 
/**
 * Rate-limited: retried automatically after this long.
 */
retry_in_ms?: number, } | { "event": "typing" } & Typing | { "event": "chat_synced", chat_seq: number, notes_seq: number, 
/**
 * Messages fetched in this resync (new or not).
 */
fetched: number, } | { "event": "track_published" } & TrackPublished | { "event": "track_unpublished" } & TrackUnpublished | { "event": "keyframe_request" } & KeyframeRequest | { "event": "left" } | { "event": "error", code: string, message: string, } | { "event": "recording_changed" } & RecordingChanged;

export type Codec = "opus" | "h264";

/**
 * How well media gets through, from round-trip time and loss.
 */
export type ConnectionQuality = "good" | "fair" | "poor";

/**
 * State of the connection to the relay.
 */
export type ConnectionState = "connecting" | "connected" | "reconnecting" | "disconnected";

/**
 * An amendment to a consultation's notes: appended, never changed or removed.
 */
export type ConsultationAmendment = { 
/**
 * 1, 2, … in the order they were made.
 */
seq: number, text: string, author_name: string, at: number, };

/**
 * A consultation's notes as first written.
 */
export type ConsultationNotes = { text: string, author_name: string, written_at: number, };

/**
 * A consultation as kept on the relay for the staff member who held it (on
 * every device they enrolled): the meeting (title, patient reference, start
 * and end), its duration, the notes and every amendment in order.
 */
export type ConsultationRecord = { meeting: MeetingInfo, 
/**
 * End minus start, when both are known.
 */
duration_secs?: number | null, notes?: ConsultationNotes | null, amendments: Array<ConsultationAmendment>, };

/**
 * One encoding of a video track (simulcast sends several, lowest first).
 */
export type EncodingSpec = { ssrc: number, width: number, height: number, max_bitrate_bps: number, 
/**
 * Number of temporal layers (1 = none).
 */
temporal_layers: number, };

/**
 * Everything the engine tells the UI.
 */
export type EngineEvent = ClientEvent | AppEvent;

/**
 * What a participant learns on entering a meeting.
 */
export type Entered = { meeting: MeetingInfo, you: ParticipantInfo, participants: Array<ParticipantInfo>, waiting: Array<WaitingInfo>, 
/**
 * Media tracks others publish now.
 */
tracks: Array<TrackInfo>, 
/**
 * Entered again through `resume` after a lost connection.
 */
resumed: boolean, 
/**
 * Someone records the call: show the indicator and a notice.
 */
recording?: RecordingInfo, };

/**
 * An error reply: a stable code, a human-readable message, and for rate
 * limits how long to wait before trying again.
 */
export type ErrorBody = { code: ErrorCode, message: string, retry_after_ms?: number | null, };

/**
 * A stable, machine-readable error code (`snake_case` on the wire).
 */
export type ErrorCode = "invalid_code" | "meeting_full" | "meeting_ended" | "meeting_locked" | "denied" | "forbidden" | "unauthenticated" | "rate_limited" | "too_large" | "malformed" | "unknown_message" | "invalid_state" | "upgrade_required" | "not_found" | "invalid_credential" | "resume_failed" | "server_busy" | "internal" | "storage_unavailable" | "meeting_cancelled" | "attachment_too_large" | "attachment_type_not_allowed" | "attachment_quota_exceeded" | "attachment_not_found" | "attachment_mismatch" | "unknown";

/**
 * An invite: the meeting code and, when the link names it, the relay.
 */
export type Invite = { 
/**
 * `ABCD-EFGH`.
 */
code: string | null, relay: RelayConfig | null, };

/**
 * The reply to the UI's `join` call: in the meeting, or in its waiting room.
 */
export type JoinOutcome = { "state": "joined", join: Entered, } | { "state": "waiting", participant_id: string, meeting: MeetingInfo, };

/**
 * What a participant learns on entering a meeting (join, admit or resume).
 */
export type JoinState = { meeting: MeetingInfo, you: ParticipantInfo, 
/**
 * Everyone in the meeting, including `you`.
 */
participants: Array<ParticipantInfo>, 
/**
 * People in the waiting room (filled for host and moderators only).
 */
waiting: Array<WaitingInfo>, 
/**
 * Present this on [`Request::Resume`] after a lost connection.
 */
resume_token: string, 
/**
 * Highest chat sequence number so far (fetch history up to it).
 */
chat_seq: number, 
/**
 * Highest staff-note sequence number so far (0 for guests).
 */
notes_seq: number, 
/**
 * Media tracks other participants publish now (subscribe to receive them).
 */
tracks: Array<TrackInfo>, 
/**
 * Someone records the call (show the indicator and a notice on entering).
 */
recording?: RecordingInfo | null, };

/**
 * The relay wants a keyframe of one of your video tracks (optional; PLI on the
 * flow is the main path).
 */
export type KeyframeRequest = { track_id: string, };

/**
 * Why a participant is no longer in the meeting.
 */
export type LeaveReason = "left" | "removed" | "connection_lost" | "meeting_ended";

/**
 * A participant's announced (or host-muted) media.
 */
export type MediaChanged = { participant_id: string, media: MediaState, 
/**
 * See [`ParticipantInfo::audio_locked`].
 */
audio_locked: boolean, };

/**
 * A participant's media as they announce it (or as a host mute forces it).
 */
export type MediaState = { audio: boolean, video: boolean, screen: boolean, };

/**
 * The meeting is over for everyone; the relay closes the connection after this.
 */
export type MeetingEnded = { status: MeetingStatus, };

/**
 * A meeting as participants see it.
 */
export type MeetingInfo = { id: string, title: string, description?: string | null, kind: MeetingKind, status: MeetingStatus, host_name: string, locked: boolean, settings: MeetingSettings, 
/**
 * Staff only; omitted for guests.
 */
patient_reference?: string | null, schedule?: Schedule | null, created_at: number, started_at?: number | null, ended_at?: number | null, };

export type MeetingKind = "video" | "audio_only" | "consultation";

export type MeetingSettings = { allow_screen_share: boolean, allow_recording: boolean, mute_on_join: boolean, 
/**
 * Participants may turn their microphone back on after a moderator (or
 * `mute_on_join`) muted it. Off: only a moderator's [`Request::AllowUnmute`]
 * lets them. Moderators may always unmute themselves.
 */
allow_self_unmute: boolean, waiting_room: boolean, max_participants: number, chat_enabled: boolean, };

/**
 * What a staff member fills in to create a meeting.
 */
export type MeetingSpec = { title: string, description?: string | null, kind: MeetingKind, 
/**
 * Consultations: the clinic's reference for the patient (never a name in logs).
 */
patient_reference?: string | null, schedule?: Schedule | null, settings: MeetingSettings, };

/**
 * Scheduled → Active → Ended | Cancelled; consultations end as Completed.
 */
export type MeetingStatus = "scheduled" | "active" | "ended" | "cancelled" | "completed";

/**
 * A dashboard row.
 */
export type MeetingSummary = { meeting: MeetingInfo, participant_count: number, waiting_count: number, };

/**
 * Title, status, lock or settings changed.
 */
export type MeetingUpdated = { meeting: MeetingInfo, };

/**
 * A moderator muted your microphone.
 */
export type MutedBy = { by: string, };

/**
 * State of a message in the outbox.
 */
export type OutboxState = "sending" | "sent" | "failed";

/**
 * A participant's connection dropped (still in the meeting during the resume
 * grace) or came back.
 */
export type ParticipantConnection = { participant_id: string, connected: boolean, };

export type ParticipantInfo = { id: string, display_name: string, role: Role, 
/**
 * Enrolled staff (display names of staff carry a verified mark).
 */
verified_staff: boolean, media: MediaState, 
/**
 * A moderator muted this participant and the meeting does not let participants
 * unmute themselves: the relay refuses their microphone (and forwards none of
 * its audio) until a moderator allows it.
 */
audio_locked: boolean, joined_at: number, connected: boolean, };

/**
 * A participant entered the meeting.
 */
export type ParticipantJoined = { participant: ParticipantInfo, };

/**
 * A participant is no longer in the meeting.
 */
export type ParticipantLeft = { participant_id: string, reason: LeaveReason, };

/**
 * Which past meetings [`Request::ListPastMeetings`] returns. Every field is optional.
 */
export type PastFilter = { 
/**
 * Words the title contains (case-insensitive, as typed; empty = any title).
 */
query: string | null, 
/**
 * Meetings that started (or were created, if they never started) at or after this time.
 */
from: number | null, 
/**
 * … and before this time.
 */
to: number | null, 
/**
 * Only consultations the caller held (created).
 */
consultations_only: boolean, 
/**
 * Most rows to return (0 or more than [`crate::limits::MAX_PAST_PAGE`]: that many).
 */
limit: number, };

/**
 * A past meeting in the caller's list.
 */
export type PastMeeting = { meeting: MeetingInfo, 
/**
 * The caller created it (for a consultation: held it, and may read and write its record).
 */
held: boolean, 
/**
 * When the consultation's notes were written (held consultations only).
 */
notes_written_at?: number | null, };

/**
 * An own message as queued: what an application shows while it is `sending`.
 */
export type PendingChat = { text: string, staff_only: boolean, 
/**
 * When it was written, milliseconds since the Unix epoch (this device's clock).
 */
created_at: number, };

/**
 * A recording started or stopped (sent to everyone in the meeting, the recorder too).
 */
export type RecordingChanged = { 
/**
 * `None`: nobody records any more.
 */
recording: RecordingInfo | null, };

/**
 * Who records the call on their device, and since when.
 */
export type RecordingInfo = { by: string, since: number, };

/**
 * A relay as the UI knows it (`RelayConfig` in `ui/src/engine/engine.ts`).
 */
export type RelayConfig = { 
/**
 * `host:port`.
 */
address: string, 
/**
 * `sha256/<base64>` (hex accepted on input).
 */
pin: string, };

/**
 * Meeting roles, from most to least rights. See the rights table in `docs/ARCHITECTURE.md`.
 */
export type Role = "host" | "moderator" | "staff" | "guest";

/**
 * An optional schedule: the start in UTC plus the creator's IANA time-zone name.
 */
export type Schedule = { start: number, time_zone: string, };

export type StaffIdentity = { staff_id: string, name: string, };

/**
 * What a relay-written chat line says, typed so each client words (and
 * translates) it. Stored and numbered with the chat, kept as long as the chat,
 * seen by everyone who sees the chat.
 */
export type SystemLine = "joined" | "left" | "admitted" | "consultation_started" | "consultation_ended" | "recording_started" | "recording_stopped";

/**
 * A published track as other participants see it.
 */
export type TrackInfo = { track_id: string, participant_id: string, kind: TrackKind, codec: Codec, 
/**
 * Audio: one entry (width/height 0). Video: one per simulcast encoding, lowest first.
 */
encodings: Array<EncodingSpec>, };

/**
 * What a track carries. Audio is never dropped by the relay; screen is video
 * from a screen and only allowed when the meeting allows screen share.
 */
export type TrackKind = "audio" | "video" | "screen";

/**
 * Another participant published a track (subscribe to receive it).
 */
export type TrackPublished = { track: TrackInfo, };

/**
 * A track is gone (unpublished, or its publisher left).
 */
export type TrackUnpublished = { track_id: string, };

/**
 * A participant started or stopped typing (not stored).
 */
export type Typing = { participant_id: string, typing: boolean, };

export type WaitingInfo = { participant_id: string, display_name: string, since: number, };

/**
 * The waiting room changed (sent to host and moderators): the whole list.
 */
export type WaitingRoom = { waiting: Array<WaitingInfo>, };

/**
 * Something that happened, pushed to the participants it concerns. Most
 * payloads are structs of their own, which the client's `ClientEvent` passes
 * on as they are (a newtype variant of an internally tagged enum serializes
 * like a struct variant: `{"type":"typing","participant_id":..,"typing":true}`).
 */
export type WireEvent = { "type": "participant_joined" } & ParticipantJoined | { "type": "participant_left" } & ParticipantLeft | { "type": "media_changed" } & MediaChanged | { "type": "role_changed", participant_id: string, role: Role, } | { "type": "connection_changed" } & ParticipantConnection | { "type": "waiting_room" } & WaitingRoom | { "type": "admitted" } & JoinState | { "type": "denied" } | { "type": "removed" } | { "type": "muted_by" } & MutedBy | { "type": "meeting_updated" } & MeetingUpdated | { "type": "meeting_ended" } & MeetingEnded | { "type": "chat", message: ChatMessage, } | { "type": "typing" } & Typing | { "type": "track_published" } & TrackPublished | { "type": "track_unpublished" } & TrackUnpublished | { "type": "keyframe_request" } & KeyframeRequest | { "type": "recording_changed" } & RecordingChanged;
