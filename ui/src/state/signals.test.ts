import { describe, expect, it } from "vitest";
import type { EngineEvent } from "../engine/engine";
import type { ChatMessage, Entered, MeetingInfo, ParticipantInfo } from "../engine/types";
import { defaultSettings } from "../engine/types";
import { NOTIFICATION_TITLE, SIGNAL_QUIET_MS, SignalPolicy, windowTitle, type Signal, type SignalContext } from "./signals";

const PATIENT_REF = "NHS 943 476 5919";

function meeting(extra: Partial<MeetingInfo> = {}): MeetingInfo {
  return {
    id: "m",
    title: "Follow-up",
    kind: "video",
    status: "active",
    host_name: "Dr. Ada",
    locked: false,
    settings: defaultSettings(),
    created_at: 0,
    ...extra,
  };
}

function person(id: string, name: string, extra: Partial<ParticipantInfo> = {}): ParticipantInfo {
  return {
    id,
    display_name: name,
    role: "guest",
    verified_staff: false,
    media: { audio: false, video: false, screen: false },
    audio_locked: false,
    joined_at: 0,
    connected: true,
    ...extra,
  };
}

function entered(m: MeetingInfo = meeting(), role: ParticipantInfo["role"] = "host"): Entered {
  const you = person("me", "Dr. Ada", { role });
  return { meeting: m, you, participants: [you, person("b", "Ben Smith")], waiting: [], tracks: [], resumed: false };
}

function chat(text: string, extra: Partial<ChatMessage> = {}): EngineEvent {
  return {
    event: "chat",
    own: false,
    meeting_id: "m",
    seq: 1,
    client_msg_id: `c-${text}`,
    sender_id: "b",
    sender_name: "Ben Smith",
    sender_verified: false,
    text,
    staff_only: false,
    sent_at: 0,
    ...extra,
  } as EngineEvent;
}

function knock(...names: string[]): EngineEvent {
  return { event: "waiting_room", waiting: names.map((n, i) => ({ participant_id: `w${n}`, display_name: n, since: i })) } as EngineEvent;
}

function ctx(extra: Partial<SignalContext> = {}): SignalContext {
  return { enabled: true, focused: false, chatVisible: false, canModerate: true, meeting: meeting({ patient_reference: PATIENT_REF }), ...extra };
}

/** A policy that has joined the meeting (as host unless `role` says otherwise). */
function joined(role: ParticipantInfo["role"] = "host", m: MeetingInfo = meeting()): SignalPolicy {
  const p = new SignalPolicy();
  p.decide({ event: "joined", ...entered(m, role) }, ctx(), 0);
  return p;
}

function notificationText(s: Signal | null): string {
  return `${s?.notification?.title ?? ""}\n${s?.notification?.body ?? ""}`;
}

describe("signals: chat", () => {
  it("a message while unfocused notifies with the meeting title only: no text, no sender, no patient reference", () => {
    const s = joined().decide(chat("Mr Smith HIV result"), ctx(), 1000);
    expect(s?.notification).toEqual({ title: NOTIFICATION_TITLE, body: "New message in Follow-up" });
    const shown = notificationText(s);
    for (const secret of ["Smith", "HIV", "result", "Ben", PATIENT_REF]) expect(shown).not.toContain(secret);
    expect(s?.sound).toBe("message");
    // The screen reader (the user's own audio) hears who wrote, never the text.
    expect(s?.announce).toBe("New message from Ben Smith");
    expect(s?.announce).not.toContain("HIV");
  });

  it("a line the relay wrote itself (\"Ben joined\") neither notifies, sounds nor is announced as a message", () => {
    const p = joined();
    expect(p.decide(chat("", { system: "joined" }), ctx(), 1000)).toBeNull();
    expect(p.decide(chat("", { system: "recording_started" }), ctx({ focused: true, chatVisible: true }), 2000)).toBeNull();
  });

  it("a staff note is announced as one and notified like any message", () => {
    const s = joined().decide(chat("Bloods pending", { staff_only: true }), ctx(), 0);
    expect(s?.announce).toBe("New staff note from Ben Smith");
    expect(s?.notification?.body).toBe("New message in Follow-up");
  });

  it("a message while focused with the chat open is only announced", () => {
    const s = joined().decide(chat("hello"), ctx({ focused: true, chatVisible: true }), 0);
    expect(s).toEqual({ announce: "New message from Ben Smith" });
  });

  it("a message while focused with the chat closed neither notifies nor sounds (the badge and title count it)", () => {
    const p = joined();
    const s = p.decide(chat("hello"), ctx({ focused: true }), 0);
    expect(s?.notification).toBeUndefined();
    expect(s?.sound).toBeUndefined();
    // ... and does not use up the burst allowance: an unfocused one right after still sounds.
    expect(p.decide(chat("again"), ctx(), 10)?.sound).toBe("message");
  });

  it("one's own messages signal nothing", () => {
    expect(joined().decide(chat("mine", { own: true } as Partial<ChatMessage>), ctx(), 0)).toBeNull();
  });

  it("a burst of 20 messages plays one sound and shows one notification; later ones signal again", () => {
    const p = joined();
    const out = Array.from({ length: 20 }, (_, i) => p.decide(chat(`m${i}`), ctx(), 1000 + i * 50));
    expect(out.filter((s) => s?.sound).length).toBe(1);
    expect(out.filter((s) => s?.notification).length).toBe(1);
    expect(out.every((s) => s?.announce === "New message from Ben Smith")).toBe(true);
    expect(p.decide(chat("later"), ctx(), 1000 + 19 * 50 + SIGNAL_QUIET_MS)?.sound).toBe("message");
  });

  it("the setting off: no sound and no notification, screen readers still hear it", () => {
    const p = joined();
    const off = ctx({ enabled: false });
    const s = p.decide(chat("Mr Smith HIV result"), off, 0);
    expect(s).toEqual({ announce: "New message from Ben Smith" });
    const k = p.decide(knock("Wendy"), off, 0);
    expect(k).toEqual({ announce: "Wendy is waiting to be let in" });
  });
});

describe("signals: waiting room", () => {
  it("a knock tells the host with a sound (even focused), and a notification without the name while unfocused", () => {
    const p = joined();
    const s = p.decide(knock("Wendy Patient"), ctx(), 0);
    expect(s?.sound).toBe("knock");
    expect(s?.notification).toEqual({ title: NOTIFICATION_TITLE, body: "Someone is waiting to join Follow-up" });
    expect(notificationText(s)).not.toContain("Wendy");
    expect(s?.announce).toBe("Wendy Patient is waiting to be let in");
    const focused = joined().decide(knock("Wendy Patient"), ctx({ focused: true }), 0);
    expect(focused?.sound).toBe("knock");
    expect(focused?.notification).toBeUndefined();
  });

  it("only a new arrival knocks: someone leaving the waiting room or the same list again is silent", () => {
    const p = joined();
    p.decide(knock("Wendy", "Xavier"), ctx(), 0);
    expect(p.decide(knock("Wendy"), ctx(), SIGNAL_QUIET_MS * 2)).toBeNull();
    expect(p.decide(knock("Wendy"), ctx(), SIGNAL_QUIET_MS * 3)).toBeNull();
    const two = p.decide(knock("Wendy", "Yara", "Zed"), ctx(), SIGNAL_QUIET_MS * 4);
    expect(two?.announce).toBe("2 people are waiting to be let in");
    expect(two?.sound).toBe("knock");
  });

  it("a moderator is told too; guests and staff without moderation rights are not", () => {
    expect(joined("moderator").decide(knock("Wendy"), ctx(), 0)?.sound).toBe("knock");
    for (const role of ["guest", "staff"] as const) {
      expect(joined(role).decide(knock("Wendy"), ctx({ canModerate: false }), 0)).toBeNull();
    }
  });
});

describe("signals: admission and start", () => {
  it("a waiting guest let in hears it even when focused; the notification only unfocused", () => {
    const p = new SignalPolicy();
    const s = p.decide({ event: "admitted", ...entered(meeting(), "guest") }, ctx({ canModerate: false }), 0);
    expect(s?.sound).toBe("admitted");
    expect(s?.announce).toBe("You were let in to the meeting");
    expect(s?.notification?.body).toBe("You were let in to Follow-up");
    const f = new SignalPolicy().decide({ event: "admitted", ...entered(meeting(), "guest") }, ctx({ focused: true, canModerate: false }), 0);
    expect(f?.sound).toBe("admitted");
    expect(f?.notification).toBeUndefined();
  });

  it("a patient let in to a consultation hears that it started; the patient reference stays out", () => {
    const m = meeting({ kind: "consultation", title: "Dr. Ada's clinic", patient_reference: PATIENT_REF });
    const s = new SignalPolicy().decide({ event: "admitted", ...entered(m, "guest") }, ctx({ canModerate: false }), 0);
    expect(s?.sound).toBe("started");
    expect(s?.announce).toBe("The consultation has started");
    expect(s?.notification?.body).toBe("Your consultation in Dr. Ada's clinic has started");
    expect(notificationText(s)).not.toContain("943");
  });

  it("staff in a scheduled consultation hear it start; the host who pressed start does not", () => {
    const scheduled = meeting({ kind: "consultation", status: "scheduled" });
    const active = { ...scheduled, status: "active" as const };
    const staffPolicy = joined("staff", scheduled);
    // The session may already hold the updated meeting: the policy remembers the status it saw.
    const s = staffPolicy.decide({ event: "meeting_updated", meeting: active } as EngineEvent, ctx({ canModerate: false, meeting: active }), 0);
    expect(s?.sound).toBe("started");
    expect(joined("host", scheduled).decide({ event: "meeting_updated", meeting: active } as EngineEvent, ctx({ meeting: active }), 0)).toBeNull();
    // Other updates (lock, title) are not a start.
    expect(staffPolicy.decide({ event: "meeting_updated", meeting: { ...active, locked: true } } as EngineEvent, ctx({ canModerate: false, meeting: active }), 0)).toBeNull();
  });

  it("a title with line breaks or a huge length is one short line in the notification", () => {
    const m = meeting({ title: `Line one\nline two ${"x".repeat(200)}` });
    const s = new SignalPolicy().decide({ event: "admitted", ...entered(m, "guest") }, ctx({ canModerate: false }), 0);
    const body = s?.notification?.body ?? "";
    expect(body).not.toContain("\n");
    expect(body.length).toBeLessThan(120);
  });
});

describe("signals: joins and leaves", () => {
  it("announces who joined and who left (by the name known when they were in), without sound", () => {
    const p = joined();
    expect(p.decide({ event: "participant_joined", participant: person("c", "Cara") } as EngineEvent, ctx(), 0)).toEqual({ announce: "Cara joined" });
    expect(p.decide({ event: "participant_left", participant_id: "c", reason: "left" } as EngineEvent, ctx(), 0)).toEqual({ announce: "Cara left" });
    expect(p.decide({ event: "participant_left", participant_id: "b", reason: "left" } as EngineEvent, ctx(), 0)).toEqual({ announce: "Ben Smith left" });
  });
});

describe("window title", () => {
  it("shows waiting and unread counts before the meeting title", () => {
    expect(windowTitle("Case review", 2, 3)).toBe("(2 waiting · 3 unread) Case review — ClinicMeet");
    expect(windowTitle("Case review", 1, 0)).toBe("(1 waiting) Case review — ClinicMeet");
    expect(windowTitle("Case review", 0, 150)).toBe("(99+ unread) Case review — ClinicMeet");
    expect(windowTitle("Case review", 0, 0)).toBe("Case review — ClinicMeet");
    expect(windowTitle(null, 0, 0)).toBe("ClinicMeet");
  });
});
