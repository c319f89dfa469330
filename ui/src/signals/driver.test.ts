import { describe, expect, it } from "vitest";
import type { Engine, EngineEvent } from "../engine/engine";
import { Listeners } from "../engine/listeners";
import type { Entered, ParticipantInfo } from "../engine/types";
import { defaultSettings } from "../engine/types";
import { MeetingSession } from "../state/session";
import type { OsNotification, Sound } from "../state/signals";
import { APP_TITLE, attachSignals, type FocusSource } from "./driver";

function person(id: string, name: string, role: ParticipantInfo["role"]): ParticipantInfo {
  return {
    id,
    display_name: name,
    role,
    verified_staff: role !== "guest",
    media: { audio: false, video: false, screen: false },
    audio_locked: false,
    joined_at: 0,
    connected: true,
  };
}

function entered(role: ParticipantInfo["role"]): Entered {
  const you = person("me", "Dr. Ada", role);
  return {
    meeting: { id: "m", title: "Case review", kind: "video", status: "active", host_name: "Dr. Ada", locked: false, settings: defaultSettings(), created_at: 0 },
    you,
    participants: [you, person("b", "Ben Smith", "guest")],
    waiting: [],
    tracks: [],
    resumed: false,
  };
}

/** An engine that answers a join with `role` and lets the test push events. */
function fakeEngine(role: ParticipantInfo["role"]): { engine: Engine; emit: (e: EngineEvent) => void } {
  const listeners = new Listeners<EngineEvent>();
  const engine = {
    subscribe: (l: (e: EngineEvent) => void) => listeners.add(l),
    join: async () => ({ state: "joined", join: entered(role) }),
    chatHistory: async () => [],
  } as unknown as Engine;
  return { engine, emit: (e) => listeners.emit(e) };
}

function focusSource(): FocusSource & { set(focused: boolean): void } {
  const win = new EventTarget();
  const doc = Object.assign(new EventTarget(), { hasFocus: () => true, visibilityState: "visible" });
  return {
    win,
    doc,
    set(focused: boolean) {
      win.dispatchEvent(new Event(focused ? "focus" : "blur"));
    },
  };
}

async function setup(role: ParticipantInfo["role"] = "host", enabled = true) {
  const { engine, emit } = fakeEngine(role);
  const session = new MeetingSession(engine);
  await session.join("ABCD-EFGH", "Dr. Ada", { camera: false, mic: false, chatOnly: true });
  const out = { sounds: [] as Sound[], notes: [] as OsNotification[], said: [] as string[], titles: [] as string[] };
  const focus = focusSource();
  const stop = attachSignals(
    session,
    engine,
    {
      sound: (s) => out.sounds.push(s),
      notify: (n) => out.notes.push(n),
      announce: (t) => out.said.push(t),
      title: (t) => out.titles.push(t),
    },
    { enabled: () => enabled, focus, now: () => 0 },
  );
  return { session, emit, out, focus, stop, title: () => out.titles[out.titles.length - 1] };
}

const chat = (n: number, text: string): EngineEvent =>
  ({ event: "chat", own: false, meeting_id: "m", seq: n, client_msg_id: `c${n}`, sender_id: "b", sender_name: "Ben Smith", sender_verified: false, text, staff_only: false, sent_at: 0 }) as EngineEvent;

describe("signal driver over a meeting session", () => {
  it("a knock puts the waiting count in the title, announces it and sounds; admitting clears the count", async () => {
    const t = await setup("host");
    expect(t.title()).toBe("Case review — ClinicMeet");
    t.emit({ event: "waiting_room", waiting: [{ participant_id: "w", display_name: "Wendy", since: 1 }] });
    expect(t.title()).toBe("(1 waiting) Case review — ClinicMeet");
    expect(t.out.said).toEqual(["Wendy is waiting to be let in"]);
    expect(t.out.sounds).toEqual(["knock"]);
    expect(t.out.notes).toEqual([]); // focused
    t.emit({ event: "waiting_room", waiting: [] });
    expect(t.title()).toBe("Case review — ClinicMeet");
  });

  it("unfocused chat counts in the title and notifies without the text; focus with the chat open reads it", async () => {
    const t = await setup("host");
    t.session.chat.setSidebarOpen(true);
    t.focus.set(false);
    t.emit(chat(1, "Mr Smith HIV result"));
    t.emit(chat(2, "second"));
    expect(t.title()).toBe("(2 unread) Case review — ClinicMeet");
    expect(t.out.notes).toEqual([{ title: "ClinicMeet", body: "New message in Case review" }]);
    expect(t.out.sounds).toEqual(["message"]);
    expect(JSON.stringify(t.out.notes) + t.out.titles.join()).not.toMatch(/Smith|HIV/);
    t.focus.set(true);
    expect(t.title()).toBe("Case review — ClinicMeet");
  });

  it("a guest's title never counts the waiting room and a guest hears no knock", async () => {
    const t = await setup("guest");
    t.emit({ event: "waiting_room", waiting: [{ participant_id: "w", display_name: "Wendy", since: 1 }] });
    expect(t.title()).toBe("Case review — ClinicMeet");
    expect(t.out.sounds).toEqual([]);
    expect(t.out.said).toEqual([]);
  });

  it("with the setting off only the title and the live region speak", async () => {
    const t = await setup("host", false);
    t.focus.set(false);
    t.emit({ event: "waiting_room", waiting: [{ participant_id: "w", display_name: "Wendy", since: 1 }] });
    t.emit(chat(1, "hello"));
    expect(t.out.sounds).toEqual([]);
    expect(t.out.notes).toEqual([]);
    expect(t.out.said).toEqual(["Wendy is waiting to be let in", "New message from Ben Smith"]);
    expect(t.title()).toBe("(1 waiting · 1 unread) Case review — ClinicMeet");
  });

  it("stopping resets the title and stops listening", async () => {
    const t = await setup("host");
    t.stop();
    expect(t.title()).toBe(APP_TITLE);
    t.emit(chat(1, "late"));
    expect(t.out.said).toEqual([]);
  });
});
