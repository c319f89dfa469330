// Wire types mirrored from `shared/protocol/src/messages.rs` and `error.rs`.
// Field names are the JSON (snake_case) names so values pass through unchanged.

/** Milliseconds since the Unix epoch, UTC, from the relay's clock. */
export type UnixMillis = number;
/** UUIDs as strings on the wire. */
export type Uuid = string;
export type MeetingId = Uuid;
export type ParticipantId = Uuid;
export type StaffId = Uuid;

export type Role = "host" | "moderator" | "staff" | "guest";

/** Enter without passing through the waiting room. */
export function skipsWaitingRoom(role: Role): boolean {
  return role !== "guest";
}
/** Admit/deny, mute or remove others, lock. */
export function canModerate(role: Role): boolean {
  return role === "host" || role === "moderator";
}
/** End for all, promote/demote. */
export function isHost(role: Role): boolean {
  return role === "host";
}

export interface MediaState {
  audio: boolean;
  video: boolean;
  screen: boolean;
}

export interface ParticipantInfo {
  id: ParticipantId;
  display_name: string;
  role: Role;
  /** Enrolled staff (display names of staff carry a verified mark). */
  verified_staff: boolean;
  media: MediaState;
  joined_at: UnixMillis;
  connected: boolean;
}

export interface WaitingInfo {
  participant_id: ParticipantId;
  display_name: string;
  since: UnixMillis;
}

export interface StaffIdentity {
  staff_id: StaffId;
  name: string;
}

export type MeetingKind = "video" | "audio_only" | "consultation";

export type MeetingStatus = "scheduled" | "active" | "ended" | "cancelled" | "completed";

export function isOver(status: MeetingStatus): boolean {
  return status === "ended" || status === "cancelled" || status === "completed";
}

export interface MeetingSettings {
  allow_screen_share: boolean;
  allow_recording: boolean;
  mute_on_join: boolean;
  waiting_room: boolean;
  max_participants: number;
  chat_enabled: boolean;
}

export const DEFAULT_MAX_PARTICIPANTS = 50;
export const MAX_MAX_PARTICIPANTS = 500;
export const MAX_TITLE_CHARS = 200;
export const MAX_DESCRIPTION_CHARS = 4000;
export const MAX_PATIENT_REFERENCE_CHARS = 100;
export const MAX_DISPLAY_NAME_CHARS = 64;
export const MAX_CHAT_TEXT_BYTES = 8 * 1024;

export function defaultSettings(): MeetingSettings {
  return {
    allow_screen_share: true,
    allow_recording: false,
    mute_on_join: false,
    waiting_room: false,
    max_participants: DEFAULT_MAX_PARTICIPANTS,
    chat_enabled: true,
  };
}

/** An optional schedule: the start in UTC plus the creator's IANA time-zone name. */
export interface Schedule {
  start: UnixMillis;
  time_zone: string;
}

export interface MeetingSpec {
  title: string;
  description?: string;
  kind: MeetingKind;
  /** Consultations: the clinic's reference for the patient. */
  patient_reference?: string;
  schedule?: Schedule;
  settings: MeetingSettings;
}

export interface MeetingInfo {
  id: MeetingId;
  title: string;
  description?: string;
  kind: MeetingKind;
  status: MeetingStatus;
  host_name: string;
  locked: boolean;
  settings: MeetingSettings;
  /** Staff only; omitted for guests. */
  patient_reference?: string;
  schedule?: Schedule;
  created_at: UnixMillis;
  started_at?: UnixMillis;
  ended_at?: UnixMillis;
}

export interface MeetingSummary {
  meeting: MeetingInfo;
  participant_count: number;
  waiting_count: number;
}

/** A chat message or staff-only note as stored by the relay. Chat messages and
 * notes are numbered in two separate sequences. */
export interface ChatMessage {
  meeting_id: MeetingId;
  seq: number;
  client_msg_id: Uuid;
  sender_id: ParticipantId;
  sender_name: string;
  sender_verified: boolean;
  text: string;
  staff_only: boolean;
  sent_at: UnixMillis;
}

/** What a participant learns on entering a meeting (join, admit or resume). */
export interface JoinState {
  meeting: MeetingInfo;
  you: ParticipantInfo;
  participants: ParticipantInfo[];
  waiting: WaitingInfo[];
  resume_token: string;
  chat_seq: number;
  notes_seq: number;
}

export type LeaveReason = "left" | "removed" | "connection_lost" | "meeting_ended";

/** Relay events (`Event` in messages.rs). */
export type WireEvent =
  | { type: "participant_joined"; participant: ParticipantInfo }
  | { type: "participant_left"; participant_id: ParticipantId; reason: LeaveReason }
  | { type: "media_changed"; participant_id: ParticipantId; media: MediaState }
  | { type: "role_changed"; participant_id: ParticipantId; role: Role }
  | { type: "connection_changed"; participant_id: ParticipantId; connected: boolean }
  | { type: "waiting_room"; waiting: WaitingInfo[] }
  | ({ type: "admitted" } & JoinState)
  | { type: "denied" }
  | { type: "removed" }
  | { type: "muted_by"; by: ParticipantId }
  | { type: "meeting_updated"; meeting: MeetingInfo }
  | { type: "meeting_ended"; status: MeetingStatus }
  | { type: "chat"; message: ChatMessage }
  | { type: "typing"; participant_id: ParticipantId; typing: boolean };

/** Stable error codes (`ErrorCode` in error.rs). */
export type ErrorCode =
  | "invalid_code"
  | "meeting_full"
  | "meeting_ended"
  | "meeting_locked"
  | "denied"
  | "forbidden"
  | "unauthenticated"
  | "rate_limited"
  | "too_large"
  | "malformed"
  | "unknown_message"
  | "invalid_state"
  | "upgrade_required"
  | "not_found"
  | "invalid_credential"
  | "resume_failed"
  | "server_busy"
  | "internal"
  | "unknown";

export interface ErrorBody {
  code: ErrorCode;
  message: string;
  retry_after_ms?: number;
}

/** Words for people, per error code (never the raw message from the relay alone). */
export function describeError(code: ErrorCode): string {
  switch (code) {
    case "invalid_code":
      return "That code does not match a meeting. Check the code and try again.";
    case "meeting_full":
      return "This meeting is full.";
    case "meeting_ended":
      return "This meeting has ended.";
    case "meeting_locked":
      return "The host has locked this meeting.";
    case "denied":
      return "The host did not let you in.";
    case "forbidden":
      return "You are not allowed to do that in this meeting.";
    case "unauthenticated":
      return "This needs an enrolled staff device.";
    case "rate_limited":
      return "Too many attempts. Please wait a moment and try again.";
    case "too_large":
      return "That is too long.";
    case "malformed":
      return "Something in the request was not valid.";
    case "invalid_state":
      return "That is not possible right now.";
    case "upgrade_required":
      return "This app is too old for the clinic's server. Please update ClinicMeet.";
    case "not_found":
      return "Not found.";
    case "invalid_credential":
      return "The enrollment code or device credential is not valid.";
    case "resume_failed":
      return "Could not rejoin the meeting.";
    case "server_busy":
      return "The clinic's server is busy. Please try again shortly.";
    case "unknown_message":
    case "internal":
    case "unknown":
      return "Something went wrong. Please try again.";
  }
}
