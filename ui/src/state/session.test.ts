import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { DEMO_PIN, DEMO_RELAY, DemoEngine } from "../engine/demo";
import { EngineError } from "../engine/engine";
import { hostedSession as hostedDemoSession, settle } from "./demoSession";
import { MeetingSession } from "./session";

// The session wired to the in-memory demo relay, on a fake clock.
describe("meeting session over the demo engine", () => {
  let engine: DemoEngine;
  beforeEach(() => {
    vi.useFakeTimers();
    engine = new DemoEngine({ staffName: "Dr. Ada" });
  });
  afterEach(() => {
    engine.dispose();
    vi.useRealTimers();
  });

  const hostedSession = (): Promise<MeetingSession> => hostedDemoSession(engine);

  it("shows media problems and a connection gone for good in the meeting", async () => {
    const session = await hostedSession();
    session.handle({ event: "media_error", message: "This browser cannot send or receive H.264 video." });
    expect(session.error).toMatch(/H\.264/);
    session.clearNotice();
    // A plain disconnect (e.g. leaving) says nothing; one with a reason does.
    session.handle({ event: "connection", state: "disconnected" });
    expect(session.error).toBeNull();
    session.handle({ event: "connection", state: "disconnected", reason: "The connection to the clinic was lost." });
    expect(session.error).toBe("The connection to the clinic was lost.");
    expect(session.connection).toBe("disconnected");
  });

  it("a locked microphone is not turned on, and the lock and its lifting are explained", async () => {
    const session = await hostedSession();
    const me = session.participants.self!.id;
    const update = vi.spyOn(engine, "updateMedia");
    const off = { audio: false, video: true, screen: false };
    session.handle({ event: "muted", by: "host" });
    session.handle({ event: "media_changed", participant_id: me, media: off, audio_locked: true });
    expect(session.participants.selfAudioLocked).toBe(true);
    expect(session.notice).toMatch(/unmute when the host allows/);
    session.clearNotice();
    expect(await session.toggleMic()).toBe(false);
    expect(update).not.toHaveBeenCalled();
    expect(session.notice).toMatch(/unmute when the host allows/);
    session.handle({ event: "media_changed", participant_id: me, media: off, audio_locked: false });
    expect(session.notice).toMatch(/allowed you to unmute/);
    expect(session.participants.selfMedia().audio).toBe(false);
    expect(await session.toggleMic()).toBe(true);
    expect(update).toHaveBeenCalledWith({ audio: true, video: true, screen: false });
  });

  it("the host's new code becomes the meeting's code; the old code and link stop working", async () => {
    const session = await hostedSession();
    const id = session.meeting!.id;
    const oldCode = session.accessCode!;
    const before = engine.listMeetings();
    await settle(500);
    const oldInvite = (await before).find((m) => m.meeting.id === id)!.invite_secret!;
    expect(oldInvite).toHaveLength(26);
    expect(session.inviteSecret).toBeNull();

    const rekeyed = session.rekey();
    await settle(500);
    const fresh = (await rekeyed)!;
    expect(fresh.access_code).toMatch(/^[A-Z2-9]{4}-[A-Z2-9]{4}$/);
    expect(fresh.access_code).not.toBe(oldCode);
    expect(fresh.invite_secret).not.toBe(oldInvite);
    expect(session.accessCode).toBe(fresh.access_code);
    expect(session.inviteSecret).toBe(fresh.invite_secret);
    expect(session.phase).toBe("in_meeting");

    const after = engine.listMeetings();
    await settle(500);
    expect((await after).find((m) => m.meeting.id === id)).toMatchObject({ access_code: fresh.access_code, invite_secret: fresh.invite_secret });
    for (const old of [oldCode, oldInvite]) {
      const refused = engine.join(old, "Pat", { camera: false, mic: false, chatOnly: true });
      const check = expect(refused).rejects.toMatchObject({ code: "invalid_code" });
      await settle(500);
      await check;
    }
  });

  it("a refused new code is explained and the meeting keeps its code", async () => {
    const session = await hostedSession();
    const code = session.accessCode;
    vi.spyOn(engine, "rekeyMeeting").mockRejectedValue(new EngineError("forbidden", "Only the host can issue a new code."));
    expect(await session.rekey()).toBeNull();
    expect(session.error).toBe("Only the host can issue a new code.");
    expect(session.accessCode).toBe(code);
    expect(session.inviteSecret).toBeNull();
  });

  it("does not report the close that follows the end of the meeting", async () => {
    const session = await hostedSession();
    session.handle({ event: "meeting_ended", status: "ended" });
    session.handle({ event: "connection", state: "disconnected", reason: "closed" });
    expect([session.phase, session.connection, session.error]).toEqual(["ended", "connected", null]);
  });

  it("refuses a relay whose key hash differs from the pin", async () => {
    const p = engine.connect({ address: DEMO_RELAY, pin: "00".repeat(32) });
    const check = expect(p).rejects.toMatchObject({ code: "pin_mismatch" });
    await settle(500);
    await check;
    expect(await engine.savedRelay()).toMatchObject({ address: DEMO_RELAY }); // staff preset kept, not replaced
  });

  it("joins as host, sends a chat message optimistically and gets a reply", async () => {
    const session = await hostedSession();
    expect(session.phase).toBe("in_meeting");
    expect(session.participants.isHost).toBe(true);
    await session.send("Good morning", false);
    expect(session.chat.messages()[0]?.status).toBe("sending");
    await settle(400);
    expect(session.chat.messages()[0]?.status).toBe("sent");
    expect(session.chat.messages()[0]?.seq).toBe(1);
    await settle(1000);
    expect(session.chat.typingNames(Date.now())).toHaveLength(1);
    await settle(2000);
    const texts = session.chat.messages().map((m) => m.status);
    expect(texts).toEqual(["sent", "received"]);
    expect(session.chat.unread).toBe(1);
  });

  it("a message sent while reconnecting fails and succeeds on retry", async () => {
    const session = await hostedSession();
    engine.simulateDrop(3000);
    expect(session.connection).toBe("reconnecting");
    const id = await session.send("Are you there?", false);
    await settle(400);
    expect(session.chat.messages()[0]?.status).toBe("failed");
    await settle(3000);
    expect(session.connection).toBe("connected");
    await session.retry(id!);
    await settle(400);
    expect(session.chat.messages()).toHaveLength(1);
    expect(session.chat.messages()[0]?.status).toBe("sent");
  });

  it("host sees the waiting room, admits and removes", async () => {
    const session = await hostedSession();
    await settle(4000);
    expect(session.participants.waiting).toHaveLength(1);
    const w = session.participants.waiting[0]!;
    await engine.admit(w.participant_id);
    expect(session.participants.waiting).toHaveLength(0);
    expect(session.participants.get(w.participant_id)?.display_name).toBe("Sam Rivera");
    await engine.remove(w.participant_id);
    expect(session.participants.get(w.participant_id)).toBeUndefined();
  });

  it("a guest waits in a waiting-room meeting until admitted, and sees no patient reference", async () => {
    const guestEngine = new DemoEngine();
    try {
      const hello = guestEngine.connect({ address: DEMO_RELAY, pin: DEMO_PIN });
      await settle(500);
      await hello;
      const session = new MeetingSession(guestEngine);
      const joined = session.join("care-7788", "Jordan", { camera: false, mic: true, chatOnly: false });
      await settle(500);
      await joined;
      expect(session.phase).toBe("waiting");
      expect(session.meeting?.patient_reference).toBeUndefined();
      await settle(5000);
      expect(session.phase).toBe("in_meeting");
      expect(session.participants.self?.role).toBe("guest");
      expect(session.chat.isStaff).toBe(false);
    } finally {
      guestEngine.dispose();
    }
  });

  it("an unknown code is refused with invalid_code", async () => {
    const hello = engine.connect({ address: DEMO_RELAY, pin: DEMO_PIN });
    await settle(500);
    await hello;
    const session = new MeetingSession(engine);
    const p = session.join("ZZZZ-ZZZZ", "Ann", { camera: true, mic: true, chatOnly: false });
    const check = expect(p).rejects.toBeInstanceOf(EngineError);
    await settle(500);
    await check;
    expect(session.phase).toBe("idle");
    expect(session.error).toMatch(/invalid/);
  });

  it("a failed camera toggle without a camera keeps the state and explains", async () => {
    const bare = new DemoEngine({ staffName: "Dr. Ada", noDevices: true });
    try {
      const hello = bare.connect({ address: DEMO_RELAY, pin: DEMO_PIN });
      await settle(500);
      await hello;
      const session = new MeetingSession(bare);
      const joined = session.join("HUDL-2345", "Dr. Ada", { camera: false, mic: false, chatOnly: true });
      await settle(500);
      await joined;
      expect(await session.toggleCamera()).toBe(false);
      expect(session.participants.selfMedia().video).toBe(false);
      expect(session.error).toMatch(/No camera/);
    } finally {
      bare.dispose();
    }
  });
});
