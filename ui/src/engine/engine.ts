// The interface every screen talks to. Three implementations:
//  - `DemoEngine` (demo.ts): in memory, a simulated relay, runs in a plain browser;
//  - `TauriEngine` (tauri.ts): commands into the Rust shell over `shared/client`, events/frames back;
//  - `BrowserEngine` (browser.ts): a guest in a plain browser (the relay's guest page),
//    WebSocket signaling + getUserMedia + RTCPeerConnection; video as MediaStreams.
// The UI never talks to the relay or to devices directly.

import { describeError } from "./types";
import type {
  ChatMessage,
  ErrorBody,
  ErrorCode,
  MediaState,
  MeetingId,
  MeetingInfo,
  MeetingSpec,
  MeetingStatus,
  MeetingSummary,
  ParticipantId,
  PastFilter,
  PastMeeting,
  RelayConsultationRecord,
  StaffIdentity,
  UnixMillis,
  Uuid,
} from "./types";
import type { EngineEvent, JoinOutcome, RelayConfig } from "./generated";

// The events and the join reply are Rust types (`src-tauri/src/contract.rs`), generated
// into `generated.ts`: every engine produces exactly these shapes.
export type {
  ConnectionQuality,
  ConnectionState,
  EngineEvent,
  Entered,
  JoinOutcome,
  OutboxState as ChatSendStatus,
  RelayConfig,
} from "./generated";

export interface HelloInfo {
  server: string;
  version: number;
  /** Present when this device is enrolled staff. */
  staff: StaffIdentity | null;
}

/** Errors raised by the engine itself, next to the relay's `ErrorCode`s. */
export type LocalErrorCode =
  /** The relay presented a key whose hash is not the pinned one. Never accepted. */
  | "pin_mismatch"
  /** No answer from the address (DNS, refused, timeout). */
  | "unreachable"
  /** Not connected to a relay (or not in a meeting) for this call. */
  | "not_connected"
  /** The requested camera/microphone/speaker does not exist. */
  | "no_device"
  /** Input rejected before sending (bad access code, empty name…). */
  | "invalid_input";

export class EngineError extends Error {
  readonly code: ErrorCode | LocalErrorCode;
  readonly retryAfterMs: number | undefined;
  /** For `pin_mismatch`: the hash the relay actually presented. */
  readonly presentedPin: string | undefined;

  constructor(
    code: ErrorCode | LocalErrorCode,
    message: string,
    extra: { retryAfterMs?: number; presentedPin?: string } = {},
  ) {
    super(message);
    this.name = "EngineError";
    this.code = code;
    this.retryAfterMs = extra.retryAfterMs;
    this.presentedPin = extra.presentedPin;
  }

  static fromBody(body: ErrorBody): EngineError {
    return new EngineError(body.code, body.message, body.retry_after_ms == null ? {} : { retryAfterMs: body.retry_after_ms });
  }
}

export interface JoinOptions {
  camera: boolean;
  mic: boolean;
  /** Join without any media: no capture, no decoding, chat and participant list only. */
  chatOnly: boolean;
}

export interface CreatedMeeting {
  meeting: MeetingInfo;
  /** Shown as `ABCD-EFGH`. */
  access_code: string;
  /** The invite link's secret (26 characters), when the relay issues one. */
  invite_secret?: string | null;
}

/** A dashboard row: the relay's summary plus the code if this device knows it (creator). */
export interface DashboardMeeting extends MeetingSummary {
  access_code: string | null;
  /** The invite link's secret, known when this device created or re-keyed the meeting
   * (the relay keeps only a hash of it). */
  invite_secret: string | null;
}

/** A meeting's new code and invite secret after its host re-keyed it. */
export interface Rekeyed {
  /** Shown as `ABCD-EFGH`. */
  access_code: string;
  invite_secret: string;
}

/** A consultation as kept in the local store. */
export interface ConsultationRecord {
  meeting_id: MeetingId;
  title: string;
  patient_reference: string | null;
  access_code: string | null;
  status: MeetingStatus;
  created_at: UnixMillis;
  started_at: UnixMillis | null;
  ended_at: UnixMillis | null;
  duration_secs: number | null;
  notes: string;
}

/** A meeting of the clinic view. */
export interface ClinicMeeting extends MeetingSummary {
  /** This device created it (so it may cancel it; the relay checks). */
  created_here: boolean;
}

/** A meeting as kept in the local store (no codes or tokens). */
export interface LocalMeeting {
  meeting_id: MeetingId;
  title: string;
  kind: string;
  status: string;
  /** This device's role in it, when known. */
  role: string | null;
  patient_reference: string | null;
  last_seen_at: UnixMillis;
}

export interface ConsultationEnded {
  started_at: UnixMillis;
  ended_at: UnixMillis;
  duration_secs: number;
}

export type DeviceKind = "camera" | "microphone" | "speaker";

export interface DeviceInfo {
  id: string;
  label: string;
  kind: DeviceKind;
  is_default: boolean;
}

export interface DeviceList {
  cameras: DeviceInfo[];
  microphones: DeviceInfo[];
  speakers: DeviceInfo[];
  /** The ids currently selected (null: none available / none chosen). */
  selected: Record<DeviceKind, string | null>;
}

/** One raw video frame: I420 planar, Y (w×h) then U and V ((w/2)×(h/2) each, rounded up). */
export interface VideoFrame {
  participantId: ParticipantId | typeof LOCAL_PARTICIPANT;
  width: number;
  height: number;
  data: Uint8Array;
}

/** The frame id of a participant's screen share. */
export function screenFrameId(participantId: ParticipantId): string {
  return `screen:${participantId}`;
}

/** Participant id used for this device's own camera (preview and picture-in-picture). */
export const LOCAL_PARTICIPANT = "local" as const;

export type EngineListener = (event: EngineEvent) => void;
export type FrameListener = (frame: VideoFrame) => void;
export type Unsubscribe = () => void;

export interface Engine {
  // --- relay ---------------------------------------------------------------
  /** The relay this device was set up with, if any (from the local store). */
  savedRelay(): Promise<RelayConfig | null>;
  /** Connects (QUIC, TLS with the pinned key) and says hello. Rejects with
   * `pin_mismatch` if the relay's key hash differs; nothing is saved then. */
  connect(relay: RelayConfig): Promise<HelloInfo>;
  disconnect(): Promise<void>;
  /** Staff: exchange the one-time enrollment code for a device credential (stored by the engine). */
  enroll(code: string, deviceName: string): Promise<StaffIdentity>;

  // --- meetings ------------------------------------------------------------
  createMeeting(spec: MeetingSpec): Promise<CreatedMeeting>;
  /** Staff dashboard: active and scheduled meetings. */
  listMeetings(): Promise<DashboardMeeting[]>;
  join(accessCode: string, displayName: string, options: JoinOptions): Promise<JoinOutcome>;
  leave(): Promise<void>;

  // --- moderation ----------------------------------------------------------
  admit(participantId: ParticipantId): Promise<void>;
  deny(participantId: ParticipantId): Promise<void>;
  mute(participantId: ParticipantId): Promise<void>;
  /** Lets a participant whose microphone a moderator locked turn it on again (once). */
  allowUnmute(participantId: ParticipantId): Promise<void>;
  remove(participantId: ParticipantId): Promise<void>;
  promote(participantId: ParticipantId): Promise<void>;
  demote(participantId: ParticipantId): Promise<void>;
  setLocked(locked: boolean): Promise<void>;
  /** Whether participants may unmute themselves after a moderator muted them. */
  setSelfUnmute(allowed: boolean): Promise<void>;
  /** Host: a new code and invite link for the meeting we are in. Everyone already in
   * stays; the old code and link stop working at once. */
  rekeyMeeting(): Promise<Rekeyed>;
  endMeeting(): Promise<void>;

  // --- consultations -------------------------------------------------------
  startConsultation(): Promise<void>;
  /** Ends the consultation for everyone and stores the notes locally. */
  endConsultation(notes: string): Promise<ConsultationEnded>;
  /** Writes a consultation's notes: on this device and, once, in the relay's record
   * (later changes are amendments). Returns the relay's record. */
  saveConsultationNotes(meetingId: MeetingId, notes: string): Promise<RelayConsultationRecord>;
  consultations(): Promise<ConsultationRecord[]>;
  /** The relay's record of a consultation this staff member held: times, notes, amendments. */
  consultationRecord(meetingId: MeetingId): Promise<RelayConsultationRecord>;
  /** Appends an amendment to the notes on the relay (never changed or removed); returns the record. */
  amendConsultation(meetingId: MeetingId, text: string): Promise<RelayConsultationRecord>;

  // --- past meetings ---------------------------------------------------------
  /** The meetings this device took part in (its store), newest first. */
  localMeetings(): Promise<LocalMeeting[]>;
  /** Staff: the relay's meetings that are over which they created or took part in. */
  pastMeetings(filter: PastFilter): Promise<PastMeeting[]>;

  // --- clinic view -----------------------------------------------------------
  /** Staff: every active and scheduled meeting of the clinic. */
  clinicMeetings(): Promise<ClinicMeeting[]>;
  /** Staff: join a clinic meeting by its id, without its code (anyone but its creator knocks). */
  joinAsStaff(meetingId: MeetingId, displayName: string, options: JoinOptions): Promise<JoinOutcome>;
  /** Its creator: cancel a meeting that has not started. */
  cancelMeeting(meetingId: MeetingId): Promise<void>;
  /** Its creator: saves a scheduled meeting's `.ics` invitation (with the invite link) into the
   * Downloads folder; returns the file's path. */
  saveInvitation(meetingId: MeetingId): Promise<string>;

  // --- media ---------------------------------------------------------------
  /** Announces and applies one's own media (starts/stops capture, screen share). */
  updateMedia(media: MediaState): Promise<void>;
  listDevices(): Promise<DeviceList>;
  selectDevice(kind: DeviceKind, deviceId: string): Promise<void>;
  /** Device check: local camera frames (`local`) and mic levels until stopped. */
  startPreview(): Promise<void>;
  stopPreview(): Promise<void>;

  // --- chat ----------------------------------------------------------------
  /** Queues a message (outbox) and returns its client_msg_id; a `chat_status` event
   * with `sending` (carrying the text as `pending`) announces it on the event stream. */
  sendChat(text: string, staffOnly: boolean): Promise<Uuid>;
  /** Sends a failed message again with the same client_msg_id (idempotent on the relay). */
  retryChat(clientMsgId: Uuid): Promise<void>;
  typing(typing: boolean): Promise<void>;
  /** Stored history of a meeting (chat and, for staff, notes), in seq order. */
  chatHistory(meetingId: MeetingId): Promise<ChatMessage[]>;

  // --- events --------------------------------------------------------------
  subscribe(listener: EngineListener): Unsubscribe;
  /** Raw frames; only the newest frame per participant matters (latest wins). */
  subscribeFrames(listener: FrameListener): Unsubscribe;
  /** Engines whose video the web view decodes itself (the browser guest) hand each tile a
   * MediaStream for `participantId` (or `local`) instead of frames: tiles then show a
   * `<video>`. Valid while the last `video` event for that participant said `available`. */
  videoStream?(participantId: string): MediaStream | null;
  /** False when this engine cannot share the screen (the control is hidden); default true. */
  readonly canShareScreen?: boolean;
  /** Why others may not see or hear this device even though its devices work (e.g. a
   * browser without H.264), shown before joining; null when all is well. */
  mediaWarning?(): string | null;

  // --- desktop shell only (optional) -----------------------------------------
  /** The relay an invite link or the environment names, to pre-fill the first-run screen. */
  launchRelay?(): Promise<RelayConfig | null>;
  /** An invite link (`clinicmeet://join/CODE?relay=…&pin=…`) was opened while the app runs. */
  onInvite?(listener: (invite: { code: string | null; relay: RelayConfig | null }) => void): Unsubscribe;
  /** A tile of `participantId` (or `local`) is this many device pixels: engines that
   * scale video before handing it over send frames that fit it. */
  setVideoSize?(participantId: string, width: number, height: number): void;
}

/** Words for people for any error the engine throws. */
export function errorText(err: unknown): string {
  if (err instanceof EngineError) {
    switch (err.code) {
      case "pin_mismatch":
      case "unreachable":
      case "not_connected":
      case "no_device":
      case "invalid_input":
        return err.message;
      default:
        return describeError(err.code);
    }
  }
  return err instanceof Error ? err.message : String(err);
}
