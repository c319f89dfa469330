// BrowserEngine: a guest in a plain browser. The control protocol as JSON over a
// WebSocket to the relay (`wss://<relay>/ws`, the same messages as the QUIC control
// stream), media over one RTCPeerConnection: microphone and camera sent (H.264
// constrained baseline + Opus, no transcoding on the relay), remote tracks arrive on
// pre-negotiated receive slots that the relay names (`mid → track`) over the
// WebSocket. Publishing and subscribing are done by the relay for the guest.

import type { ChatMessage, ErrorBody, JoinState, MediaState, MeetingInfo, ParticipantId, ParticipantInfo } from "./types";

/** Receive slots per kind; must match the relay's `peer::SLOTS`. */
export const SLOTS = 6;

export type GuestEvent =
  | { type: "joined"; join: JoinState }
  | { type: "waiting"; meeting: MeetingInfo }
  | { type: "admitted"; join: JoinState }
  | { type: "denied" }
  | { type: "removed" }
  | { type: "meeting_ended" }
  | { type: "participants"; participants: ParticipantInfo[] }
  | { type: "chat"; message: ChatMessage }
  | { type: "typing"; participant_id: ParticipantId; typing: boolean }
  | { type: "muted_by" }
  | { type: "remote"; participant_id: ParticipantId; kind: "audio" | "video"; stream: MediaStream | null }
  | { type: "media_error"; message: string }
  | { type: "closed" };

export class GuestError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** Whether this browser can send and receive H.264 packetization-mode 1. */
export function hasH264(): boolean {
  const caps = typeof RTCRtpSender !== "undefined" ? RTCRtpSender.getCapabilities?.("video") : null;
  return !!caps?.codecs.some((c) => c.mimeType.toLowerCase() === "video/h264" && /packetization-mode=1/.test(c.sdpFmtpLine ?? ""));
}

/** Opens camera and microphone; a clear message when denied or missing. */
export async function openDevices(camera: boolean, mic: boolean): Promise<MediaStream> {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new GuestError("no_device", "This page needs a secure (https) connection to use the camera and microphone.");
  }
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: mic, video: camera ? { width: 640, height: 360, frameRate: 30 } : false });
  } catch (e) {
    const name = e instanceof DOMException ? e.name : "";
    if (name === "NotAllowedError" || name === "SecurityError") {
      throw new GuestError("denied", "Camera or microphone access was denied. Allow it in the browser's address bar and try again.");
    }
    if (name === "NotFoundError" || name === "OverconstrainedError") {
      throw new GuestError("no_device", "No camera or microphone was found. Connect one, or join without it.");
    }
    throw new GuestError("no_device", `The camera or microphone could not be opened (${name || String(e)}).`);
  }
}

type Pending = { resolve: (v: any) => void; reject: (e: GuestError) => void };

export class BrowserEngine {
  private ws: WebSocket | null = null;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private listeners = new Set<(e: GuestEvent) => void>();
  private pc: RTCPeerConnection | null = null;
  private local: MediaStream | null = null;
  private participants = new Map<ParticipantId, ParticipantInfo>();
  private slots = new Map<string, { participant_id: ParticipantId; kind: "audio" | "video" }>();
  private answer: ((sdp: string) => void) | null = null;
  me: ParticipantId | null = null;
  media: MediaState = { audio: true, video: true, screen: false };

  constructor(private readonly url: string) {}

  on(listener: (e: GuestEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(e: GuestEvent): void {
    for (const l of this.listeners) l(e);
  }

  get peer(): RTCPeerConnection | null {
    return this.pc;
  }

  async connect(): Promise<void> {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new GuestError("unreachable", "Could not reach the clinic's server."));
    });
    ws.onmessage = (m) => this.onMessage(String(m.data));
    ws.onclose = () => {
      for (const p of this.pending.values()) p.reject(new GuestError("closed", "The connection closed."));
      this.pending.clear();
      this.emit({ type: "closed" });
    };
    await this.request({ type: "hello", min_version: 1, max_version: 1, client: "clinicmeet-guest/0.1" });
  }

  request(body: Record<string, unknown>): Promise<any> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.reject(new GuestError("not_connected", "Not connected."));
    const id = this.nextId++;
    ws.send(JSON.stringify({ id, ...body }));
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }

  private onMessage(text: string): void {
    let msg: any;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (msg.webrtc) return this.onRtc(msg.webrtc);
    if (msg.kind === "reply" || msg.kind === "error") {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.kind === "reply") p.resolve(msg.response);
      else p.reject(new GuestError((msg.error as ErrorBody).code, (msg.error as ErrorBody).message));
      return;
    }
    if (msg.kind === "event") this.onEvent(msg.event);
  }

  private setParticipants(list: ParticipantInfo[]): void {
    this.participants = new Map(list.map((p) => [p.id, p]));
    this.emit({ type: "participants", participants: [...this.participants.values()] });
  }

  private onEvent(ev: any): void {
    switch (ev.type) {
      case "admitted": {
        const join = ev as JoinState;
        this.me = join.you.id;
        this.setParticipants(join.participants);
        this.emit({ type: "admitted", join });
        void this.startMedia();
        break;
      }
      case "denied":
        return this.emit({ type: "denied" });
      case "removed":
        this.stopMedia();
        return this.emit({ type: "removed" });
      case "meeting_ended":
        this.stopMedia();
        return this.emit({ type: "meeting_ended" });
      case "participant_joined":
        this.participants.set(ev.participant.id, ev.participant);
        return this.emit({ type: "participants", participants: [...this.participants.values()] });
      case "participant_left":
        this.participants.delete(ev.participant_id);
        return this.emit({ type: "participants", participants: [...this.participants.values()] });
      case "media_changed": {
        const p = this.participants.get(ev.participant_id);
        if (p) p.media = ev.media;
        return this.emit({ type: "participants", participants: [...this.participants.values()] });
      }
      case "muted_by":
        this.media = { ...this.media, audio: false };
        for (const t of this.local?.getAudioTracks() ?? []) t.enabled = false;
        return this.emit({ type: "muted_by" });
      case "chat":
        return this.emit({ type: "chat", message: ev.message });
      case "typing":
        return this.emit({ type: "typing", participant_id: ev.participant_id, typing: ev.typing });
    }
  }

  private onRtc(w: any): void {
    if (typeof w.answer === "string") {
      this.answer?.(w.answer);
      this.answer = null;
    } else if (w.slot) {
      const { mid, kind, participant_id } = w.slot;
      const k: "audio" | "video" = kind === "audio" ? "audio" : "video";
      this.slots.set(mid, { participant_id, kind: k });
      const tr = this.pc?.getTransceivers().find((t) => t.mid === mid);
      if (tr) this.emit({ type: "remote", participant_id, kind: k, stream: new MediaStream([tr.receiver.track]) });
    } else if (w.unslot) {
      const s = this.slots.get(w.unslot.mid);
      this.slots.delete(w.unslot.mid);
      if (s) this.emit({ type: "remote", participant_id: s.participant_id, kind: s.kind, stream: null });
    } else if (typeof w.error === "string") {
      this.emit({ type: "media_error", message: w.error });
    }
  }

  /** Joins; media starts once in the meeting (at once, or when admitted). */
  async join(code: string, name: string, local: MediaStream | null): Promise<"joined" | "waiting"> {
    this.local = local;
    this.media = { audio: !!local?.getAudioTracks().length, video: !!local?.getVideoTracks().length, screen: false };
    const r = await this.request({ type: "join", access_code: code, display_name: name, media: this.media });
    if (r.type === "joined") {
      const join = r as JoinState;
      this.me = join.you.id;
      this.setParticipants(join.participants);
      this.emit({ type: "joined", join });
      void this.startMedia();
      return "joined";
    }
    this.emit({ type: "waiting", meeting: r.meeting });
    return "waiting";
  }

  private async startMedia(): Promise<void> {
    if (this.pc) return;
    if (!hasH264()) {
      this.emit({ type: "media_error", message: "This browser cannot send or receive H.264 video. Please use a current Chrome, Edge, Safari or Firefox." });
      return;
    }
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
    this.pc = pc;
    const h264 = (RTCRtpSender.getCapabilities("video")?.codecs ?? []).filter(
      (c) => c.mimeType.toLowerCase() === "video/h264" && /packetization-mode=1/.test(c.sdpFmtpLine ?? "") && /profile-level-id=42e01f/.test(c.sdpFmtpLine ?? ""),
    );
    const preferH264 = (t: RTCRtpTransceiver) => {
      if (h264.length && t.setCodecPreferences) t.setCodecPreferences(h264);
    };
    const mic = this.local?.getAudioTracks()[0] ?? null;
    const cam = this.local?.getVideoTracks()[0] ?? null;
    pc.addTransceiver(mic ?? "audio", { direction: "sendonly", ...(this.local ? { streams: [this.local] } : {}) });
    preferH264(pc.addTransceiver(cam ?? "video", { direction: "sendonly", ...(this.local ? { streams: [this.local] } : {}) }));
    for (let i = 0; i < SLOTS; i++) pc.addTransceiver("audio", { direction: "recvonly" });
    for (let i = 0; i < SLOTS; i++) preferH264(pc.addTransceiver("video", { direction: "recvonly" }));
    await pc.setLocalDescription(await pc.createOffer());
    // Wait for host candidates (the relay does not trickle).
    await new Promise<void>((resolve) => {
      if (pc.iceGatheringState === "complete") return resolve();
      const t = setTimeout(resolve, 2000);
      pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") {
          clearTimeout(t);
          resolve();
        }
      });
    });
    const answer = new Promise<string>((resolve) => (this.answer = resolve));
    this.ws?.send(JSON.stringify({ webrtc: { offer: pc.localDescription?.sdp ?? "" } }));
    await pc.setRemoteDescription({ type: "answer", sdp: await answer });
  }

  private stopMedia(): void {
    this.pc?.close();
    this.pc = null;
    for (const t of this.local?.getTracks() ?? []) t.stop();
  }

  async setMedia(media: Partial<MediaState>): Promise<void> {
    this.media = { ...this.media, ...media };
    for (const t of this.local?.getAudioTracks() ?? []) t.enabled = this.media.audio;
    for (const t of this.local?.getVideoTracks() ?? []) t.enabled = this.media.video;
    await this.request({ type: "update_media", media: this.media });
  }

  async sendChat(text: string): Promise<ChatMessage> {
    const r = await this.request({ type: "send_chat", client_msg_id: crypto.randomUUID(), text, staff_only: false });
    return r.message as ChatMessage;
  }

  async chatHistory(): Promise<ChatMessage[]> {
    const r = await this.request({ type: "chat_history", since_seq: 0, limit: 200 });
    return (r.messages ?? []) as ChatMessage[];
  }

  async typing(typing: boolean): Promise<void> {
    await this.request({ type: "typing", typing });
  }

  async leave(): Promise<void> {
    await this.request({ type: "leave" }).catch(() => undefined);
    this.stopMedia();
    this.ws?.close();
  }

  participantList(): ParticipantInfo[] {
    return [...this.participants.values()];
  }
}
