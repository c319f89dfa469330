// One meeting as the UI sees it: wires engine events into chat and participant
// state, tracks the phase (joining → waiting → in meeting → ended), the
// connection and its quality. Framework-independent.

import type { ConnectionQuality, ConnectionState, Engine, EngineEvent, JoinOptions, JoinOutcome, Rekeyed } from "../engine/engine";
import { EngineError } from "../engine/engine";
import type { Entered, MediaState, MeetingId, MeetingInfo, MeetingStatus, Uuid } from "../engine/types";
import { ChatState } from "./chat";
import { Observable } from "./observable";
import { ParticipantsState } from "./participants";

export type Phase = "idle" | "joining" | "waiting" | "in_meeting" | "ended";
export type EndReason = "left" | "denied" | "removed" | "meeting_ended" | "completed";

export class MeetingSession extends Observable {
  readonly chat = new ChatState({ selfId: "", selfName: "", selfVerified: false, isStaff: false });
  readonly participants = new ParticipantsState();
  meeting: MeetingInfo | null = null;
  accessCode: string | null = null;
  /** The invite link's secret, once the host re-keyed the meeting here. */
  inviteSecret: string | null = null;
  phase: Phase = "idle";
  endReason: EndReason | null = null;
  connection: ConnectionState = "connected";
  quality: ConnectionQuality = "good";
  rttMs: number | null = null;
  /** Shown once: "The host muted your microphone." */
  notice: string | null = null;
  error: string | null = null;
  chatOnly = false;
  private unsubscribe: () => void;
  private readonly now: () => number;

  constructor(
    private readonly engine: Engine,
    options: { now?: () => number } = {},
  ) {
    super();
    this.now = options.now ?? Date.now;
    this.unsubscribe = engine.subscribe((e) => this.handle(e));
  }

  dispose(): void {
    this.unsubscribe();
  }

  async join(code: string, name: string, options: JoinOptions): Promise<void> {
    this.accessCode = code;
    await this.start(options, () => this.engine.join(code, name, options));
  }

  /** Staff: join a clinic meeting by its id (the clinic view); no code to show. */
  async joinAsStaff(meetingId: MeetingId, name: string, options: JoinOptions): Promise<void> {
    this.accessCode = null;
    await this.start(options, () => this.engine.joinAsStaff(meetingId, name, options));
  }

  private async start(options: JoinOptions, join: () => Promise<JoinOutcome>): Promise<void> {
    this.phase = "joining";
    this.chatOnly = options.chatOnly;
    this.error = null;
    this.changed();
    try {
      const outcome = await join();
      if (outcome.state === "joined") await this.enter(outcome.join);
      else {
        this.meeting = outcome.meeting;
        this.phase = "waiting";
        this.changed();
      }
    } catch (e) {
      this.phase = "idle";
      this.error = e instanceof Error ? e.message : String(e);
      this.changed();
      throw e;
    }
  }

  private async enter(join: Entered): Promise<void> {
    this.meeting = join.meeting;
    this.participants.load(join);
    this.chat.setIdentity({
      selfId: join.you.id,
      selfName: join.you.display_name,
      selfVerified: join.you.verified_staff,
      isStaff: join.you.verified_staff,
    });
    this.phase = "in_meeting";
    this.changed();
    await this.loadHistory();
  }

  private async loadHistory(): Promise<void> {
    if (!this.meeting) return;
    try {
      this.chat.loadHistory(await this.engine.chatHistory(this.meeting.id));
    } catch {
      // History is best effort; live messages still arrive.
    }
  }

  handle(event: EngineEvent): void {
    const now = this.now();
    const wasLocked = this.participants.selfAudioLocked;
    this.participants.apply(event, now);
    switch (event.event) {
      case "connection": {
        // Denied, removed or ended: the engine closes the connection itself, so its
        // `disconnected` is no news. The rule lives here, not in the engines, because the
        // engine's event stream is also the CLI's output, which reports every close.
        if (event.state === "disconnected" && this.closedByMeeting()) break;
        const was = this.connection;
        this.connection = event.state;
        // A connection that is gone for good (no resume): say so in the meeting.
        if (event.state === "disconnected" && event.reason && this.phase === "in_meeting") this.error = event.reason;
        this.changed();
        if (was === "reconnecting" && event.state === "connected" && this.phase === "in_meeting") void this.loadHistory();
        break;
      }
      case "quality":
        this.quality = event.quality;
        this.rttMs = event.rtt_ms;
        this.changed();
        break;
      case "admitted":
        void this.enter(event);
        break;
      case "joined":
        if (this.phase !== "in_meeting") void this.enter(event);
        break;
      case "denied":
        this.end("denied");
        break;
      case "removed":
        this.end("removed");
        break;
      case "meeting_ended":
        this.end(endReasonFor(event.status));
        break;
      case "meeting_updated":
        this.meeting = event.meeting;
        this.changed();
        break;
      case "muted":
        this.notice = "The host muted your microphone.";
        this.changed();
        break;
      case "media_changed": {
        const locked = this.participants.selfAudioLocked;
        if (locked !== wasLocked) {
          this.notice = locked
            ? "The host muted your microphone. You can unmute when the host allows it."
            : "The host allowed you to unmute. Your microphone stays off until you turn it on.";
          this.changed();
        }
        break;
      }
      case "media_error":
        this.error = event.message;
        this.changed();
        break;
      case "chat": {
        const { event: _event, own, ...message } = event;
        if (own) this.chat.sent(message);
        else this.chat.receive(message);
        break;
      }
      case "chat_status":
        if (event.status === "sending") {
          const p = event.pending;
          if (p) this.chat.sending(event.client_msg_id, p.text, p.staff_only, p.created_at);
          else this.chat.sending(event.client_msg_id, "", false, now); // retry of a known message
        } else if (event.status === "failed") this.chat.failed(event.client_msg_id, event.error ?? "Not delivered");
        // `sent`: the accepted copy follows as an own `chat`, which carries the message.
        break;
      case "typing":
        this.chat.setTyping(event.participant_id, this.participants.name(event.participant_id), event.typing, now);
        break;
      default:
        break;
    }
  }

  /** The meeting closed the connection (denied, removed, ended), not the network. */
  private closedByMeeting(): boolean {
    return this.phase === "ended" && this.endReason !== "left";
  }

  private end(reason: EndReason): void {
    if (this.phase === "ended") return;
    this.phase = "ended";
    this.endReason = reason;
    this.changed();
  }

  async leave(): Promise<void> {
    await this.engine.leave();
    this.end("left");
  }

  async send(text: string, staffOnly: boolean): Promise<Uuid | null> {
    const t = text.trim();
    if (!t) return null;
    try {
      return await this.engine.sendChat(t, staffOnly && this.chat.isStaff);
    } catch (e) {
      this.error = e instanceof Error ? e.message : String(e);
      this.changed();
      return null;
    }
  }

  async typing(on: boolean): Promise<void> {
    try {
      await this.engine.typing(on);
    } catch {
      // Typing indicators are best effort.
    }
  }

  /** Runs a moderation action; a refusal is shown as `error`, never thrown at the UI. */
  async act(action: (engine: Engine) => Promise<void>): Promise<boolean> {
    try {
      await action(this.engine);
      return true;
    } catch (e) {
      this.error = e instanceof Error ? e.message : String(e);
      this.changed();
      return false;
    }
  }

  /** Host: a new code and invite link (everyone already in stays; the old ones stop
   * working). They become the meeting's code shown here; null if refused (`error` says why). */
  async rekey(): Promise<Rekeyed | null> {
    let fresh: Rekeyed | null = null;
    await this.act(async (engine) => {
      fresh = await engine.rekeyMeeting();
    });
    const done = fresh as Rekeyed | null;
    if (done) {
      this.accessCode = done.access_code;
      this.inviteSecret = done.invite_secret;
      this.error = null;
      this.changed();
    }
    return done;
  }

  async retry(clientMsgId: Uuid): Promise<void> {
    await this.engine.retryChat(clientMsgId);
  }

  /** Applies a change to one's own media; on failure the state stays as it was and `error` says why. */
  async setMedia(patch: Partial<MediaState>): Promise<boolean> {
    const next = { ...this.participants.selfMedia(), ...patch };
    try {
      await this.engine.updateMedia(next);
      this.chatOnly = false;
      this.error = null;
      this.changed();
      return true;
    } catch (e) {
      this.error = e instanceof EngineError ? e.message : String(e);
      this.changed();
      return false;
    }
  }

  toggleMic(): Promise<boolean> {
    const on = !this.participants.selfMedia().audio;
    if (on && this.participants.selfAudioLocked) {
      // The relay would refuse it; say why without asking.
      this.notice = "The host muted your microphone. You can unmute when the host allows it.";
      this.changed();
      return Promise.resolve(false);
    }
    return this.setMedia({ audio: on });
  }

  toggleCamera(): Promise<boolean> {
    return this.setMedia({ video: !this.participants.selfMedia().video });
  }

  toggleScreen(): Promise<boolean> {
    return this.setMedia({ screen: !this.participants.selfMedia().screen });
  }

  clearNotice(): void {
    this.notice = null;
    this.error = null;
    this.changed();
  }
}

function endReasonFor(status: MeetingStatus): EndReason {
  return status === "completed" ? "completed" : "meeting_ended";
}
