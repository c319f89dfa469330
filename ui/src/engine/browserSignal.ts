// The browser engine's pure logic, kept apart from WebSocket / WebRTC / DOM so it
// can be tested without a browser: reading the relay's JSON messages, turning relay
// events into the engine events the desktop engine produces (`ClientEvent` of
// `shared/client`, generated into `generated.ts`), the receive-slot table (`mid → participant`), codec
// choice, device-error words and level / quality figures.

import type { ConnectionQuality, JoinOutcome } from "./engine";
import { EngineError } from "./engine";
import type { ClientEvent } from "./generated";
import type { ChatMessage, Entered, ErrorBody, JoinState, MeetingInfo, ParticipantId, WireEvent } from "./types";

/** Receive slots per kind the page offers; must match the relay's `peer::SLOTS`. */
export const SLOTS = 6;

export type MediaKind = "audio" | "video";

/** WebRTC signaling the relay sends next to the control protocol (`{"webrtc":{…}}`). */
export type RtcSignal =
  | { type: "answer"; sdp: string }
  | { type: "slot"; mid: string; kind: MediaKind; participant_id: string; track_id: string | null }
  | { type: "unslot"; mid: string }
  | { type: "error"; message: string };

/** One message from the relay over the WebSocket. */
export type Incoming =
  | { kind: "reply"; id: number; response: Record<string, unknown> & { type: string } }
  | { kind: "error"; id: number | null; error: ErrorBody }
  | { kind: "event"; event: WireEvent }
  | { kind: "rtc"; signal: RtcSignal };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | null {
  return typeof v === "string" ? v : null;
}

function readRtc(w: Record<string, unknown>): RtcSignal | null {
  const answer = str(w.answer);
  if (answer !== null) return { type: "answer", sdp: answer };
  if (isObject(w.slot)) {
    const mid = str(w.slot.mid);
    const participant = str(w.slot.participant_id);
    const kind = w.slot.kind;
    if (mid === null || participant === null || (kind !== "audio" && kind !== "video")) return null;
    return { type: "slot", mid, kind, participant_id: participant, track_id: str(w.slot.track_id) ?? (typeof w.slot.track_id === "number" ? String(w.slot.track_id) : null) };
  }
  if (isObject(w.unslot)) {
    const mid = str(w.unslot.mid);
    return mid === null ? null : { type: "unslot", mid };
  }
  const error = str(w.error);
  if (error !== null) return { type: "error", message: error };
  return null;
}

/** Reads one WebSocket text message; null for anything unreadable (ignored, never thrown). */
export function parseIncoming(text: string): Incoming | null {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isObject(msg)) return null;
  if (isObject(msg.webrtc)) {
    const signal = readRtc(msg.webrtc);
    return signal ? { kind: "rtc", signal } : null;
  }
  switch (msg.kind) {
    case "reply":
      if (typeof msg.id !== "number" || !isObject(msg.response) || typeof msg.response.type !== "string") return null;
      return { kind: "reply", id: msg.id, response: msg.response as Record<string, unknown> & { type: string } };
    case "error": {
      if (!isObject(msg.error) || typeof msg.error.code !== "string") return null;
      const body: ErrorBody = {
        code: msg.error.code as ErrorBody["code"],
        message: str(msg.error.message) ?? "",
        ...(typeof msg.error.retry_after_ms === "number" ? { retry_after_ms: msg.error.retry_after_ms } : {}),
      };
      return { kind: "error", id: typeof msg.id === "number" ? msg.id : null, error: body };
    }
    case "event":
      if (!isObject(msg.event) || typeof msg.event.type !== "string") return null;
      return { kind: "event", event: msg.event as unknown as WireEvent };
    default:
      return null;
  }
}

/** What the application learns from a join state: everything but the resume token
 * (a bearer secret) and the sequence numbers (the engine's business). */
export function entered(join: JoinState): Entered {
  return { meeting: join.meeting, you: join.you, participants: join.participants, waiting: join.waiting, tracks: join.tracks ?? [], resumed: false };
}

/** A chat message as an event; `own`: sent by this participant. */
export function chatEvent(message: ChatMessage, own: boolean): ClientEvent {
  return { event: "chat", ...message, own };
}

/** A relay event as engine events; `self` is this participant (null before the join). */
export function engineEvents(ev: WireEvent, self: ParticipantId | null): ClientEvent[] {
  switch (ev.type) {
    case "admitted": {
      const { type: _type, ...join } = ev;
      return [{ event: "admitted", ...entered(join) }];
    }
    case "role_changed":
      return [{ event: "role_changed", participant_id: ev.participant_id, role: ev.role, you: ev.participant_id === self }];
    case "connection_changed":
      return [{ event: "participant_connection", participant_id: ev.participant_id, connected: ev.connected }];
    case "muted_by":
      return [{ event: "muted", by: ev.by }];
    case "chat":
      return [chatEvent(ev.message, ev.message.sender_id === self)];
    case "participant_joined":
    case "participant_left":
    case "media_changed":
    case "waiting_room":
    case "denied":
    case "removed":
    case "meeting_updated":
    case "meeting_ended":
    case "typing":
    case "track_published":
    case "track_unpublished":
    case "keyframe_request": {
      const { type, ...rest } = ev;
      return [{ event: type, ...rest } as ClientEvent];
    }
    default:
      // An event this page does not know yet (newer relay): ignored.
      return [];
  }
}

/** The reply to `join`: in the meeting, or in its waiting room. */
export function joinOutcome(response: Record<string, unknown> & { type: string }): JoinOutcome {
  if (response.type === "joined") {
    const { type: _type, ...join } = response;
    return { state: "joined", join: entered(join as unknown as JoinState) };
  }
  if (response.type === "waiting" && typeof response.participant_id === "string" && isObject(response.meeting)) {
    return { state: "waiting", participant_id: response.participant_id, meeting: response.meeting as unknown as MeetingInfo };
  }
  throw new EngineError("unknown", `Unexpected reply to join: ${response.type}.`);
}

/** A change in who is on which receive slot, as the UI must hear it. */
export interface SlotChange {
  participant_id: string;
  kind: MediaKind;
  mid: string;
  /** true: the participant's track now arrives on `mid`; false: it stopped. */
  available: boolean;
}

/**
 * Which participant's track arrives on which pre-negotiated receive slot (`mid`).
 * The relay names them; a participant has at most one slot per kind (a new slot for
 * the same participant and kind replaces the old one).
 */
export class SlotTable {
  private byMid = new Map<string, { participant_id: string; kind: MediaKind }>();

  apply(signal: RtcSignal): SlotChange[] {
    if (signal.type === "slot") {
      const changes: SlotChange[] = [];
      const previous = this.byMid.get(signal.mid);
      if (previous && (previous.participant_id !== signal.participant_id || previous.kind !== signal.kind)) {
        changes.push({ ...previous, mid: signal.mid, available: false });
      }
      // The same participant and kind on another slot: that one is stale.
      for (const [mid, s] of this.byMid) {
        if (mid !== signal.mid && s.participant_id === signal.participant_id && s.kind === signal.kind) {
          this.byMid.delete(mid);
          changes.push({ ...s, mid, available: false });
        }
      }
      this.byMid.set(signal.mid, { participant_id: signal.participant_id, kind: signal.kind });
      changes.push({ participant_id: signal.participant_id, kind: signal.kind, mid: signal.mid, available: true });
      return changes;
    }
    if (signal.type === "unslot") {
      const s = this.byMid.get(signal.mid);
      if (!s) return [];
      this.byMid.delete(signal.mid);
      return [{ ...s, mid: signal.mid, available: false }];
    }
    return [];
  }

  /** The slot carrying `participant`'s track of `kind`, if any. */
  midOf(participantId: string, kind: MediaKind): string | null {
    for (const [mid, s] of this.byMid) if (s.participant_id === participantId && s.kind === kind) return mid;
    return null;
  }

  at(mid: string): { participant_id: string; kind: MediaKind } | null {
    return this.byMid.get(mid) ?? null;
  }

  /** Everything, for re-announcing once the peer connection is ready. */
  all(): SlotChange[] {
    return [...this.byMid].map(([mid, s]) => ({ ...s, mid, available: true }));
  }

  /** Slots of a participant who left. */
  forget(participantId: string): SlotChange[] {
    const gone: SlotChange[] = [];
    for (const [mid, s] of this.byMid) {
      if (s.participant_id === participantId) {
        this.byMid.delete(mid);
        gone.push({ ...s, mid, available: false });
      }
    }
    return gone;
  }

  clear(): void {
    this.byMid.clear();
  }
}

/** A codec as `RTCRtpSender.getCapabilities` lists it. */
export interface CodecCapability {
  mimeType: string;
  sdpFmtpLine?: string;
}

/** H.264 with packetization-mode 1 as desktop clients send and decode it: constrained
 * baseline (`profile-level-id=42e0xx`) only, when the browser has it (offering higher profiles
 * too lets the relay's answer pick one the desktop decoder cannot read); else any mode-1 H.264. */
export function h264Codecs<C extends CodecCapability>(codecs: readonly C[]): C[] {
  const h264 = codecs.filter((c) => c.mimeType.toLowerCase() === "video/h264" && /packetization-mode=1/.test(c.sdpFmtpLine ?? ""));
  const baseline = h264.filter((c) => /profile-level-id=42e0/i.test(c.sdpFmtpLine ?? ""));
  return baseline.length > 0 ? baseline : h264;
}

export const NO_H264_MESSAGE =
  "This browser cannot send or receive H.264 video, so the others would not see you and you would not see them. Please use a current Chrome, Edge, Safari or Firefox.";

/** Words for a failed `getUserMedia` (by the DOMException's name). */
export function deviceError(name: string, what: "camera" | "microphone" | "camera and microphone"): EngineError {
  switch (name) {
    case "NotAllowedError":
    case "PermissionDeniedError":
    case "SecurityError":
      return new EngineError("no_device", `Access to the ${what} was denied. Allow it in the browser's address bar (the camera icon) and reload the page; you can still join without it.`);
    case "NotFoundError":
    case "DevicesNotFoundError":
    case "OverconstrainedError":
      return new EngineError("no_device", `No ${what} was found. Connect one, or join without it.`);
    case "NotReadableError":
    case "TrackStartError":
      return new EngineError("no_device", `The ${what} is in use by another program or could not be started. Close that program and try again.`);
    case "NoSecureContext":
      return new EngineError("no_device", "This page needs a secure (https) connection to use the camera and microphone.");
    default:
      return new EngineError("no_device", `The ${what} could not be opened${name ? ` (${name})` : ""}.`);
  }
}

/** Level 0..1 from time-domain samples centred on 128 (an AnalyserNode's byte data). */
export function levelFromBytes(samples: ArrayLike<number>): number {
  if (samples.length === 0) return 0;
  let sum = 0;
  for (let i = 0; i < samples.length; i++) {
    const v = ((samples[i] ?? 128) - 128) / 128;
    sum += v * v;
  }
  const rms = Math.sqrt(sum / samples.length);
  // Speech sits around 0.05..0.3 RMS; spread it over the meter.
  return Math.min(1, rms * 3);
}

/** Connection quality from round-trip time (ms) and packet loss (0..1). */
export function qualityOf(rttMs: number, loss: number): ConnectionQuality {
  if (rttMs > 400 || loss > 0.08) return "poor";
  if (rttMs > 150 || loss > 0.02) return "fair";
  return "good";
}
