// Plays the signals of one meeting session: feeds its engine's events and the
// window's focus to the policy (`state/signals.ts`), and sends what it decides to
// the outputs (sound, OS notification, live region), and the waiting and unread
// counts to the window title. Attached by the meeting screen for the session's life.

import type { Engine } from "../engine/engine";
import type { MeetingSession } from "../state/session";
import { SignalPolicy, windowTitle, type OsNotification, type Sound } from "../state/signals";

export interface SignalOutputs {
  sound(sound: Sound): void;
  notify(notification: OsNotification): void;
  announce(text: string): void;
  title(title: string): void;
}

/** Where focus and visibility come from (the page's `window` and `document`). */
export interface FocusSource {
  win: Pick<EventTarget, "addEventListener" | "removeEventListener">;
  doc: Pick<EventTarget, "addEventListener" | "removeEventListener"> & { hasFocus(): boolean; visibilityState: string };
}

export interface SignalDriverOptions {
  enabled: () => boolean;
  now?: () => number;
  focus?: FocusSource;
}

/** The title outside a meeting. */
export const APP_TITLE = "ClinicMeet";

/** Starts signalling for `session`; returns the function that stops (and resets the title). */
export function attachSignals(session: MeetingSession, engine: Engine, out: SignalOutputs, options: SignalDriverOptions): () => void {
  const now = options.now ?? Date.now;
  const focus = options.focus ?? { win: window, doc: document };
  const policy = new SignalPolicy();
  let focused = focus.doc.hasFocus() && focus.doc.visibilityState !== "hidden";
  session.chat.setFocused(focused);

  const setFocused = (f: boolean) => {
    focused = f;
    session.chat.setFocused(f);
  };
  const onFocus = () => setFocused(focus.doc.visibilityState !== "hidden");
  const onBlur = () => setFocused(false);
  const onVisibility = () => setFocused(focus.doc.visibilityState !== "hidden" && focus.doc.hasFocus());
  focus.win.addEventListener("focus", onFocus);
  focus.win.addEventListener("blur", onBlur);
  focus.doc.addEventListener("visibilitychange", onVisibility);

  /** Entered through the join reply (no event): the policy learns who is in from the session. */
  const sync = () => {
    if (session.phase === "in_meeting" && !policy.entered && session.meeting) {
      policy.enter({ meeting: session.meeting, participants: session.participants.list(), waiting: [...session.participants.waiting] });
    }
  };

  let lastTitle = "";
  const title = () => {
    sync();
    const ps = session.participants;
    const waiting = session.phase === "in_meeting" && ps.canModerate ? ps.waiting.length : 0;
    const t = windowTitle(session.meeting?.title ?? null, waiting, session.chat.unread);
    if (t !== lastTitle) {
      lastTitle = t;
      out.title(t);
    }
  };
  const offs = [session.onChange(title), session.participants.onChange(title), session.chat.onChange(title)];
  title();

  const offEvents = engine.subscribe((event) => {
    sync();
    const s = policy.decide(
      event,
      {
        enabled: options.enabled(),
        focused,
        chatVisible: session.chat.isSidebarOpen,
        canModerate: session.participants.canModerate,
        meeting: session.meeting,
      },
      now(),
    );
    if (!s) return;
    if (s.announce) out.announce(s.announce);
    if (s.sound) out.sound(s.sound);
    if (s.notification) out.notify(s.notification);
  });

  return () => {
    offEvents();
    for (const off of offs) off();
    focus.win.removeEventListener("focus", onFocus);
    focus.win.removeEventListener("blur", onBlur);
    focus.doc.removeEventListener("visibilitychange", onVisibility);
    out.title(APP_TITLE);
  };
}
