// What a busy doctor (or a waiting patient) is told when something happens in the
// meeting while they look elsewhere: an OS notification, a short sound, a sentence
// for screen readers, and the counts in the window title. Pure: feed it engine
// events and the window's focus, read back what to signal; `ui/src/signals/`
// plays it.
//
// Screens in clinics are seen by others: notification titles and bodies are fixed
// sentences plus the meeting title only, never chat text, sender names, the names
// of people waiting or patient references. Screen-reader announcements are the
// user's own audio channel and may name people.

import type { EngineEvent } from "../engine/engine";
import type { Entered, MeetingInfo, MeetingStatus, ParticipantId, WaitingInfo } from "../engine/types";

export type Sound = "knock" | "message" | "admitted" | "started";

export interface OsNotification {
  title: string;
  body: string;
}

/** What one event asks for; each part optional. */
export interface Signal {
  notification?: OsNotification;
  sound?: Sound;
  /** For the polite live region. */
  announce?: string;
}

/** Where the user is looking and what they allowed, read when an event arrives. */
export interface SignalContext {
  /** Sounds and notifications on (the "Sounds and notifications" setting). */
  enabled: boolean;
  /** The window has the keyboard focus and is visible. */
  focused: boolean;
  /** The chat panel is open (messages are seen as they arrive while focused). */
  chatVisible: boolean;
  /** Host or moderator: the waiting room is theirs to answer. */
  canModerate: boolean;
  /** The meeting as the session knows it (for its title). */
  meeting: MeetingInfo | null;
}

/** The same sound or notification kind at most once per this many ms: a burst of
 * twenty messages plays one sound and shows one notification. */
export const SIGNAL_QUIET_MS = 4000;

/** Shown as the notification title (the app's name, nothing about the meeting). */
export const NOTIFICATION_TITLE = "ClinicMeet";

/** A meeting title as it may appear in a notification: one line, at most 80 characters. */
export function safeTitle(meeting: MeetingInfo | null): string {
  const t = (meeting?.title ?? "").replace(/\s+/g, " ").trim();
  if (!t) return "your meeting";
  return t.length > 80 ? `${t.slice(0, 79)}…` : t;
}

/** The window title: "(2 waiting · 3 unread) Case review — ClinicMeet". Waiting is
 * counted only for those who can admit (a guest's title never shows the waiting room). */
export function windowTitle(meetingTitle: string | null, waiting: number, unread: number): string {
  const parts: string[] = [];
  if (waiting > 0) parts.push(`${waiting} waiting`);
  if (unread > 0) parts.push(`${unread > 99 ? "99+" : unread} unread`);
  const counts = parts.length ? `(${parts.join(" · ")}) ` : "";
  const title = meetingTitle?.replace(/\s+/g, " ").trim();
  return title ? `${counts}${title} — ClinicMeet` : `${counts}ClinicMeet`;
}

type Kind = "knock" | "message" | "admitted" | "started";

/** Decides what each event signals. Remembers the waiting room (to tell a new knock
 * from a departure) and when each kind last sounded (to quieten bursts). */
export class SignalPolicy {
  private waitingIds = new Set<ParticipantId>();
  /** Who is in the meeting, to name someone who left (the event carries only the id). */
  private names = new Map<ParticipantId, string>();
  private lastAt = new Map<Kind, number>();
  private inMeeting = false;
  /** The meeting's status as last seen here (the session may have applied the event already). */
  private status: MeetingStatus | null = null;

  get entered(): boolean {
    return this.inMeeting;
  }

  /** `now` in ms (for the burst rule). Returns null when the event says nothing to the user. */
  decide(event: EngineEvent, ctx: SignalContext, now: number): Signal | null {
    switch (event.event) {
      case "joined":
        this.enter(event);
        return null;
      case "waiting_room":
        return this.waitingRoom(event.waiting, ctx, now);
      case "admitted": {
        this.enter(event);
        const started = event.meeting.kind === "consultation";
        return this.emit(ctx, now, started ? "started" : "admitted", {
          body: started ? `Your consultation in ${safeTitle(event.meeting)} has started` : `You were let in to ${safeTitle(event.meeting)}`,
          announce: started ? "The consultation has started" : "You were let in to the meeting",
          always: true,
        });
      }
      case "meeting_updated": {
        const was = this.status ?? ctx.meeting?.status;
        this.status = event.meeting.status;
        const started = was === "scheduled" && event.meeting.status === "active" && event.meeting.kind === "consultation";
        // The host pressed "Start consultation" here: no news to them.
        if (!started || !this.inMeeting || ctx.canModerate) return null;
        return this.emit(ctx, now, "started", {
          body: `Your consultation in ${safeTitle(event.meeting)} has started`,
          announce: "The consultation has started",
          always: true,
        });
      }
      case "chat": {
        // The relay's own lines ("Pat joined") are announced by their events, not as messages.
        if (event.own || event.system) return null;
        const seen = ctx.focused && ctx.chatVisible;
        const announce = `New ${event.staff_only ? "staff note" : "message"} from ${event.sender_name}`;
        if (seen) return { announce };
        return this.emit(ctx, now, "message", { body: `New message in ${safeTitle(ctx.meeting)}`, announce, always: false });
      }
      case "participant_joined":
        if (!this.inMeeting) return null;
        this.waitingIds.delete(event.participant.id);
        this.names.set(event.participant.id, event.participant.display_name);
        return { announce: `${event.participant.display_name} joined` };
      case "participant_left": {
        if (!this.inMeeting) return null;
        const name = this.names.get(event.participant_id) ?? "Someone";
        this.names.delete(event.participant_id);
        return { announce: `${name} left` };
      }
      default:
        return null;
    }
  }

  /** In the meeting (a join reply, which comes as no event, or a snapshot): who is in and waiting. */
  enter(e: Pick<Entered, "meeting" | "participants" | "waiting">): void {
    this.inMeeting = true;
    this.status = e.meeting.status;
    this.waitingIds = new Set(e.waiting.map((w) => w.participant_id));
    this.names = new Map(e.participants.map((p) => [p.id, p.display_name]));
  }

  private waitingRoom(waiting: WaitingInfo[], ctx: SignalContext, now: number): Signal | null {
    const before = this.waitingIds;
    this.waitingIds = new Set(waiting.map((w) => w.participant_id));
    if (!ctx.canModerate) return null;
    const fresh = waiting.filter((w) => !before.has(w.participant_id));
    if (fresh.length === 0) return null;
    const who = fresh.length === 1 ? `${fresh[0]?.display_name ?? "Someone"} is` : `${fresh.length} people are`;
    return this.emit(ctx, now, "knock", {
      body: `Someone is waiting to join ${safeTitle(ctx.meeting)}`,
      announce: `${who} waiting to be let in`,
      always: true,
    });
  }

  /** `always`: sound even while the window is focused (knocks, admission, start);
   * the OS notification only while it is not. */
  private emit(ctx: SignalContext, now: number, kind: Kind, s: { body: string; announce: string; always: boolean }): Signal {
    const out: Signal = { announce: s.announce };
    const loud = ctx.enabled && (s.always || !ctx.focused);
    if (!loud) return out;
    const last = this.lastAt.get(kind);
    if (last !== undefined && now - last < SIGNAL_QUIET_MS) return out;
    this.lastAt.set(kind, now);
    out.sound = kind;
    if (!ctx.focused) out.notification = { title: NOTIFICATION_TITLE, body: s.body };
    return out;
  }
}
