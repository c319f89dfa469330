// The desktop app's engine: every call is a Tauri command into the Rust shell
// (`src-tauri/src/commands.rs`, which wraps `shared/client`); events arrive on
// one ordered `Channel` as `EngineEvent`s, passed on as they come (the engine's
// own events, the shell's media events and invite links: `generated.ts`). Frames come over a loopback
// WebSocket the shell serves (`src-tauri/src/frame_socket.rs`; URL with a per-run
// token from the `frame_socket` command): one binary message per frame, scaled to
// its tile in Rust, sent only against credit this page grants (a small window,
// then one per frame taken), so a busy page skips frames instead of queueing them.

import { Channel, invoke, isTauri } from "@tauri-apps/api/core";
import {
  EngineError,
  type ConsultationEnded,
  type ConsultationRecord,
  type LocalMeeting,
  type ClinicMeeting,
  type CreatedMeeting,
  type DashboardMeeting,
  type DeviceKind,
  type DeviceList,
  type Engine,
  type EngineEvent,
  type EngineListener,
  type FrameListener,
  type HelloInfo,
  type JoinOptions,
  type JoinOutcome,
  type Rekeyed,
  type RelayConfig,
  type Unsubscribe,
  type VideoFrame,
} from "./engine";
import type { Invite } from "./generated";
import { Listeners } from "./listeners";
import type { ChatMessage, ErrorCode, MediaState, MeetingId, MeetingSpec, ParticipantId, PastFilter, PastMeeting, RelayConsultationRecord, StaffIdentity, Uuid } from "./types";

/** The error JSON of the shell (`src-tauri/src/error.rs`). */
interface ShellError {
  code: string;
  message: string;
  retry_after_ms?: number;
  presented_pin?: string;
}

function toEngineError(err: unknown): EngineError {
  if (typeof err === "object" && err !== null && "code" in err && "message" in err) {
    const e = err as ShellError;
    const extra: { retryAfterMs?: number; presentedPin?: string } = {};
    if (e.retry_after_ms !== undefined) extra.retryAfterMs = e.retry_after_ms;
    if (e.presented_pin !== undefined) extra.presentedPin = e.presented_pin;
    return new EngineError(e.code as ErrorCode, e.message, extra);
  }
  return new EngineError("internal", typeof err === "string" ? err : "The app could not do that.");
}

const FRAME_MAGIC = 0x31464d43; // "CMF1" little endian

/** Reads one binary frame message (`src-tauri/src/frames.rs`); null if malformed. */
export function decodeFrame(buf: ArrayBuffer): VideoFrame | null {
  if (buf.byteLength < 9) return null;
  const view = new DataView(buf);
  if (view.getUint32(0, true) !== FRAME_MAGIC) return null;
  const width = view.getUint16(4, true);
  const height = view.getUint16(6, true);
  const idLen = view.getUint8(8);
  const planes = width * height + 2 * Math.ceil(width / 2) * Math.ceil(height / 2);
  if (buf.byteLength !== 9 + idLen + planes) return null;
  const participantId = new TextDecoder().decode(new Uint8Array(buf, 9, idLen));
  return { participantId, width, height, data: new Uint8Array(buf, 9 + idLen, planes) };
}

/** Frames the page lets the shell have in flight on the frame socket. */
export const FRAME_WINDOW = 8;

export class TauriEngine implements Engine {
  private listeners = new Listeners<EngineEvent>();
  private frameListeners = new Listeners<VideoFrame>();
  private inviteListeners = new Listeners<Invite>();
  private subscribed: Promise<void>;
  private socket: WebSocket | null = null;
  private reconnect: ReturnType<typeof setTimeout> | null = null;

  constructor() {
    const events = new Channel<EngineEvent>((e) => {
      if (e.event === "invite") this.inviteListeners.emit({ code: e.code, relay: e.relay });
      else this.listeners.emit(e);
    });
    this.subscribed = invoke("subscribe", { channel: events }).then(() => undefined);
  }

  /** One frame socket open for as long as anyone listens; reopened if it drops. */
  private async openFrames(): Promise<void> {
    if (this.socket || this.reconnect || this.frameListeners.size === 0) return;
    let url: string;
    try {
      await this.subscribed;
      url = await invoke<string>("frame_socket");
    } catch {
      this.retryFrames();
      return;
    }
    if (this.socket || this.frameListeners.size === 0) return;
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    this.socket = ws;
    ws.onopen = () => ws.send(String(FRAME_WINDOW));
    ws.onmessage = (ev: MessageEvent<unknown>) => {
      if (ev.data instanceof ArrayBuffer) {
        const f = decodeFrame(ev.data);
        if (f) this.frameListeners.emit(f);
      }
      ws.send("1");
    };
    ws.onclose = () => {
      if (this.socket === ws) this.socket = null;
      this.retryFrames();
    };
  }

  private retryFrames(): void {
    if (this.reconnect || this.frameListeners.size === 0) return;
    this.reconnect = setTimeout(() => {
      this.reconnect = null;
      void this.openFrames();
    }, 500);
  }

  setVideoSize(participantId: string, width: number, height: number): void {
    // 0×0: the tile is out of view (no frames for it); otherwise 16..4K.
    const hidden = width <= 0 || height <= 0;
    const w = hidden ? 0 : Math.max(16, Math.min(3840, Math.round(width)));
    const h = hidden ? 0 : Math.max(16, Math.min(2160, Math.round(height)));
    invoke("set_video_size", { participant: participantId, width: w, height: h }).catch(() => undefined);
  }

  static available(): boolean {
    return isTauri();
  }

  private async call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
    await this.subscribed;
    try {
      return await invoke<T>(cmd, args);
    } catch (err) {
      throw toEngineError(err);
    }
  }

  // --- launch ----------------------------------------------------------------
  /** What the shell was opened with: an invite link and/or a relay to pre-fill. */
  launchInfo(): Promise<Invite> {
    return this.call("launch_info");
  }

  /** The relay an invite link or the environment names (pre-fills first run). */
  async launchRelay(): Promise<RelayConfig | null> {
    return (await this.launchInfo()).relay;
  }

  onInvite(listener: (invite: Invite) => void): Unsubscribe {
    return this.inviteListeners.add(listener);
  }

  // --- relay -----------------------------------------------------------------
  savedRelay(): Promise<RelayConfig | null> {
    return this.call("saved_relay");
  }
  connect(relay: RelayConfig): Promise<HelloInfo> {
    return this.call("connect", { relay });
  }
  disconnect(): Promise<void> {
    return this.call("disconnect");
  }
  enroll(code: string, deviceName: string): Promise<StaffIdentity> {
    return this.call("enroll", { code, deviceName });
  }

  // --- meetings --------------------------------------------------------------
  createMeeting(spec: MeetingSpec): Promise<CreatedMeeting> {
    return this.call("create_meeting", { spec });
  }
  listMeetings(): Promise<DashboardMeeting[]> {
    return this.call("list_meetings");
  }
  join(accessCode: string, displayName: string, options: JoinOptions): Promise<JoinOutcome> {
    return this.call("join", { code: accessCode, name: displayName, options });
  }
  leave(): Promise<void> {
    return this.call("leave");
  }

  // --- moderation ------------------------------------------------------------
  admit(participantId: ParticipantId): Promise<void> {
    return this.call("admit", { participant: participantId });
  }
  deny(participantId: ParticipantId): Promise<void> {
    return this.call("deny", { participant: participantId });
  }
  mute(participantId: ParticipantId): Promise<void> {
    return this.call("mute", { participant: participantId });
  }
  allowUnmute(participantId: ParticipantId): Promise<void> {
    return this.call("allow_unmute", { participant: participantId });
  }
  remove(participantId: ParticipantId): Promise<void> {
    return this.call("remove", { participant: participantId });
  }
  promote(participantId: ParticipantId): Promise<void> {
    return this.call("promote", { participant: participantId });
  }
  demote(participantId: ParticipantId): Promise<void> {
    return this.call("demote", { participant: participantId });
  }
  setSelfUnmute(allowed: boolean): Promise<void> {
    return this.call("set_self_unmute", { allowed });
  }
  setLocked(locked: boolean): Promise<void> {
    return this.call("set_locked", { locked });
  }
  rekeyMeeting(): Promise<Rekeyed> {
    return this.call("rekey_meeting");
  }
  endMeeting(): Promise<void> {
    return this.call("end_meeting");
  }

  // --- consultations ---------------------------------------------------------
  startConsultation(): Promise<void> {
    return this.call("start_consultation");
  }
  endConsultation(notes: string): Promise<ConsultationEnded> {
    return this.call("end_consultation", { notes });
  }
  saveConsultationNotes(meetingId: MeetingId, notes: string): Promise<RelayConsultationRecord> {
    return this.call("save_consultation_notes", { meeting: meetingId, notes });
  }
  consultations(): Promise<ConsultationRecord[]> {
    return this.call("consultations");
  }
  consultationRecord(meetingId: MeetingId): Promise<RelayConsultationRecord> {
    return this.call("consultation_record", { meeting: meetingId });
  }
  amendConsultation(meetingId: MeetingId, text: string): Promise<RelayConsultationRecord> {
    return this.call("amend_consultation", { meeting: meetingId, text });
  }

  // --- past meetings -----------------------------------------------------------
  localMeetings(): Promise<LocalMeeting[]> {
    return this.call("local_meetings");
  }
  pastMeetings(filter: PastFilter): Promise<PastMeeting[]> {
    return this.call("past_meetings", { filter });
  }

  // --- clinic view -------------------------------------------------------------
  clinicMeetings(): Promise<ClinicMeeting[]> {
    return this.call("clinic_meetings");
  }
  joinAsStaff(meetingId: MeetingId, displayName: string, options: JoinOptions): Promise<JoinOutcome> {
    return this.call("join_as_staff", { meeting: meetingId, name: displayName, options });
  }
  cancelMeeting(meetingId: MeetingId): Promise<void> {
    return this.call("cancel_meeting", { meeting: meetingId });
  }
  saveInvitation(meetingId: MeetingId): Promise<string> {
    return this.call("save_invitation", { meeting: meetingId });
  }

  // --- media -----------------------------------------------------------------
  updateMedia(media: MediaState): Promise<void> {
    return this.call("update_media", { media });
  }
  listDevices(): Promise<DeviceList> {
    return this.call("list_devices");
  }
  selectDevice(kind: DeviceKind, deviceId: string): Promise<void> {
    return this.call("select_device", { kind, id: deviceId });
  }
  startPreview(): Promise<void> {
    return this.call("start_preview");
  }
  stopPreview(): Promise<void> {
    return this.call("stop_preview");
  }

  // --- chat ------------------------------------------------------------------
  sendChat(text: string, staffOnly: boolean): Promise<Uuid> {
    return this.call("send_chat", { text, staffOnly });
  }
  retryChat(clientMsgId: Uuid): Promise<void> {
    return this.call("retry_chat", { id: clientMsgId });
  }
  typing(typing: boolean): Promise<void> {
    return this.call("typing", { typing });
  }
  chatHistory(meetingId: MeetingId): Promise<ChatMessage[]> {
    return this.call("chat_history", { meeting: meetingId });
  }

  // --- events ----------------------------------------------------------------
  subscribe(listener: EngineListener): Unsubscribe {
    return this.listeners.add(listener);
  }
  subscribeFrames(listener: FrameListener): Unsubscribe {
    const remove = this.frameListeners.add(listener);
    void this.openFrames();
    return () => {
      remove();
      if (this.frameListeners.size === 0) this.socket?.close();
    };
  }
}
