// The relay's wire types: generated from `shared/protocol` (see `generated.ts`), plus
// the names, limits and words the UI keeps next to them.

export type {
  ChatMessage,
  ConsultationAmendment,
  ConsultationNotes,
  ConsultationRecord as RelayConsultationRecord,
  Entered,
  ErrorBody,
  ErrorCode,
  JoinState,
  LeaveReason,
  MediaState,
  MeetingInfo,
  MeetingKind,
  MeetingSettings,
  MeetingSpec,
  MeetingStatus,
  MeetingSummary,
  ParticipantInfo,
  PastFilter,
  PastMeeting,
  Role,
  Schedule,
  StaffIdentity,
  SystemLine,
  WaitingInfo,
  WireEvent,
} from "./generated";
import type { ErrorCode, MeetingSettings, MeetingStatus, Role } from "./generated";

/** Milliseconds since the Unix epoch, UTC, from the relay's clock. */
export type UnixMillis = number;
/** UUIDs as strings on the wire. */
export type Uuid = string;
export type MeetingId = Uuid;
export type ParticipantId = Uuid;
export type StaffId = Uuid;

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

export function isOver(status: MeetingStatus): boolean {
  return status === "ended" || status === "cancelled" || status === "completed";
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
    allow_self_unmute: true,
    waiting_room: false,
    max_participants: DEFAULT_MAX_PARTICIPANTS,
    chat_enabled: true,
  };
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
    case "storage_unavailable":
      return "The clinic's server cannot save right now. It will try again.";
    case "meeting_cancelled":
      return "This meeting was cancelled.";
    case "attachment_too_large":
      return "That file is larger than the clinic allows.";
    case "attachment_type_not_allowed":
      return "That kind of file cannot be shared here (PDF, pictures, text and office documents can).";
    case "attachment_quota_exceeded":
      return "This meeting has no room for more files.";
    case "attachment_not_found":
      return "That file is not available.";
    case "attachment_mismatch":
      return "The file changed while it was sent. Please try again.";
    case "unknown_message":
    case "internal":
    case "unknown":
      return "Something went wrong. Please try again.";
  }
}
