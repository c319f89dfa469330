// DemoEngine: the whole Engine in memory, with a simulated relay, so the UI runs
// in a plain browser (`npm run dev`) and can be screenshotted headless.
// Simulated: a remote participant who answers in chat and sends synthetic video,
// a person who arrives in the waiting room, audio levels, a reconnect on demand.

import type {
  ConnectionState,
  ConsultationEnded,
  ClinicMeeting,
  ConsultationRecord,
  CreatedMeeting,
  LocalMeeting,
  DashboardMeeting,
  DeviceKind,
  DeviceList,
  Engine,
  EngineEvent,
  EngineListener,
  FrameListener,
  HelloInfo,
  JoinOptions,
  JoinOutcome,
  Rekeyed,
  RelayConfig,
  Unsubscribe,
  VideoFrame,
} from "./engine";
import { EngineError, LOCAL_PARTICIPANT } from "./engine";
import type { PendingChat } from "./generated";
import type {
  ChatMessage,
  Entered,
  MediaState,
  MeetingId,
  MeetingInfo,
  MeetingSpec,
  ParticipantId,
  ParticipantInfo,
  PastFilter,
  PastMeeting,
  RelayConsultationRecord,
  StaffIdentity,
  SystemLine,
  Uuid,
  WaitingInfo,
} from "./types";
import { defaultSettings, isOver, MAX_DISPLAY_NAME_CHARS } from "./types";
import { ALPHABET, INVITE_LEN, parseJoinSecret } from "../state/accessCode";
import { drawSyntheticI420 } from "./synthetic";

/** The key hash the simulated relay presents. */
export const DEMO_PIN = "5f:3a:9c:0e:71:b2:48:d6:aa:13:c4:29:8e:f0:57:6b:92:3d:e1:0c:b8:44:7a:26:d9:31:5e:c7:08:fa:63:b5";
export const DEMO_RELAY = "relay.clinic.example:4433";
/** Enrollment codes the demo accepts: any of at least 6 characters except this one. */
export const DEMO_BAD_ENROLLMENT = "EXPIRED";

export interface DemoOptions {
  /** No camera and no microphone (to show the device messages). */
  noDevices?: boolean;
  /** Start already set up (relay saved, enrolled as this staff name). */
  staffName?: string;
  /** Persist relay/enrollment in localStorage. */
  persist?: boolean;
  /** Speed factor for simulated delays (tests use a large one). */
  speed?: number;
}

interface DemoMeeting {
  info: MeetingInfo;
  code: string;
  /** The invite link's secret. */
  invite: string;
  hostIsMe: boolean;
  chat: ChatMessage[];
  notes: ChatMessage[];
}

function normPin(pin: string): string {
  return pin.replace(/[^0-9a-f]/gi, "").toLowerCase();
}

function uuid(): Uuid {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === "function") return c.randomUUID();
  return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, (ch) => {
    const r = (Math.random() * 16) | 0;
    return (ch === "x" ? r : (r & 0x3) | 0x8).toString(16);
  });
}

function randomChars(n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += ALPHABET[Math.floor(Math.random() * ALPHABET.length)];
  return s;
}

function randomCode(): string {
  const s = randomChars(8);
  return `${s.slice(0, 4)}-${s.slice(4)}`;
}

const REPLIES = [
  "Yes, I can hear you clearly.",
  "Thank you, that makes sense.",
  "The pain is a bit better since Tuesday.",
  "Could you repeat the dosage, please?",
  "I have the prescription here.",
];

export class DemoEngine implements Engine {
  private listeners = new Set<EngineListener>();
  private frameListeners = new Set<FrameListener>();
  private relay: RelayConfig | null = null;
  private staff: StaffIdentity | null = null;
  private connection: ConnectionState = "disconnected";
  private meetings = new Map<MeetingId, DemoMeeting>();
  private records = new Map<MeetingId, ConsultationRecord>();
  /** The simulated relay's consultation records (notes written once, amendments appended). */
  private relayRecords = new Map<MeetingId, RelayConsultationRecord>();
  /** Meetings this device took part in (the simulated local store). */
  private joinedIds = new Set<MeetingId>();
  private current: DemoMeeting | null = null;
  private you: ParticipantInfo | null = null;
  private remotes = new Map<ParticipantId, ParticipantInfo>();
  private waiting: WaitingInfo[] = [];
  private outbox = new Map<Uuid, PendingChat & { failOnce: boolean }>();
  private timers = new Set<ReturnType<typeof setTimeout>>();
  private intervals = new Set<ReturnType<typeof setInterval>>();
  private mediaLoop: ReturnType<typeof setInterval> | null = null;
  private previewing = false;
  private frameNo = 0;
  private frameBufs = new Map<string, Uint8Array>();
  private selected: Record<DeviceKind, string | null>;
  private joinOptions: JoinOptions = { camera: true, mic: true, chatOnly: false };
  private readonly opts: Required<Omit<DemoOptions, "staffName">> & { staffName: string | null };
  private replyIndex = 0;

  constructor(options: DemoOptions = {}) {
    this.opts = {
      noDevices: options.noDevices ?? false,
      staffName: options.staffName ?? null,
      persist: options.persist ?? false,
      speed: options.speed ?? 1,
    };
    this.selected = this.opts.noDevices
      ? { camera: null, microphone: null, speaker: null }
      : { camera: "cam-0", microphone: "mic-0", speaker: "spk-0" };
    if (this.opts.persist) this.restore();
    if (this.opts.staffName) {
      this.relay = { address: DEMO_RELAY, pin: DEMO_PIN };
      this.staff = { staff_id: uuid(), name: this.opts.staffName };
    }
    this.seed();
  }

  // ---- plumbing --------------------------------------------------------------

  private emit(event: EngineEvent): void {
    for (const l of [...this.listeners]) l(event);
  }

  private later(ms: number, f: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      f();
    }, ms / this.opts.speed);
    this.timers.add(t);
  }

  private every(ms: number, f: () => void): ReturnType<typeof setInterval> {
    const t = setInterval(f, ms / this.opts.speed);
    this.intervals.add(t);
    return t;
  }

  private async delay(ms: number): Promise<void> {
    await new Promise<void>((resolve) => this.later(ms, resolve));
  }

  /** Stops every timer (tests, page unload). */
  dispose(): void {
    for (const t of this.timers) clearTimeout(t);
    for (const t of this.intervals) clearInterval(t);
    this.timers.clear();
    this.intervals.clear();
    this.mediaLoop = null;
  }

  private restore(): void {
    try {
      const raw = globalThis.localStorage?.getItem("clinicmeet.demo");
      if (!raw) return;
      const saved = JSON.parse(raw) as { relay?: RelayConfig; staff?: StaffIdentity };
      this.relay = saved.relay ?? null;
      this.staff = saved.staff ?? null;
    } catch {
      // Corrupt storage: start fresh.
    }
  }

  private save(): void {
    if (!this.opts.persist) return;
    try {
      globalThis.localStorage?.setItem("clinicmeet.demo", JSON.stringify({ relay: this.relay, staff: this.staff }));
    } catch {
      // Storage unavailable: the demo still runs.
    }
  }

  private seed(): void {
    const now = Date.now();
    const huddle = this.addMeeting(
      {
        title: "Morning huddle",
        description: "Ward rounds and handover",
        kind: "video",
        settings: { ...defaultSettings() },
      },
      "HUDL-2345",
      false,
      "Dr. Mara Weiss",
    );
    huddle.info.status = "active";
    huddle.info.started_at = now - 12 * 60_000;
    // A long history to exercise the virtualized list.
    for (let i = 1; i <= 400; i++) {
      huddle.chat.push({
        meeting_id: huddle.info.id,
        seq: i,
        client_msg_id: uuid(),
        sender_id: "seed-" + (i % 3),
        sender_name: ["Nurse Tom", "Dr. Mara Weiss", "Dr. Li"][i % 3] ?? "Staff",
        sender_verified: true,
        text: i % 7 === 0 ? `Bed ${i % 20}: observations stable, next check at ${8 + (i % 10)}:00. <b>not bold</b>` : `Handover item ${i}`,
        staff_only: false,
        sent_at: now - (400 - i) * 20_000,
      });
    }
    huddle.chat.push(systemMessage(huddle.info.id, huddle.chat.length + 1, "recording_started", "seed-1", "Dr. Mara Weiss", now - 30_000));
    huddle.chat.push(systemMessage(huddle.info.id, huddle.chat.length + 1, "joined", "seed-2", "Dr. Li", now - 10_000));
    const consult = this.addMeeting(
      {
        title: "Follow-up: knee",
        kind: "consultation",
        patient_reference: "PR-20931",
        settings: { ...defaultSettings(), waiting_room: true, allow_screen_share: false },
      },
      "CARE-7788",
      true,
      null,
    );
    consult.info.status = "scheduled";
    consult.info.schedule = { start: now + 30 * 60_000, time_zone: "Europe/Berlin" };
    this.records.set(consult.info.id, this.recordOf(consult));
    const day = 86_400_000;
    const past: Array<[string, string, number, number, string]> = [
      ["Post-op review", "PR-18812", now - day - 3 * 3_600_000, 14 * 60, "Wound healing well. Remove sutures on day 10."],
      ["Medication check", "PR-20117", now - 2 * day - 5 * 3_600_000, 9 * 60, "Reduce ibuprofen to 400 mg twice daily."],
    ];
    for (const [title, ref, start, dur, notes] of past) {
      const id = uuid();
      this.records.set(id, {
        meeting_id: id,
        title,
        patient_reference: ref,
        access_code: null,
        status: "completed",
        created_at: start - 600_000,
        started_at: start,
        ended_at: start + dur * 1000,
        duration_secs: dur,
        notes,
      });
      const record = this.relayRecordOf(this.records.get(id)!);
      record.notes = { text: notes, author_name: this.staff?.name ?? "Dr. Mara Weiss", written_at: start + dur * 1000 + 120_000 };
      if (title === "Post-op review") {
        record.amendments.push({ seq: 1, text: "Patient called: mild redness at the wound; keep the day-10 plan.", author_name: record.notes.author_name, at: start + day / 2 });
      }
      this.relayRecords.set(id, record);
    }
    // A team meeting last week, over, with its chat kept.
    const review = this.addMeeting({ title: "Case review: ward 3", kind: "video", settings: defaultSettings() }, "REVW7788", false, "Dr. Li");
    const at = now - 6 * day;
    Object.assign(review.info, { status: "ended", created_at: at - 600_000, started_at: at, ended_at: at + 25 * 60_000 });
    review.chat.push(systemMessage(review.info.id, 1, "joined", "seed-2", "Dr. Li", at));
    review.chat.push(systemMessage(review.info.id, 2, "joined", "seed-1", this.staff?.name ?? "Dr. Mara Weiss", at + 60_000));
    review.chat.push({ meeting_id: review.info.id, seq: 3, client_msg_id: uuid(), sender_id: "seed-2", sender_name: "Dr. Li", sender_verified: true, text: "Bed 4 goes home tomorrow if the bloods are fine.", staff_only: false, sent_at: at + 5 * 60_000 });
    review.chat.push(systemMessage(review.info.id, 4, "recording_started", "seed-2", "Dr. Li", at + 6 * 60_000));
    review.chat.push(systemMessage(review.info.id, 5, "left", "seed-2", "Dr. Li", at + 25 * 60_000));
    this.joinedIds.add(review.info.id);
  }

  private addMeeting(spec: MeetingSpec, code: string, hostIsMe: boolean, hostName: string | null): DemoMeeting {
    const info: MeetingInfo = {
      id: uuid(),
      title: spec.title,
      kind: spec.kind,
      status: spec.schedule ? "scheduled" : "active",
      host_name: hostName ?? this.staff?.name ?? "Host",
      locked: false,
      settings: { ...spec.settings },
      created_at: Date.now(),
    };
    if (spec.description) info.description = spec.description;
    if (spec.patient_reference) info.patient_reference = spec.patient_reference;
    if (spec.schedule) info.schedule = { ...spec.schedule };
    const m: DemoMeeting = { info, code, invite: randomChars(INVITE_LEN), hostIsMe, chat: [], notes: [] };
    this.meetings.set(info.id, m);
    return m;
  }

  private recordOf(m: DemoMeeting): ConsultationRecord {
    return {
      meeting_id: m.info.id,
      title: m.info.title,
      patient_reference: m.info.patient_reference ?? null,
      access_code: m.hostIsMe ? m.code : null,
      status: m.info.status,
      created_at: m.info.created_at,
      started_at: m.info.started_at ?? null,
      ended_at: m.info.ended_at ?? null,
      duration_secs: null,
      notes: "",
    };
  }

  private setConnection(state: ConnectionState, detail?: string): void {
    this.connection = state;
    this.emit(detail === undefined ? { event: "connection", state } : { event: "connection", state, reason: detail });
  }

  private requireRelay(): void {
    if (this.relay === null || this.connection === "disconnected") {
      throw new EngineError("not_connected", "Not connected to the clinic's server.");
    }
  }

  private requireStaff(): StaffIdentity {
    this.requireRelay();
    if (!this.staff) throw new EngineError("unauthenticated", "This needs an enrolled staff device.");
    return this.staff;
  }

  private requireMeeting(): { m: DemoMeeting; you: ParticipantInfo } {
    if (!this.current || !this.you) throw new EngineError("invalid_state", "Not in a meeting.");
    return { m: this.current, you: this.you };
  }

  private requireModerator(): { m: DemoMeeting; you: ParticipantInfo } {
    const r = this.requireMeeting();
    if (r.you.role !== "host" && r.you.role !== "moderator") throw new EngineError("forbidden", "Moderators only.");
    return r;
  }

  // ---- relay -----------------------------------------------------------------

  async savedRelay(): Promise<RelayConfig | null> {
    return this.relay ? { ...this.relay } : null;
  }

  async connect(relay: RelayConfig): Promise<HelloInfo> {
    const address = relay.address.trim();
    if (!address) throw new EngineError("invalid_input", "Enter the server address.");
    this.setConnection("connecting");
    await this.delay(250);
    if (/unreachable|invalid/i.test(address)) {
      this.setConnection("disconnected", "unreachable");
      throw new EngineError("unreachable", `No answer from ${address}.`);
    }
    if (normPin(relay.pin) !== normPin(DEMO_PIN)) {
      this.setConnection("disconnected", "pin_mismatch");
      throw new EngineError("pin_mismatch", "The server's key does not match the fingerprint you entered.", {
        presentedPin: DEMO_PIN,
      });
    }
    this.relay = { address, pin: relay.pin.trim() };
    this.save();
    this.setConnection("connected");
    return { server: "clinicmeet-relay/0.1.0 (demo)", version: 1, staff: this.staff };
  }

  async disconnect(): Promise<void> {
    this.setConnection("disconnected");
  }

  async enroll(code: string, deviceName: string): Promise<StaffIdentity> {
    this.requireRelay();
    await this.delay(300);
    const c = code.trim();
    if (c.length < 6 || c.toUpperCase() === DEMO_BAD_ENROLLMENT) {
      throw new EngineError("invalid_credential", "That enrollment code is not valid or was already used.");
    }
    this.staff = { staff_id: uuid(), name: deviceName.trim() ? "Dr. Ada Lovelace" : "Staff" };
    this.save();
    return { ...this.staff };
  }

  /** Demo helper: current staff identity (the real engine reports it in `connect`). */
  identity(): StaffIdentity | null {
    return this.staff;
  }

  // ---- meetings --------------------------------------------------------------

  async createMeeting(spec: MeetingSpec): Promise<CreatedMeeting> {
    const staff = this.requireStaff();
    await this.delay(200);
    if (!spec.title.trim()) throw new EngineError("malformed", "title must not be empty");
    if (spec.kind === "consultation" && !spec.patient_reference?.trim()) {
      throw new EngineError("malformed", "a consultation needs a patient reference");
    }
    const m = this.addMeeting(spec, randomCode(), true, staff.name);
    if (spec.kind === "consultation") {
      m.info.status = "scheduled";
      this.records.set(m.info.id, this.recordOf(m));
    }
    return { meeting: structuredClone(m.info), access_code: m.code, invite_secret: m.invite };
  }

  async listMeetings(): Promise<DashboardMeeting[]> {
    this.requireStaff();
    await this.delay(100);
    return [...this.meetings.values()]
      .filter((m) => m.info.status === "active" || m.info.status === "scheduled")
      .map((m) => ({
        meeting: structuredClone(m.info),
        participant_count: m.info.status === "active" ? (m === this.current ? this.remotes.size + 1 : 3) : 0,
        waiting_count: m === this.current ? this.waiting.length : 0,
        access_code: m.code,
        invite_secret: m.hostIsMe ? m.invite : null,
      }));
  }

  async join(accessCode: string, displayName: string, options: JoinOptions): Promise<JoinOutcome> {
    this.requireRelay();
    const secret = parseJoinSecret(accessCode);
    const name = displayName.trim();
    if (!name) throw new EngineError("malformed", "display name must not be empty");
    if ([...name].length > MAX_DISPLAY_NAME_CHARS) throw new EngineError("too_large", "display name is too long");
    await this.delay(300);
    const m = secret ? [...this.meetings.values()].find((x) => x.code === secret || x.invite === secret) : undefined;
    if (!m) throw new EngineError("invalid_code", "invalid access code");
    if (m.info.status === "ended" || m.info.status === "completed" || m.info.status === "cancelled") {
      throw new EngineError("meeting_ended", "meeting has ended");
    }
    if (m.info.locked) throw new EngineError("meeting_locked", "meeting is locked");
    this.joinOptions = { ...options };
    const media: MediaState = options.chatOnly
      ? { audio: false, video: false, screen: false }
      : { audio: options.mic && !m.info.settings.mute_on_join, video: options.camera, screen: false };
    const role = this.staff ? (m.hostIsMe ? "host" : "staff") : "guest";
    this.you = {
      id: uuid(),
      display_name: name,
      role,
      verified_staff: this.staff !== null,
      media,
      audio_locked: false,
      joined_at: Date.now(),
      connected: true,
    };
    this.current = m;
    this.joinedIds.add(m.info.id);
    if (role === "guest" && m.info.settings.waiting_room) {
      // The simulated host lets us in after a few seconds.
      this.later(5000, () => {
        if (this.current === m && this.you) this.emit({ event: "admitted", ...this.enter(m) });
      });
      return { state: "waiting", participant_id: this.you.id, meeting: this.guestView(m.info) };
    }
    return { state: "joined", join: this.enter(m) };
  }

  private guestView(info: MeetingInfo): MeetingInfo {
    const copy = structuredClone(info);
    if (!this.staff) delete copy.patient_reference;
    return copy;
  }

  private enter(m: DemoMeeting): Entered {
    const you = this.you;
    if (!you) throw new EngineError("invalid_state", "not joining");
    if (m.info.status !== "active" && m.info.kind !== "consultation") {
      m.info.status = "active";
      m.info.started_at = Date.now();
    }
    if (m.info.started_at === undefined) m.info.started_at = Date.now();
    this.remotes.clear();
    const remoteName = m.info.kind === "consultation" ? (you.role === "guest" ? m.info.host_name : "Jordan Patient") : "Dr. Mara Weiss";
    const remote: ParticipantInfo = {
      id: uuid(),
      display_name: remoteName,
      role: m.info.kind === "consultation" && you.role === "guest" ? "host" : m.hostIsMe ? (m.info.kind === "consultation" ? "guest" : "staff") : "host",
      verified_staff: !(m.info.kind === "consultation" && you.role !== "guest"),
      media: { audio: true, video: m.info.kind !== "audio_only", screen: false },
      audio_locked: false,
      joined_at: Date.now() - 60_000,
      connected: true,
    };
    this.remotes.set(remote.id, remote);
    this.waiting = [];
    this.startMedia();
    // Our own camera starts with the meeting (the device-check preview was a separate session).
    if (you.media.video && this.selected.camera !== null) {
      this.later(100, () => this.emit({ event: "video", participant_id: LOCAL_PARTICIPANT, available: true }));
    }
    // Remote video begins shortly after joining.
    this.later(400, () => {
      if (remote.media.video && this.remotes.has(remote.id)) this.emit({ event: "video", participant_id: remote.id, available: true });
    });
    // A guest arrives in the waiting room (moderators see the badge).
    if (you.role === "host" || you.role === "moderator") {
      this.later(3500, () => {
        if (this.current !== m) return;
        this.waiting = [{ participant_id: uuid(), display_name: "Sam Rivera", since: Date.now() }];
        this.emit({ event: "waiting_room", waiting: [...this.waiting] });
      });
    }
    return {
      meeting: this.guestView(m.info),
      you: { ...you },
      participants: [{ ...you }, ...[...this.remotes.values()].map((p) => ({ ...p }))],
      waiting: [...this.waiting],
      tracks: [],
      resumed: false,
    };
  }

  async leave(): Promise<void> {
    this.stopMedia();
    this.current = null;
    this.you = null;
    this.remotes.clear();
    this.waiting = [];
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  // ---- moderation ------------------------------------------------------------

  async admit(participantId: ParticipantId): Promise<void> {
    this.requireModerator();
    const w = this.waiting.find((x) => x.participant_id === participantId);
    if (!w) throw new EngineError("not_found", "nobody waiting with that id");
    this.waiting = this.waiting.filter((x) => x !== w);
    this.emit({ event: "waiting_room", waiting: [...this.waiting] });
    const p: ParticipantInfo = {
      id: w.participant_id,
      display_name: w.display_name,
      role: "guest",
      verified_staff: false,
      media: { audio: true, video: true, screen: false },
      audio_locked: false,
      joined_at: Date.now(),
      connected: true,
    };
    this.remotes.set(p.id, p);
    this.emit({ event: "participant_joined", participant: { ...p } });
    this.systemLine("admitted", p.id, p.display_name);
    this.later(300, () => {
      if (this.remotes.has(p.id)) this.emit({ event: "video", participant_id: p.id, available: true });
    });
  }

  async deny(participantId: ParticipantId): Promise<void> {
    this.requireModerator();
    const before = this.waiting.length;
    this.waiting = this.waiting.filter((x) => x.participant_id !== participantId);
    if (this.waiting.length === before) throw new EngineError("not_found", "nobody waiting with that id");
    this.emit({ event: "waiting_room", waiting: [...this.waiting] });
  }

  async mute(participantId: ParticipantId): Promise<void> {
    const { m } = this.requireModerator();
    const p = this.remotes.get(participantId);
    if (!p) throw new EngineError("not_found", "no such participant");
    p.media = { ...p.media, audio: false };
    p.audio_locked = !m.info.settings.allow_self_unmute && p.role !== "moderator";
    this.emit({ event: "media_changed", participant_id: p.id, media: { ...p.media }, audio_locked: p.audio_locked });
  }

  async allowUnmute(participantId: ParticipantId): Promise<void> {
    this.requireModerator();
    const p = this.remotes.get(participantId);
    if (!p) throw new EngineError("not_found", "no such participant");
    p.audio_locked = false;
    this.emit({ event: "media_changed", participant_id: p.id, media: { ...p.media }, audio_locked: false });
  }

  async setSelfUnmute(allowed: boolean): Promise<void> {
    const { m } = this.requireModerator();
    m.info.settings.allow_self_unmute = allowed;
    this.emit({ event: "meeting_updated", meeting: this.guestView(m.info) });
  }

  async rekeyMeeting(): Promise<Rekeyed> {
    const { m, you } = this.requireMeeting();
    if (you.role !== "host") throw new EngineError("forbidden", "Only the host can issue a new code.");
    await this.delay(150);
    m.code = randomCode();
    m.invite = randomChars(INVITE_LEN);
    return { access_code: m.code, invite_secret: m.invite };
  }

  async remove(participantId: ParticipantId): Promise<void> {
    this.requireModerator();
    if (!this.remotes.delete(participantId)) throw new EngineError("not_found", "no such participant");
    this.emit({ event: "video", participant_id: participantId, available: false });
    this.emit({ event: "participant_left", participant_id: participantId, reason: "removed" });
  }

  async promote(participantId: ParticipantId): Promise<void> {
    const { you } = this.requireMeeting();
    if (you.role !== "host") throw new EngineError("forbidden", "host only");
    const p = this.remotes.get(participantId);
    if (!p) throw new EngineError("not_found", "no such participant");
    p.role = "moderator";
    this.emit({ event: "role_changed", participant_id: p.id, role: "moderator", you: false });
  }

  async demote(participantId: ParticipantId): Promise<void> {
    const { you } = this.requireMeeting();
    if (you.role !== "host") throw new EngineError("forbidden", "host only");
    const p = this.remotes.get(participantId);
    if (!p) throw new EngineError("not_found", "no such participant");
    p.role = p.verified_staff ? "staff" : "guest";
    this.emit({ event: "role_changed", participant_id: p.id, role: p.role, you: false });
  }

  async setLocked(locked: boolean): Promise<void> {
    const { m } = this.requireModerator();
    m.info.locked = locked;
    this.emit({ event: "meeting_updated", meeting: this.guestView(m.info) });
  }

  async endMeeting(): Promise<void> {
    const { m, you } = this.requireMeeting();
    if (you.role !== "host") throw new EngineError("forbidden", "host only");
    m.info.status = "ended";
    m.info.ended_at = Date.now();
    this.emit({ event: "meeting_ended", status: "ended" });
    await this.leave();
  }

  // ---- consultations -----------------------------------------------------------

  async startConsultation(): Promise<void> {
    const { m, you } = this.requireMeeting();
    if (you.role !== "host" || m.info.kind !== "consultation") throw new EngineError("forbidden", "host of a consultation only");
    m.info.status = "active";
    m.info.started_at = Date.now();
    const r = this.records.get(m.info.id) ?? this.recordOf(m);
    r.status = "active";
    r.started_at = m.info.started_at;
    this.records.set(m.info.id, r);
    this.emit({ event: "meeting_updated", meeting: this.guestView(m.info) });
    this.systemLine("consultation_started", you.id, you.display_name);
  }

  /** A line the simulated relay writes into the current meeting's chat itself. */
  private systemLine(kind: SystemLine, participantId: ParticipantId, name: string): void {
    const m = this.current;
    if (!m) return;
    const message = systemMessage(m.info.id, m.chat.length + 1, kind, participantId, name, Date.now());
    m.chat.push(message);
    this.emit({ event: "chat", ...message, own: false });
  }

  async endConsultation(notes: string): Promise<ConsultationEnded> {
    const { m, you } = this.requireMeeting();
    if (you.role !== "host" || m.info.kind !== "consultation") throw new EngineError("forbidden", "host of a consultation only");
    const ended = Date.now();
    const started = m.info.started_at ?? ended;
    m.info.status = "completed";
    m.info.ended_at = ended;
    const duration = Math.round((ended - started) / 1000);
    const r = this.records.get(m.info.id) ?? this.recordOf(m);
    Object.assign(r, { status: "completed", started_at: started, ended_at: ended, duration_secs: duration, notes });
    this.records.set(m.info.id, r);
    this.emit({ event: "meeting_ended", status: "completed" });
    await this.leave();
    return { started_at: started, ended_at: ended, duration_secs: duration };
  }

  async saveConsultationNotes(meetingId: MeetingId, notes: string): Promise<RelayConsultationRecord> {
    const r = this.records.get(meetingId);
    if (!r) throw new EngineError("not_found", "no such consultation");
    r.notes = notes;
    const record = this.relayRecords.get(meetingId) ?? this.relayRecordOf(r);
    if (!notes.trim()) throw new EngineError("malformed", "the notes are empty");
    if (record.notes && record.notes.text !== notes) throw new EngineError("invalid_state", "the notes were already saved; add an amendment instead");
    if (!isOver(r.status)) throw new EngineError("invalid_state", "notes are written once the consultation has ended");
    record.notes ??= { text: notes, author_name: this.staff?.name ?? "Staff", written_at: Date.now() };
    this.relayRecords.set(meetingId, record);
    return structuredClone(record);
  }

  async consultationRecord(meetingId: MeetingId): Promise<RelayConsultationRecord> {
    const r = this.records.get(meetingId);
    if (!r) throw new EngineError("not_found", "no such consultation");
    return structuredClone(this.relayRecords.get(meetingId) ?? this.relayRecordOf(r));
  }

  async amendConsultation(meetingId: MeetingId, text: string): Promise<RelayConsultationRecord> {
    const record = this.relayRecords.get(meetingId);
    if (!record?.notes) throw new EngineError("invalid_state", "save the consultation's notes before amending them");
    if (!text.trim()) throw new EngineError("malformed", "the amendment is empty");
    record.amendments.push({ seq: record.amendments.length + 1, text, author_name: this.staff?.name ?? "Staff", at: Date.now() });
    return structuredClone(record);
  }

  // ---- past meetings -----------------------------------------------------------

  async localMeetings(): Promise<LocalMeeting[]> {
    const rows: LocalMeeting[] = [];
    for (const id of this.joinedIds) {
      const m = this.meetings.get(id);
      if (!m) continue;
      const i = m.info;
      rows.push({ meeting_id: i.id, title: i.title, kind: i.kind, status: i.status, role: m.hostIsMe ? "host" : "guest", patient_reference: i.patient_reference ?? null, last_seen_at: i.ended_at ?? i.started_at ?? i.created_at });
    }
    return rows.sort((a, b) => b.last_seen_at - a.last_seen_at);
  }

  async pastMeetings(filter: PastFilter): Promise<PastMeeting[]> {
    if (!this.staff) throw new EngineError("unauthenticated", "staff only");
    const rows: PastMeeting[] = [];
    for (const [id, r] of this.relayRecords) {
      const local = this.records.get(id);
      if (!local || !isOver(local.status)) continue;
      const row: PastMeeting = { meeting: structuredClone(r.meeting), held: true };
      if (r.notes) row.notes_written_at = r.notes.written_at;
      rows.push(row);
    }
    for (const id of this.joinedIds) {
      const m = this.meetings.get(id);
      if (m && isOver(m.info.status)) rows.push({ meeting: structuredClone(m.info), held: m.hostIsMe });
    }
    const words = (filter.query ?? "").toLowerCase().split(/\s+/).filter((w) => w);
    return rows
      .filter((p) => words.every((w) => p.meeting.title.toLowerCase().includes(w)))
      .filter((p) => {
        const at = p.meeting.started_at ?? p.meeting.created_at;
        return (filter.from == null || at >= filter.from) && (filter.to == null || at < filter.to);
      })
      .sort((a, b) => (b.meeting.started_at ?? b.meeting.created_at) - (a.meeting.started_at ?? a.meeting.created_at));
  }

  // ---- clinic view -------------------------------------------------------------

  async clinicMeetings(): Promise<ClinicMeeting[]> {
    const listed = await this.listMeetings();
    return listed.map(({ access_code: _code, invite_secret: _invite, ...summary }) => ({
      ...summary,
      created_here: this.meetings.get(summary.meeting.id)?.hostIsMe ?? false,
    }));
  }

  async joinAsStaff(meetingId: MeetingId, displayName: string, options: JoinOptions): Promise<JoinOutcome> {
    this.requireStaff();
    const m = this.meetings.get(meetingId);
    if (!m) throw new EngineError("not_found", "no such meeting");
    return this.join(m.code, displayName, options);
  }

  async cancelMeeting(meetingId: MeetingId): Promise<void> {
    this.requireStaff();
    const m = this.meetings.get(meetingId);
    if (!m) throw new EngineError("not_found", "no such meeting");
    if (!m.hostIsMe) throw new EngineError("forbidden", "only its creator may cancel a meeting");
    if (m.info.status !== "scheduled") throw new EngineError("invalid_state", "only a meeting that has not started can be cancelled");
    m.info.status = "cancelled";
    const r = this.records.get(meetingId);
    if (r) r.status = "cancelled";
  }

  async saveInvitation(meetingId: MeetingId): Promise<string> {
    this.requireStaff();
    const m = this.meetings.get(meetingId);
    if (!m) throw new EngineError("not_found", "no such meeting");
    if (!m.hostIsMe) throw new EngineError("forbidden", "only the device that created the meeting knows its link");
    if (!m.info.schedule) throw new EngineError("invalid_input", "This meeting has no start time.");
    return `/home/demo/Downloads/clinicmeet-${meetingId.slice(0, 8)}.ics`;
  }

  /** A local consultation as the relay's record, without notes yet. */
  private relayRecordOf(r: ConsultationRecord): RelayConsultationRecord {
    const meeting: MeetingInfo = {
      id: r.meeting_id,
      title: r.title,
      kind: "consultation",
      status: r.status,
      host_name: this.staff?.name ?? "Host",
      locked: false,
      settings: defaultSettings(),
      created_at: r.created_at,
    };
    if (r.patient_reference) meeting.patient_reference = r.patient_reference;
    if (r.started_at !== null) meeting.started_at = r.started_at;
    if (r.ended_at !== null) meeting.ended_at = r.ended_at;
    const record: RelayConsultationRecord = { meeting, amendments: [] };
    if (r.duration_secs !== null) record.duration_secs = r.duration_secs;
    return record;
  }

  async consultations(): Promise<ConsultationRecord[]> {
    return [...this.records.values()]
      .map((r) => ({ ...r }))
      .sort((a, b) => (b.started_at ?? b.created_at) - (a.started_at ?? a.created_at));
  }

  // ---- media -----------------------------------------------------------------

  async updateMedia(media: MediaState): Promise<void> {
    const { m, you } = this.requireMeeting();
    if (media.screen && !m.info.settings.allow_screen_share) throw new EngineError("forbidden", "screen share is not allowed");
    if ((media.video && this.selected.camera === null) || (media.audio && this.selected.microphone === null)) {
      throw new EngineError("no_device", media.video && this.selected.camera === null ? "No camera found." : "No microphone found.");
    }
    const wasVideo = you.media.video || you.media.screen;
    you.media = { ...media };
    this.joinOptions.chatOnly = false;
    this.emit({ event: "media_changed", participant_id: you.id, media: { ...media }, audio_locked: false });
    const isVideo = media.video || media.screen;
    if (wasVideo !== isVideo) this.emit({ event: "video", participant_id: LOCAL_PARTICIPANT, available: isVideo });
  }

  async listDevices(): Promise<DeviceList> {
    if (this.opts.noDevices) {
      return { cameras: [], microphones: [], speakers: [], selected: { ...this.selected } };
    }
    return {
      cameras: [
        { id: "cam-0", label: "Integrated Camera", kind: "camera", is_default: true },
        { id: "cam-1", label: "USB Document Camera", kind: "camera", is_default: false },
      ],
      microphones: [
        { id: "mic-0", label: "Headset Microphone", kind: "microphone", is_default: true },
        { id: "mic-1", label: "Built-in Microphone", kind: "microphone", is_default: false },
      ],
      speakers: [
        { id: "spk-0", label: "Headset", kind: "speaker", is_default: true },
        { id: "spk-1", label: "Built-in Speakers", kind: "speaker", is_default: false },
      ],
      selected: { ...this.selected },
    };
  }

  async selectDevice(kind: DeviceKind, deviceId: string): Promise<void> {
    const list = await this.listDevices();
    const pool = kind === "camera" ? list.cameras : kind === "microphone" ? list.microphones : list.speakers;
    if (!pool.some((d) => d.id === deviceId)) throw new EngineError("no_device", `No such ${kind}.`);
    this.selected[kind] = deviceId;
  }

  async startPreview(): Promise<void> {
    this.previewing = true;
    this.startMedia();
    if (this.selected.camera !== null) this.emit({ event: "video", participant_id: LOCAL_PARTICIPANT, available: true });
  }

  async stopPreview(): Promise<void> {
    this.previewing = false;
    if (!this.current) this.stopMedia();
  }

  private startMedia(): void {
    if (this.mediaLoop !== null) return;
    this.mediaLoop = this.every(1000 / 15, () => this.mediaTick());
  }

  private stopMedia(): void {
    if (this.mediaLoop !== null) {
      clearInterval(this.mediaLoop);
      this.intervals.delete(this.mediaLoop);
    }
    this.mediaLoop = null;
  }

  private frame(id: string, width: number, height: number, hue: number): void {
    if (this.frameListeners.size === 0) return;
    const key = `${id}:${width}x${height}`;
    // A fresh buffer each time: the receiver may keep the frame until its next paint.
    const data = drawSyntheticI420(width, height, this.frameNo, hue, undefined);
    this.frameBufs.set(key, data);
    const f: VideoFrame = { participantId: id, width, height, data };
    for (const l of [...this.frameListeners]) l(f);
  }

  private mediaTick(): void {
    this.frameNo += 1;
    const t = this.frameNo;
    const localVideo = this.selected.camera !== null && (this.previewing || (this.you !== null && (this.you.media.video || this.you.media.screen)));
    if (localVideo) this.frame(LOCAL_PARTICIPANT, 320, 180, 300);
    const localAudio = this.selected.microphone !== null && (this.previewing || (this.you?.media.audio ?? false));
    if (t % 3 === 0 && localAudio) {
      // A speaking pattern: bursts every few seconds.
      const speaking = Math.sin(t / 40) > 0.55;
      const level = speaking ? 0.35 + 0.3 * Math.abs(Math.sin(t / 2)) : 0.03 + 0.04 * Math.random();
      this.emit({ event: "audio_level", participant_id: LOCAL_PARTICIPANT, level });
    }
    if (!this.current || this.connection !== "connected") return;
    let i = 0;
    for (const p of this.remotes.values()) {
      i += 1;
      if (p.media.video) this.frame(p.id, 640, 360, 200 + i * 70);
      if (t % 3 === 0 && p.media.audio) {
        const speaking = Math.sin(t / 40 + Math.PI + i) > 0.2;
        const level = speaking ? 0.3 + 0.3 * Math.abs(Math.sin(t / 3 + i)) : 0.02;
        this.emit({ event: "audio_level", participant_id: p.id, level });
      }
    }
    if (t % 45 === 0) {
      const rtt = 28 + Math.round(Math.random() * 20);
      this.emit({ event: "quality", quality: "good", rtt_ms: rtt, loss: 0 });
    }
  }

  // ---- chat ------------------------------------------------------------------

  async sendChat(text: string, staffOnly: boolean): Promise<Uuid> {
    const { m, you } = this.requireMeeting();
    const clean = text.trim();
    if (!clean) throw new EngineError("malformed", "message must not be empty");
    if (new TextEncoder().encode(clean).length > 8 * 1024) throw new EngineError("too_large", "message is too long");
    if (staffOnly && !this.staff) throw new EngineError("forbidden", "staff only");
    const id = uuid();
    const pending = { text: clean, staff_only: staffOnly, created_at: Date.now() };
    this.outbox.set(id, { ...pending, failOnce: /^\/fail\b/.test(clean) });
    this.emit({ event: "chat_status", client_msg_id: id, status: "sending", pending });
    this.deliver(id, m, you);
    return id;
  }

  async retryChat(clientMsgId: Uuid): Promise<void> {
    const { m, you } = this.requireMeeting();
    const item = this.outbox.get(clientMsgId);
    if (!item) throw new EngineError("not_found", "nothing to retry with that id");
    const pending = { text: item.text, staff_only: item.staff_only, created_at: item.created_at };
    this.emit({ event: "chat_status", client_msg_id: clientMsgId, status: "sending", pending });
    this.deliver(clientMsgId, m, you);
  }

  private deliver(id: Uuid, m: DemoMeeting, you: ParticipantInfo): void {
    this.later(350, () => {
      const item = this.outbox.get(id);
      if (!item) return;
      if (this.connection !== "connected" || item.failOnce) {
        item.failOnce = false;
        this.emit({ event: "chat_status", client_msg_id: id, status: "failed", error: this.connection !== "connected" ? "Connection lost" : "Not delivered" });
        return;
      }
      this.outbox.delete(id);
      const list = item.staff_only ? m.notes : m.chat;
      const message: ChatMessage = {
        meeting_id: m.info.id,
        seq: list.length + 1,
        client_msg_id: id,
        sender_id: you.id,
        sender_name: you.display_name,
        sender_verified: you.verified_staff,
        text: item.text,
        staff_only: item.staff_only,
        sent_at: Date.now(),
      };
      list.push(message);
      this.emit({ event: "chat_status", client_msg_id: id, status: "sent", seq: message.seq });
      this.emit({ event: "chat", ...message, own: true });
      if (!item.staff_only) this.replyLater(m);
    });
  }

  private replyLater(m: DemoMeeting): void {
    const remote = [...this.remotes.values()][0];
    if (!remote) return;
    this.later(700, () => this.emit({ event: "typing", participant_id: remote.id, typing: true }));
    this.later(2600, () => {
      if (this.current !== m || !this.remotes.has(remote.id)) return;
      const text = REPLIES[this.replyIndex++ % REPLIES.length] ?? "OK";
      const message: ChatMessage = {
        meeting_id: m.info.id,
        seq: m.chat.length + 1,
        client_msg_id: uuid(),
        sender_id: remote.id,
        sender_name: remote.display_name,
        sender_verified: remote.verified_staff,
        text,
        staff_only: false,
        sent_at: Date.now(),
      };
      m.chat.push(message);
      this.emit({ event: "typing", participant_id: remote.id, typing: false });
      this.emit({ event: "chat", ...message, own: false });
    });
  }

  async typing(_typing: boolean): Promise<void> {
    // The simulated relay has nobody to tell.
  }

  async chatHistory(meetingId: MeetingId): Promise<ChatMessage[]> {
    const m = this.meetings.get(meetingId);
    if (!m) throw new EngineError("not_found", "no such meeting");
    const all = this.staff ? [...m.chat, ...m.notes] : [...m.chat];
    return all.map((x) => ({ ...x }));
  }

  // ---- events ----------------------------------------------------------------

  subscribe(listener: EngineListener): Unsubscribe {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  subscribeFrames(listener: FrameListener): Unsubscribe {
    this.frameListeners.add(listener);
    return () => this.frameListeners.delete(listener);
  }

  // ---- demo controls -----------------------------------------------------------

  /** Simulates a dropped connection that comes back after `ms`. */
  simulateDrop(ms = 4000): void {
    if (this.connection !== "connected") return;
    this.setConnection("reconnecting", "connection lost");
    for (const p of this.remotes.values()) this.emit({ event: "video", participant_id: p.id, available: false });
    this.later(ms, () => {
      this.setConnection("connected");
      for (const p of this.remotes.values()) if (p.media.video) this.emit({ event: "video", participant_id: p.id, available: true });
    });
  }
}

/** A chat line the relay writes itself: empty text, the sender fields name whom it is about. */
function systemMessage(meetingId: MeetingId, seq: number, kind: SystemLine, participantId: ParticipantId, name: string, at: number): ChatMessage {
  return {
    meeting_id: meetingId,
    seq,
    client_msg_id: uuid(),
    sender_id: participantId,
    sender_name: name,
    sender_verified: false,
    text: "",
    staff_only: false,
    sent_at: at,
    system: kind,
  };
}
