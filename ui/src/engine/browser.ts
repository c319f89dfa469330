// BrowserEngine: a guest in a plain browser, behind the same `Engine` interface as
// the desktop app, so the guest page is the desktop app's screens. The control
// protocol goes as JSON over a WebSocket to the relay (`wss://<relay>/ws`, the same
// messages as on the QUIC control stream); media over one RTCPeerConnection: the
// camera and microphone are sent (H.264 constrained baseline + Opus, passed through
// the relay without transcoding), others' tracks arrive on pre-negotiated receive
// slots that the relay names (`mid → participant`) over the WebSocket. Video reaches
// the tiles as MediaStreams (`videoStream`), audio plays from here.
//
// The pure parts (message reading, event mapping, slot table, codec choice, error
// words) are in `browserSignal.ts`.

import {
  EngineError,
  LOCAL_PARTICIPANT,
  errorText,
  type ConsultationEnded,
  type ConsultationRecord,
  type LocalMeeting,
  type ClinicMeeting,
  type CreatedMeeting,
  type DashboardMeeting,
  type DeviceInfo,
  type DeviceKind,
  type DeviceList,
  type Engine,
  type EngineListener,
  type FrameListener,
  type HelloInfo,
  type JoinOptions,
  type JoinOutcome,
  type Rekeyed,
  type RelayConfig,
  type Unsubscribe,
} from "./engine";
import {
  NO_H264_MESSAGE,
  SLOTS,
  SlotTable,
  chatEvent,
  deviceError,
  engineEvents,
  h264Codecs,
  joinOutcome,
  levelFromBytes,
  parseIncoming,
  qualityOf,
  type RtcSignal,
  type SlotChange,
} from "./browserSignal";
import { Listeners } from "./listeners";
import type { ClientEvent, EngineEvent, PendingChat } from "./generated";
import type { ChatMessage, MediaState, MeetingId, MeetingSpec, ParticipantId, PastFilter, PastMeeting, RelayConsultationRecord, StaffIdentity, Uuid } from "./types";

export { SLOTS };

/** Whether this browser can send and receive H.264 packetization-mode 1. */
export function hasH264(): boolean {
  const caps = typeof RTCRtpSender !== "undefined" ? RTCRtpSender.getCapabilities?.("video") : null;
  return h264Codecs(caps?.codecs ?? []).length > 0;
}

/** Refusals after which the relay stored nothing and a chat message is sent again by itself. */
const RETRYABLE: ReadonlySet<string> = new Set(["rate_limited", "storage_unavailable", "server_busy", "internal"]);
const STAFF_ONLY = "This needs the ClinicMeet app on an enrolled staff device; the browser page is for guests.";
const VIDEO_CONSTRAINTS = { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 30 } };

type Pending = { resolve: (v: Record<string, unknown> & { type: string }) => void; reject: (e: EngineError) => void };

function uuid(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x40;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export class BrowserEngine implements Engine {
  /** Not on the guest page yet (getDisplayMedia in place of the camera track would do it). */
  readonly canShareScreen = false;
  private ws: WebSocket | null = null;
  private opening: Promise<HelloInfo> | null = null;
  private closingOnPurpose = false;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private listeners = new Listeners<EngineEvent>();
  private pc: RTCPeerConnection | null = null;
  private remoteReady = false;
  private answerWaiter: ((sdp: string) => void) | null = null;
  private local: MediaStream | null = null;
  private acquiring: Promise<EngineError | null> | null = null;
  private acquiringKey = "";
  private slots = new SlotTable();
  private remoteVideo = new Map<string, MediaStream>();
  private players = new Map<string, HTMLAudioElement>();
  private selected: Record<DeviceKind, string | null> = { camera: null, microphone: null, speaker: null };
  private meter: { ctx: AudioContext; timer: ReturnType<typeof setInterval> } | null = null;
  private statsTimer: ReturnType<typeof setInterval> | null = null;
  private lastLoss: { lost: number; received: number } | null = null;
  /** Joining, waiting or in the meeting: the local devices belong to the call, not the preview. */
  private inCall = false;
  private chatOnly = false;
  private media: MediaState = { audio: false, video: false, screen: false };
  private outbox = new Map<Uuid, PendingChat>();
  /** This participant once joined or waiting (to tell own events from others'). */
  private self: ParticipantId | null = null;

  constructor(private readonly url: string = BrowserEngine.defaultUrl()) {}

  static defaultUrl(): string {
    return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  }

  /** The peer connection (for the end-to-end test's `getStats`). */
  get peer(): RTCPeerConnection | null {
    return this.pc;
  }

  // --- events ----------------------------------------------------------------

  subscribe(listener: EngineListener): Unsubscribe {
    return this.listeners.add(listener);
  }

  subscribeFrames(_listener: FrameListener): Unsubscribe {
    // The browser decodes video itself: tiles take `videoStream` instead of frames.
    return () => undefined;
  }

  private emit(e: EngineEvent): void {
    this.listeners.emit(e);
  }

  // --- relay -----------------------------------------------------------------

  async savedRelay(): Promise<RelayConfig | null> {
    // The page's own server; the browser checks its certificate.
    return { address: location.host, pin: "" };
  }

  connect(_relay?: RelayConfig): Promise<HelloInfo> {
    // Open or opening: the same hello.
    if (this.opening && this.ws && this.ws.readyState <= WebSocket.OPEN) return this.opening;
    this.opening = this.open().catch((e: unknown) => {
      this.opening = null;
      throw e;
    });
    return this.opening;
  }

  private async open(): Promise<HelloInfo> {
    this.emit({ event: "connection", state: "connecting" });
    const ws = new WebSocket(this.url);
    this.ws = ws;
    this.closingOnPurpose = false;
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new EngineError("unreachable", "Could not reach the clinic's server. Check your connection and reload the page."));
    });
    ws.onmessage = (m) => this.onMessage(String(m.data));
    ws.onclose = () => this.onClose(ws);
    const r = await this.request({ type: "hello", min_version: 1, max_version: 1, client: "clinicmeet-guest/0.1" });
    this.emit({ event: "connection", state: "connected" });
    return { server: typeof r.server === "string" ? r.server : "", version: typeof r.version === "number" ? r.version : 1, staff: null };
  }

  private onClose(ws: WebSocket): void {
    if (this.ws !== ws) return;
    this.ws = null;
    this.opening = null;
    for (const p of this.pending.values()) p.reject(new EngineError("not_connected", "The connection to the clinic's server closed."));
    this.pending.clear();
    const lost = !this.closingOnPurpose && this.inCall;
    this.stopMedia();
    if (this.inCall) this.stopLocal();
    this.inCall = false;
    this.emit(
      lost
        ? { event: "connection", state: "disconnected", reason: "The connection to the clinic was lost. Reload the page to join again." }
        : { event: "connection", state: "disconnected" },
    );
  }

  async disconnect(): Promise<void> {
    this.closingOnPurpose = true;
    this.ws?.close();
  }

  private request(body: Record<string, unknown>): Promise<Record<string, unknown> & { type: string }> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.reject(new EngineError("not_connected", "Not connected to the clinic's server."));
    const id = this.nextId++;
    ws.send(JSON.stringify({ id, ...body }));
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }

  private onMessage(text: string): void {
    const msg = parseIncoming(text);
    if (!msg) return;
    switch (msg.kind) {
      case "rtc":
        return this.onRtc(msg.signal);
      case "reply":
      case "error": {
        if (msg.id === null) return;
        const p = this.pending.get(msg.id);
        if (!p) return;
        this.pending.delete(msg.id);
        if (msg.kind === "reply") p.resolve(msg.response);
        else p.reject(EngineError.fromBody(msg.error));
        return;
      }
      case "event":
        for (const e of engineEvents(msg.event, this.self)) this.onEvent(e);
    }
  }

  private onEvent(e: ClientEvent): void {
    switch (e.event) {
      case "admitted":
        void this.startMedia();
        break;
      case "denied":
      case "removed":
      case "meeting_ended":
        this.stopMedia();
        this.stopLocal();
        this.inCall = false;
        break;
      case "participant_left":
        for (const c of this.slots.forget(e.participant_id)) this.applySlot(c);
        break;
      case "muted":
        this.media = { ...this.media, audio: false };
        for (const t of this.local?.getAudioTracks() ?? []) t.enabled = false;
        break;
    }
    this.emit(e);
  }

  // --- staff-only parts: not for a browser guest ------------------------------

  enroll(_code: string, _deviceName: string): Promise<StaffIdentity> {
    return Promise.reject(new EngineError("unauthenticated", STAFF_ONLY));
  }
  createMeeting(_spec: MeetingSpec): Promise<CreatedMeeting> {
    return Promise.reject(new EngineError("unauthenticated", STAFF_ONLY));
  }
  listMeetings(): Promise<DashboardMeeting[]> {
    return Promise.reject(new EngineError("unauthenticated", STAFF_ONLY));
  }
  startConsultation(): Promise<void> {
    return Promise.reject(new EngineError("unauthenticated", STAFF_ONLY));
  }
  endConsultation(_notes: string): Promise<ConsultationEnded> {
    return Promise.reject(new EngineError("unauthenticated", STAFF_ONLY));
  }
  saveConsultationNotes(_meetingId: MeetingId, _notes: string): Promise<RelayConsultationRecord> {
    return Promise.reject(new EngineError("unauthenticated", STAFF_ONLY));
  }
  consultations(): Promise<ConsultationRecord[]> {
    return Promise.reject(new EngineError("unauthenticated", STAFF_ONLY));
  }
  consultationRecord(_meetingId: MeetingId): Promise<RelayConsultationRecord> {
    return Promise.reject(new EngineError("unauthenticated", STAFF_ONLY));
  }
  amendConsultation(_meetingId: MeetingId, _text: string): Promise<RelayConsultationRecord> {
    return Promise.reject(new EngineError("unauthenticated", STAFF_ONLY));
  }
  /** The guest page keeps nothing after a meeting. */
  localMeetings(): Promise<LocalMeeting[]> {
    return Promise.resolve([]);
  }
  pastMeetings(_filter: PastFilter): Promise<PastMeeting[]> {
    return Promise.reject(new EngineError("unauthenticated", STAFF_ONLY));
  }
  clinicMeetings(): Promise<ClinicMeeting[]> {
    return Promise.reject(new EngineError("unauthenticated", STAFF_ONLY));
  }
  joinAsStaff(_meetingId: MeetingId, _displayName: string, _options: JoinOptions): Promise<JoinOutcome> {
    return Promise.reject(new EngineError("unauthenticated", STAFF_ONLY));
  }
  cancelMeeting(_meetingId: MeetingId): Promise<void> {
    return Promise.reject(new EngineError("unauthenticated", STAFF_ONLY));
  }
  saveInvitation(_meetingId: MeetingId): Promise<string> {
    return Promise.reject(new EngineError("unauthenticated", STAFF_ONLY));
  }

  // --- meetings ----------------------------------------------------------------

  async join(accessCode: string, displayName: string, options: JoinOptions): Promise<JoinOutcome> {
    await this.connect();
    this.inCall = true;
    this.chatOnly = options.chatOnly;
    try {
      if (options.chatOnly) {
        this.stopLocal();
      } else {
        if (!this.local) await this.ensureLocal();
        if (!options.camera) this.dropTrack("video");
        for (const t of this.local?.getAudioTracks() ?? []) t.enabled = options.mic;
      }
      this.media = {
        audio: options.mic && !options.chatOnly && this.hasTrack("audio"),
        video: options.camera && !options.chatOnly && this.hasTrack("video"),
        screen: false,
      };
      // Known before the join state arrives, so one's own tile shows the camera at once.
      this.emit({ event: "video", participant_id: LOCAL_PARTICIPANT, available: this.media.video });
      const r = await this.request({ type: "join", access_code: accessCode, display_name: displayName, media: this.media });
      const outcome = joinOutcome(r);
      this.self = outcome.state === "joined" ? outcome.join.you.id : outcome.participant_id;
      if (outcome.state === "joined") void this.startMedia();
      return outcome;
    } catch (e) {
      this.inCall = false;
      throw e;
    }
  }

  async leave(): Promise<void> {
    await this.request({ type: "leave" }).catch(() => undefined);
    this.inCall = false;
    this.stopMedia();
    this.stopLocal();
    this.closingOnPurpose = true;
    this.ws?.close();
  }

  // --- moderation (the relay decides who may) ------------------------------------

  async admit(participantId: ParticipantId): Promise<void> {
    await this.request({ type: "admit", participant_id: participantId });
  }
  async deny(participantId: ParticipantId): Promise<void> {
    await this.request({ type: "deny", participant_id: participantId });
  }
  async mute(participantId: ParticipantId): Promise<void> {
    await this.request({ type: "mute", participant_id: participantId });
  }
  async allowUnmute(participantId: ParticipantId): Promise<void> {
    await this.request({ type: "allow_unmute", participant_id: participantId });
  }
  async remove(participantId: ParticipantId): Promise<void> {
    await this.request({ type: "remove", participant_id: participantId });
  }
  async promote(participantId: ParticipantId): Promise<void> {
    await this.request({ type: "promote", participant_id: participantId });
  }
  async demote(participantId: ParticipantId): Promise<void> {
    await this.request({ type: "demote", participant_id: participantId });
  }
  async setSelfUnmute(allowed: boolean): Promise<void> {
    await this.request({ type: "set_self_unmute", allowed });
  }
  async setLocked(locked: boolean): Promise<void> {
    await this.request({ type: "set_locked", locked });
  }
  rekeyMeeting(): Promise<Rekeyed> {
    // A browser guest is never the host (hosts are enrolled staff in the app).
    return Promise.reject(new EngineError("forbidden", "Only the meeting's host can issue a new code, from the ClinicMeet app."));
  }
  async endMeeting(): Promise<void> {
    await this.request({ type: "end_meeting" });
  }

  // --- chat ------------------------------------------------------------------------

  async sendChat(text: string, staffOnly: boolean): Promise<Uuid> {
    const id = uuid();
    const pending = { text, staff_only: staffOnly, created_at: Date.now() };
    this.outbox.set(id, pending);
    this.emit({ event: "chat_status", client_msg_id: id, status: "sending", pending });
    void this.deliver(id);
    return id;
  }

  async retryChat(clientMsgId: Uuid): Promise<void> {
    const pending = this.outbox.get(clientMsgId);
    if (!pending) return;
    this.emit({ event: "chat_status", client_msg_id: clientMsgId, status: "sending", pending });
    await this.deliver(clientMsgId);
  }

  private async deliver(id: Uuid): Promise<void> {
    const m = this.outbox.get(id);
    if (!m) return;
    try {
      const r = await this.request({ type: "send_chat", client_msg_id: id, text: m.text, staff_only: m.staff_only });
      this.outbox.delete(id);
      const message = r.message as ChatMessage;
      this.emit({ event: "chat_status", client_msg_id: id, status: "sent", seq: message.seq });
      this.emit(chatEvent(message, true));
    } catch (e) {
      // The relay stored nothing; transient refusals keep the message and try again.
      if (e instanceof EngineError && RETRYABLE.has(e.code) && this.outbox.has(id)) {
        const delay = e.retryAfterMs ?? 1000;
        this.emit({ event: "chat_status", client_msg_id: id, status: "sending", error: e.code, retry_in_ms: delay });
        setTimeout(() => void this.deliver(id), delay);
        return;
      }
      this.emit({ event: "chat_status", client_msg_id: id, status: "failed", error: errorText(e) });
    }
  }

  async typing(typing: boolean): Promise<void> {
    await this.request({ type: "typing", typing });
  }

  async chatHistory(_meetingId: MeetingId): Promise<ChatMessage[]> {
    const r = await this.request({ type: "chat_history", since_seq: 0, limit: 500 });
    return Array.isArray(r.messages) ? (r.messages as ChatMessage[]) : [];
  }

  // --- devices -----------------------------------------------------------------------

  mediaWarning(): string | null {
    return hasH264() ? null : NO_H264_MESSAGE;
  }

  async listDevices(): Promise<DeviceList> {
    // Labels and ids are only given once the page may use the devices.
    await this.ensureLocal();
    const all = navigator.mediaDevices?.enumerateDevices ? await navigator.mediaDevices.enumerateDevices() : [];
    const pick = (kind: MediaDeviceKind, as: DeviceKind, noun: string): DeviceInfo[] =>
      all
        .filter((d) => d.kind === kind)
        .map((d, i) => ({ id: d.deviceId, label: d.label || `${noun} ${i + 1}`, kind: as, is_default: d.deviceId === "default" || i === 0 }));
    const cameras = pick("videoinput", "camera", "Camera");
    const microphones = pick("audioinput", "microphone", "Microphone");
    let speakers = pick("audiooutput", "speaker", "Speaker");
    // Browsers that do not list outputs play through the system's default one.
    if (speakers.length === 0) speakers = [{ id: "default", label: "System default output", kind: "speaker", is_default: true }];
    const current = (kind: "audio" | "video") => this.local?.getTracks().find((t) => t.kind === kind)?.getSettings().deviceId ?? null;
    return {
      cameras,
      microphones,
      speakers,
      selected: {
        camera: current("video") ?? this.selected.camera ?? cameras[0]?.id ?? null,
        microphone: current("audio") ?? this.selected.microphone ?? microphones[0]?.id ?? null,
        speaker: this.selected.speaker ?? speakers[0]?.id ?? null,
      },
    };
  }

  async selectDevice(kind: DeviceKind, deviceId: string): Promise<void> {
    this.selected[kind] = deviceId;
    if (kind === "speaker") {
      for (const a of this.players.values()) await this.setSink(a);
      return;
    }
    if (!this.inCall) return; // the device check restarts its preview
    const mediaKind = kind === "camera" ? "video" : "audio";
    if (!this.hasTrack(mediaKind)) return;
    const { stream, error } = await this.acquire(mediaKind === "video", mediaKind === "audio");
    if (error) throw error;
    const track = stream?.getTracks()[0];
    if (track) await this.useTrack(track);
  }

  async startPreview(): Promise<void> {
    if (this.inCall) return;
    // Opens the selected devices (again, if the pick changed since).
    const error = await this.ensureLocal();
    if (error) throw error;
  }

  async stopPreview(): Promise<void> {
    // The call keeps the devices the preview opened.
    if (!this.inCall) this.stopLocal();
  }

  videoStream(participantId: string): MediaStream | null {
    if (participantId === LOCAL_PARTICIPANT) return this.local && this.hasTrack("video") ? this.local : null;
    const mid = this.slots.midOf(participantId, "video");
    return mid === null ? null : (this.remoteVideo.get(mid) ?? null);
  }

  /** Opens camera and microphone once per device pick (shared by the device list and the
   * preview, which ask at the same time); what it could not open comes back as an error. */
  private ensureLocal(): Promise<EngineError | null> {
    const key = `${this.selected.camera ?? ""}|${this.selected.microphone ?? ""}`;
    if (this.acquiring && this.acquiringKey === key) return this.acquiring;
    this.stopLocal();
    const attempt = this.acquire(true, true).then(({ stream, error }) => {
      if (this.acquiring !== attempt) {
        // Superseded (another pick, or stopped) while the browser asked.
        for (const t of stream?.getTracks() ?? []) t.stop();
        return error;
      }
      if (stream) this.setLocal(stream);
      return error;
    });
    this.acquiring = attempt;
    this.acquiringKey = key;
    return attempt;
  }

  private setLocal(stream: MediaStream): void {
    this.local = stream;
    this.emit({ event: "video", participant_id: LOCAL_PARTICIPANT, available: this.hasTrack("video") });
    this.startMeter();
  }

  /** Opens what it can of camera / microphone; says clearly what failed. */
  private async acquire(camera: boolean, mic: boolean): Promise<{ stream: MediaStream | null; error: EngineError | null }> {
    const what = camera && mic ? "camera and microphone" : camera ? "camera" : "microphone";
    if (!navigator.mediaDevices?.getUserMedia) return { stream: null, error: deviceError("NoSecureContext", what) };
    const constraints = (v: boolean, a: boolean): MediaStreamConstraints => ({
      video: v ? { ...VIDEO_CONSTRAINTS, ...(this.selected.camera ? { deviceId: { exact: this.selected.camera } } : {}) } : false,
      audio: a ? (this.selected.microphone ? { deviceId: { exact: this.selected.microphone } } : true) : false,
    });
    const name = (e: unknown) => (e instanceof DOMException || e instanceof Error ? e.name : "");
    try {
      return { stream: await navigator.mediaDevices.getUserMedia(constraints(camera, mic)), error: null };
    } catch (e) {
      if (!(camera && mic)) return { stream: null, error: deviceError(name(e), what) };
    }
    // One of the two failed: keep the other.
    const tracks: MediaStreamTrack[] = [];
    const failed: { kind: "camera" | "microphone"; name: string }[] = [];
    for (const [kind, v, a] of [["camera", true, false], ["microphone", false, true]] as const) {
      try {
        tracks.push(...(await navigator.mediaDevices.getUserMedia(constraints(v, a))).getTracks());
      } catch (e) {
        failed.push({ kind, name: name(e) });
      }
    }
    const [first] = failed;
    const error = first ? deviceError(first.name, failed.length === 2 && failed[1]?.name === first.name ? "camera and microphone" : first.kind) : null;
    return { stream: tracks.length > 0 ? new MediaStream(tracks) : null, error };
  }

  private hasTrack(kind: "audio" | "video"): boolean {
    return !!this.local?.getTracks().some((t) => t.kind === kind && t.readyState === "live");
  }

  /** Stops and forgets one kind of local track (the camera light goes off). */
  private dropTrack(kind: "audio" | "video"): void {
    for (const t of this.local?.getTracks() ?? []) {
      if (t.kind !== kind) continue;
      t.stop();
      this.local?.removeTrack(t);
    }
    if (kind === "video") this.emit({ event: "video", participant_id: LOCAL_PARTICIPANT, available: false });
  }

  /** Puts a new local track in place of the old one of its kind, also on the wire. */
  private async useTrack(track: MediaStreamTrack): Promise<void> {
    const kind = track.kind as "audio" | "video";
    for (const t of this.local?.getTracks() ?? []) {
      if (t.kind === kind && t !== track) {
        t.stop();
        this.local?.removeTrack(t);
      }
    }
    if (!this.local) this.local = new MediaStream();
    this.local.addTrack(track);
    await this.sender(kind)?.replaceTrack(track);
    if (kind === "video") {
      // A new stream object so tiles re-attach.
      this.local = new MediaStream(this.local.getTracks());
      this.emit({ event: "video", participant_id: LOCAL_PARTICIPANT, available: false });
      this.emit({ event: "video", participant_id: LOCAL_PARTICIPANT, available: true });
    } else this.startMeter();
  }

  /** The sender of one's own audio or video (the first two transceivers). */
  private sender(kind: "audio" | "video"): RTCRtpSender | null {
    return this.pc?.getTransceivers().find((t) => t.direction === "sendonly" && t.receiver.track.kind === kind)?.sender ?? null;
  }

  private stopLocal(): void {
    for (const t of this.local?.getTracks() ?? []) t.stop();
    const had = this.local !== null;
    this.local = null;
    this.acquiring = null;
    this.stopMeter();
    if (had) this.emit({ event: "video", participant_id: LOCAL_PARTICIPANT, available: false });
  }

  /** Local microphone level for the meter and the speaking highlight. */
  private startMeter(): void {
    this.stopMeter();
    const track = this.local?.getAudioTracks()[0];
    if (!track || typeof AudioContext === "undefined") return;
    try {
      const ctx = new AudioContext();
      const analyser = ctx.createAnalyser();
      analyser.fftSize = 512;
      ctx.createMediaStreamSource(new MediaStream([track])).connect(analyser);
      const buf = new Uint8Array(analyser.fftSize);
      const timer = setInterval(() => {
        analyser.getByteTimeDomainData(buf);
        const level = track.enabled && track.readyState === "live" ? levelFromBytes(buf) : 0;
        this.emit({ event: "audio_level", participant_id: LOCAL_PARTICIPANT, level });
      }, 100);
      void ctx.resume().catch(() => undefined);
      this.meter = { ctx, timer };
    } catch {
      // No audio processing here: the meter stays still, the call works.
    }
  }

  private stopMeter(): void {
    if (!this.meter) return;
    clearInterval(this.meter.timer);
    void this.meter.ctx.close().catch(() => undefined);
    this.meter = null;
  }

  async updateMedia(media: MediaState): Promise<void> {
    if (media.screen) throw new EngineError("invalid_input", "Screen sharing is not available on the browser page. Use the ClinicMeet app to share your screen.");
    if (media.video && !this.hasTrack("video")) {
      const { stream, error } = await this.acquire(true, false);
      const track = stream?.getVideoTracks()[0];
      if (!track) throw error ?? deviceError("NotFoundError", "camera");
      await this.useTrack(track);
    }
    if (!media.video && this.hasTrack("video")) {
      this.dropTrack("video");
      await this.sender("video")?.replaceTrack(null);
    }
    if (media.audio && !this.hasTrack("audio")) {
      const { stream, error } = await this.acquire(false, true);
      const track = stream?.getAudioTracks()[0];
      if (!track) throw error ?? deviceError("NotFoundError", "microphone");
      await this.useTrack(track);
    }
    for (const t of this.local?.getAudioTracks() ?? []) t.enabled = media.audio;
    this.media = { ...media };
    await this.request({ type: "update_media", media: this.media });
    if (this.chatOnly && (media.audio || media.video)) {
      this.chatOnly = false;
      void this.startMedia();
    }
  }

  // --- WebRTC ---------------------------------------------------------------------------

  private onRtc(signal: RtcSignal): void {
    switch (signal.type) {
      case "answer":
        this.answerWaiter?.(signal.sdp);
        this.answerWaiter = null;
        return;
      case "error":
        this.emit({ event: "media_error", message: signal.message });
        return;
      default:
        for (const c of this.slots.apply(signal)) this.applySlot(c);
    }
  }

  /** A slot change as the page must show or play it (once the answer is in). */
  private applySlot(c: SlotChange): void {
    if (c.available) {
      if (!this.remoteReady) return; // announced again when the connection is set up
      const tr = this.pc?.getTransceivers().find((t) => t.mid === c.mid);
      if (!tr) return;
      const stream = new MediaStream([tr.receiver.track]);
      if (c.kind === "video") {
        this.remoteVideo.set(c.mid, stream);
        this.emit({ event: "video", participant_id: c.participant_id, available: true });
      } else this.play(c.mid, stream);
      return;
    }
    if (c.kind === "video") {
      if (this.remoteVideo.delete(c.mid)) this.emit({ event: "video", participant_id: c.participant_id, available: false });
    } else this.silence(c.mid);
  }

  private play(mid: string, stream: MediaStream): void {
    this.silence(mid);
    const a = new Audio();
    a.autoplay = true;
    a.srcObject = stream;
    void this.setSink(a);
    void a.play().catch(() => undefined);
    this.players.set(mid, a);
  }

  private silence(mid: string): void {
    const a = this.players.get(mid);
    if (!a) return;
    a.pause();
    a.srcObject = null;
    this.players.delete(mid);
  }

  private async setSink(a: HTMLAudioElement): Promise<void> {
    const id = this.selected.speaker;
    const withSink = a as HTMLAudioElement & { setSinkId?: (id: string) => Promise<void> };
    if (id && id !== "default" && withSink.setSinkId) await withSink.setSinkId(id).catch(() => undefined);
  }

  private async startMedia(): Promise<void> {
    if (this.pc || this.chatOnly) return;
    if (!hasH264()) {
      this.emit({ event: "media_error", message: NO_H264_MESSAGE });
      return;
    }
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
    this.pc = pc;
    this.remoteReady = false;
    const h264 = h264Codecs(RTCRtpSender.getCapabilities("video")?.codecs ?? []);
    const preferH264 = (t: RTCRtpTransceiver) => {
      if (h264.length && t.setCodecPreferences) t.setCodecPreferences(h264);
    };
    const mic = this.local?.getAudioTracks()[0] ?? null;
    const cam = this.local?.getVideoTracks()[0] ?? null;
    const streams = this.local ? { streams: [this.local] } : {};
    pc.addTransceiver(mic ?? "audio", { direction: "sendonly", ...streams });
    preferH264(pc.addTransceiver(cam ?? "video", { direction: "sendonly", ...streams }));
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
    if (this.pc !== pc) return;
    const answer = new Promise<string>((resolve) => (this.answerWaiter = resolve));
    this.ws?.send(JSON.stringify({ webrtc: { offer: pc.localDescription?.sdp ?? "" } }));
    const sdp = await answer;
    if (this.pc !== pc) return;
    await pc.setRemoteDescription({ type: "answer", sdp });
    this.remoteReady = true;
    for (const c of this.slots.all()) this.applySlot(c);
    this.startStats(pc);
  }

  /** Remote speaking levels and the connection quality, from `getStats`. */
  private startStats(pc: RTCPeerConnection): void {
    let tick = 0;
    this.statsTimer = setInterval(() => {
      tick += 1;
      void pc.getStats().then((report) => {
        let rtt: number | null = null;
        let lost = 0;
        let received = 0;
        report.forEach((s: Record<string, unknown>) => {
          if (s.type === "inbound-rtp") {
            lost += typeof s.packetsLost === "number" ? s.packetsLost : 0;
            received += typeof s.packetsReceived === "number" ? s.packetsReceived : 0;
            const slot = typeof s.mid === "string" ? this.slots.at(s.mid) : null;
            if (s.kind === "audio" && slot && typeof s.audioLevel === "number") {
              this.emit({ event: "audio_level", participant_id: slot.participant_id, level: Math.min(1, s.audioLevel * 3) });
            }
          } else if (s.type === "candidate-pair" && s.nominated && typeof s.currentRoundTripTime === "number") {
            rtt = s.currentRoundTripTime * 1000;
          }
        });
        if (tick % 4 !== 0 || rtt === null) return;
        const prev = this.lastLoss;
        this.lastLoss = { lost, received };
        const dl = prev ? lost - prev.lost : 0;
        const dr = prev ? received - prev.received : 0;
        const loss = dl + dr > 0 ? Math.max(0, dl) / (dl + dr) : 0;
        this.emit({ event: "quality", quality: qualityOf(rtt, loss), rtt_ms: Math.round(rtt), loss });
      });
    }, 250);
  }

  private stopMedia(): void {
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.statsTimer = null;
    this.lastLoss = null;
    for (const c of this.slots.all()) this.applySlot({ ...c, available: false });
    this.slots.clear();
    this.pc?.close();
    this.pc = null;
    this.remoteReady = false;
    this.answerWaiter = null;
  }
}
