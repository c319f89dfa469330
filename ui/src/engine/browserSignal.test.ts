import { describe, expect, it } from "vitest";
import { EngineError } from "./engine";
import { deviceError, engineEvents, h264Codecs, joinOutcome, levelFromBytes, parseIncoming, qualityOf, SlotTable } from "./browserSignal";
import type { Entered, JoinState, MeetingInfo, ParticipantInfo, WireEvent } from "./types";
import { defaultSettings } from "./types";

const meeting: MeetingInfo = {
  id: "m1",
  title: "Check-up",
  kind: "consultation",
  status: "active",
  host_name: "Dr Who",
  locked: false,
  settings: defaultSettings(),
  created_at: 1,
};
const me: ParticipantInfo = {
  id: "p-me",
  display_name: "Pat",
  role: "guest",
  verified_staff: false,
  media: { audio: true, video: true, screen: false },
  audio_locked: false,
  joined_at: 2,
  connected: true,
};
const join: JoinState = { meeting, you: me, participants: [me], waiting: [], resume_token: "t", chat_seq: 0, notes_seq: 0, tracks: [] };
/** What the application gets of it: no resume token, no sequence numbers. */
const entered: Entered = { meeting, you: me, participants: [me], waiting: [], tracks: [], resumed: false };

describe("browser engine: relay messages", () => {
  it("reads replies, errors, events and WebRTC signaling", () => {
    expect(parseIncoming(JSON.stringify({ kind: "reply", id: 3, response: { type: "hello", version: 1, server: "x" } }))).toEqual({
      kind: "reply",
      id: 3,
      response: { type: "hello", version: 1, server: "x" },
    });
    expect(parseIncoming(JSON.stringify({ kind: "error", id: 4, error: { code: "invalid_code", message: "no", retry_after_ms: 5 } }))).toEqual({
      kind: "error",
      id: 4,
      error: { code: "invalid_code", message: "no", retry_after_ms: 5 },
    });
    expect(parseIncoming(JSON.stringify({ kind: "error", id: null, error: { code: "malformed", message: "?" } }))?.kind).toBe("error");
    expect(parseIncoming(JSON.stringify({ kind: "event", event: { type: "denied" } }))).toEqual({ kind: "event", event: { type: "denied" } });
    expect(parseIncoming(JSON.stringify({ webrtc: { answer: "v=0" } }))).toEqual({ kind: "rtc", signal: { type: "answer", sdp: "v=0" } });
    expect(parseIncoming(JSON.stringify({ webrtc: { slot: { mid: "7", kind: "video", track_id: 12, participant_id: "p2" } } }))).toEqual({
      kind: "rtc",
      signal: { type: "slot", mid: "7", kind: "video", track_id: "12", participant_id: "p2" },
    });
    expect(parseIncoming(JSON.stringify({ webrtc: { unslot: { mid: "7", track_id: 12 } } }))).toEqual({ kind: "rtc", signal: { type: "unslot", mid: "7" } });
    expect(parseIncoming(JSON.stringify({ webrtc: { error: "no H.264" } }))).toEqual({ kind: "rtc", signal: { type: "error", message: "no H.264" } });
  });

  it("ignores what it cannot read instead of throwing", () => {
    for (const bad of ["", "not json", "[]", "null", "42", '{"kind":"reply"}', '{"kind":"reply","id":"1","response":{}}', '{"kind":"event","event":3}', '{"kind":"nope"}', '{"webrtc":{"slot":{"mid":1}}}', '{"webrtc":{"slot":{"mid":"1","kind":"data","participant_id":"p"}}}', '{"webrtc":{}}', '{"kind":"error","id":1,"error":{}}']) {
      expect(parseIncoming(bad), bad).toBeNull();
    }
  });

  it("maps relay events to the engine's events (the desktop engine's shapes)", () => {
    const admitted = { type: "admitted", ...join } as WireEvent;
    expect(engineEvents(admitted, "p-me")).toEqual([{ event: "admitted", ...entered }]);
    const message = { meeting_id: "m1", seq: 1, client_msg_id: "c", sender_id: "p2", sender_name: "Dr Who", sender_verified: true, text: "<b>hi</b>", staff_only: false, sent_at: 5 };
    expect(engineEvents({ type: "chat", message }, "p-me")).toEqual([{ event: "chat", ...message, own: false }]);
    expect(engineEvents({ type: "chat", message }, "p2")).toEqual([{ event: "chat", ...message, own: true }]);
    expect(engineEvents({ type: "participant_left", participant_id: "p2", reason: "removed" }, null)).toEqual([{ event: "participant_left", participant_id: "p2", reason: "removed" }]);
    expect(engineEvents({ type: "meeting_ended", status: "completed" }, null)).toEqual([{ event: "meeting_ended", status: "completed" }]);
    expect(engineEvents({ type: "typing", participant_id: "p2", typing: true }, null)).toEqual([{ event: "typing", participant_id: "p2", typing: true }]);
    expect(engineEvents({ type: "role_changed", participant_id: "p-me", role: "moderator" }, "p-me")).toEqual([{ event: "role_changed", participant_id: "p-me", role: "moderator", you: true }]);
    expect(engineEvents({ type: "connection_changed", participant_id: "p2", connected: false }, "p-me")).toEqual([{ event: "participant_connection", participant_id: "p2", connected: false }]);
    expect(engineEvents({ type: "muted_by", by: "p2" }, "p-me")).toEqual([{ event: "muted", by: "p2" }]);
    expect(engineEvents({ type: "denied" }, "p-me")).toEqual([{ event: "denied" }]);
    // A newer relay's event this page does not know.
    expect(engineEvents({ type: "recording_started" } as unknown as WireEvent, null)).toEqual([]);
  });

  it("reads the join reply: in the meeting or waiting", () => {
    expect(joinOutcome({ type: "joined", ...join })).toEqual({ state: "joined", join: entered });
    expect(joinOutcome({ type: "waiting", participant_id: "p-me", resume_token: "t", meeting })).toEqual({ state: "waiting", participant_id: "p-me", meeting });
    expect(() => joinOutcome({ type: "waiting" })).toThrow(EngineError);
    expect(() => joinOutcome({ type: "chat_accepted" })).toThrow(/Unexpected reply/);
  });
});

describe("browser engine: receive slots", () => {
  it("maps mids to participants and back", () => {
    const t = new SlotTable();
    expect(t.apply({ type: "slot", mid: "2", kind: "audio", participant_id: "a", track_id: "1" })).toEqual([{ participant_id: "a", kind: "audio", mid: "2", available: true }]);
    expect(t.apply({ type: "slot", mid: "8", kind: "video", participant_id: "a", track_id: "2" })).toEqual([{ participant_id: "a", kind: "video", mid: "8", available: true }]);
    t.apply({ type: "slot", mid: "9", kind: "video", participant_id: "b", track_id: "3" });
    expect(t.midOf("a", "video")).toBe("8");
    expect(t.midOf("a", "audio")).toBe("2");
    expect(t.midOf("b", "audio")).toBeNull();
    expect(t.at("9")).toEqual({ participant_id: "b", kind: "video" });
    expect(t.at("3")).toBeNull();
    expect(t.apply({ type: "unslot", mid: "9" })).toEqual([{ participant_id: "b", kind: "video", mid: "9", available: false }]);
    expect(t.midOf("b", "video")).toBeNull();
    // Unknown mids and other signals change nothing.
    expect(t.apply({ type: "unslot", mid: "9" })).toEqual([]);
    expect(t.apply({ type: "answer", sdp: "" })).toEqual([]);
    expect(t.all().map((c) => c.mid).sort()).toEqual(["2", "8"]);
  });

  it("a slot reused for someone else, or a participant moved to another slot, reports the old one gone first", () => {
    const t = new SlotTable();
    t.apply({ type: "slot", mid: "8", kind: "video", participant_id: "a", track_id: "1" });
    expect(t.apply({ type: "slot", mid: "8", kind: "video", participant_id: "b", track_id: "2" })).toEqual([
      { participant_id: "a", kind: "video", mid: "8", available: false },
      { participant_id: "b", kind: "video", mid: "8", available: true },
    ]);
    expect(t.apply({ type: "slot", mid: "9", kind: "video", participant_id: "b", track_id: "3" })).toEqual([
      { participant_id: "b", kind: "video", mid: "8", available: false },
      { participant_id: "b", kind: "video", mid: "9", available: true },
    ]);
    expect(t.midOf("b", "video")).toBe("9");
    expect(t.at("8")).toBeNull();
  });

  it("forgets a participant who left", () => {
    const t = new SlotTable();
    t.apply({ type: "slot", mid: "1", kind: "audio", participant_id: "a", track_id: "1" });
    t.apply({ type: "slot", mid: "7", kind: "video", participant_id: "a", track_id: "2" });
    t.apply({ type: "slot", mid: "8", kind: "video", participant_id: "b", track_id: "3" });
    expect(t.forget("a").map((c) => [c.mid, c.available])).toEqual([
      ["1", false],
      ["7", false],
    ]);
    expect(t.all()).toEqual([{ participant_id: "b", kind: "video", mid: "8", available: true }]);
  });
});

describe("browser engine: media helpers", () => {
  it("offers H.264 packetization-mode 1 constrained baseline only (any mode-1 H.264 if that is missing)", () => {
    const codecs = [
      { mimeType: "video/VP8" },
      { mimeType: "video/H264", sdpFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f" },
      { mimeType: "video/H264", sdpFmtpLine: "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f" },
      { mimeType: "video/H264", sdpFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f" },
      { mimeType: "video/rtx", sdpFmtpLine: "apt=96" },
    ];
    expect(h264Codecs(codecs).map((c) => c.sdpFmtpLine)).toEqual(["level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"]);
    expect(h264Codecs(codecs.filter((c) => !/42e01f/.test(c.sdpFmtpLine ?? ""))).map((c) => c.sdpFmtpLine)).toEqual([
      "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f",
    ]);
    expect(h264Codecs([{ mimeType: "video/VP8" }, { mimeType: "video/AV1" }])).toEqual([]);
  });

  it("says clearly why the camera or microphone could not be used", () => {
    expect(deviceError("NotAllowedError", "camera").message).toMatch(/denied/);
    expect(deviceError("NotFoundError", "camera").message).toMatch(/No camera was found/);
    expect(deviceError("NotReadableError", "microphone").message).toMatch(/in use/);
    expect(deviceError("NoSecureContext", "camera").message).toMatch(/https/);
    expect(deviceError("", "camera and microphone").code).toBe("no_device");
  });

  it("measures levels and grades the connection", () => {
    expect(levelFromBytes(new Uint8Array(256).fill(128))).toBe(0);
    expect(levelFromBytes([])).toBe(0);
    const loud = Uint8Array.from({ length: 256 }, (_, i) => (i % 2 ? 128 + 60 : 128 - 60));
    expect(levelFromBytes(loud)).toBe(1);
    const soft = Uint8Array.from({ length: 256 }, (_, i) => (i % 2 ? 128 + 8 : 128 - 8));
    expect(levelFromBytes(soft)).toBeGreaterThan(0.1);
    expect(levelFromBytes(soft)).toBeLessThan(0.3);
    expect(qualityOf(20, 0)).toBe("good");
    expect(qualityOf(200, 0)).toBe("fair");
    expect(qualityOf(20, 0.05)).toBe("fair");
    expect(qualityOf(600, 0)).toBe("poor");
    expect(qualityOf(20, 0.2)).toBe("poor");
  });
});
