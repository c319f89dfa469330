import { describe, expect, it } from "vitest";
import type { Entered, ParticipantInfo } from "../engine/types";
import { defaultSettings } from "../engine/types";
import { ParticipantsState, SPEAKER_HOLD_MS } from "./participants";

function person(id: string, name: string, joined: number, extra: Partial<ParticipantInfo> = {}): ParticipantInfo {
  return {
    id,
    display_name: name,
    role: "guest",
    verified_staff: false,
    media: { audio: true, video: true, screen: false },
    audio_locked: false,
    joined_at: joined,
    connected: true,
    ...extra,
  };
}

function joinState(): Entered {
  const you = person("me", "Dr. Ada", 10, { role: "host", verified_staff: true });
  return {
    meeting: {
      id: "m",
      title: "Follow-up",
      kind: "consultation",
      status: "active",
      host_name: "Dr. Ada",
      locked: false,
      settings: defaultSettings(),
      created_at: 0,
    },
    you,
    participants: [person("b", "Ben", 20), you],
    waiting: [{ participant_id: "w", display_name: "Wendy", since: 5 }],
    tracks: [],
    resumed: false,
  };
}

describe("participant state", () => {
  it("loads the join snapshot with self first and knows our rights", () => {
    const s = new ParticipantsState();
    s.apply({ event: "joined", ...joinState() }, 0);
    expect(s.list().map((p) => p.display_name)).toEqual(["Dr. Ada", "Ben"]);
    expect(s.self?.id).toBe("me");
    expect(s.isHost).toBe(true);
    expect(s.canModerate).toBe(true);
    expect(s.waiting.map((w) => w.display_name)).toEqual(["Wendy"]);
  });

  it("adds and removes participants, and an admitted one leaves the waiting list", () => {
    const s = new ParticipantsState();
    s.load(joinState());
    s.apply({ event: "participant_joined", participant: person("w", "Wendy", 30) }, 0);
    expect(s.count).toBe(3);
    expect(s.waiting).toEqual([]);
    s.apply({ event: "participant_left", participant_id: "b", reason: "left" }, 0);
    expect(s.remotes().map((p) => p.display_name)).toEqual(["Wendy"]);
  });

  it("tracks media, role and connection changes", () => {
    const s = new ParticipantsState();
    s.load(joinState());
    s.apply({ event: "media_changed", participant_id: "b", media: { audio: false, video: false, screen: true }, audio_locked: false }, 0);
    expect(s.get("b")?.media).toEqual({ audio: false, video: false, screen: true });
    s.apply({ event: "role_changed", participant_id: "b", role: "moderator", you: false }, 0);
    expect(s.get("b")?.role).toBe("moderator");
    s.apply({ event: "participant_connection", participant_id: "b", connected: false }, 0);
    expect(s.get("b")?.connected).toBe(false);
    s.apply({ event: "role_changed", participant_id: "me", role: "staff", you: true }, 0);
    expect(s.isHost).toBe(false);
    expect(s.canModerate).toBe(false);
  });

  it("a host mute turns our own microphone off", () => {
    const s = new ParticipantsState();
    s.load(joinState());
    expect(s.selfMedia().audio).toBe(true);
    s.apply({ event: "muted", by: "b" }, 0);
    expect(s.selfMedia().audio).toBe(false);
  });

  it("marks video availability, local frames mapping to self", () => {
    const s = new ParticipantsState();
    s.load(joinState());
    s.apply({ event: "video", participant_id: "b", available: true }, 0);
    s.apply({ event: "video", participant_id: "local", available: true }, 0);
    expect(s.get("b")?.videoAvailable).toBe(true);
    expect(s.self?.videoAvailable).toBe(true);
    s.apply({ event: "video", participant_id: "b", available: false }, 0);
    expect(s.get("b")?.videoAvailable).toBe(false);
  });

  it("a remote screen share takes the stage while shared and its frames arrive", () => {
    const s = new ParticipantsState();
    s.load(joinState());
    expect(s.sharer()).toBeNull();
    s.apply({ event: "media_changed", participant_id: "b", media: { audio: true, video: true, screen: true }, audio_locked: false }, 0);
    expect(s.sharer()).toBeNull();
    s.apply({ event: "screen", participant_id: "b", available: true }, 0);
    expect(s.sharer()?.id).toBe("b");
    expect(s.get("b")?.videoAvailable).toBe(false);
    // Stopping the share (media state) removes it at once, before its frames time out.
    s.apply({ event: "media_changed", participant_id: "b", media: { audio: true, video: true, screen: false }, audio_locked: false }, 0);
    expect(s.sharer()).toBeNull();
    s.apply({ event: "screen", participant_id: "b", available: false }, 0);
    expect(s.get("b")?.screenAvailable).toBe(false);
  });

  it("local video that started during the device check shows on our own tile after joining", () => {
    const s = new ParticipantsState();
    s.apply({ event: "video", participant_id: "local", available: true }, 0);
    s.load(joinState());
    expect(s.self?.videoAvailable).toBe(true);
    expect(s.get("b")?.videoAvailable).toBe(false);
  });

  it("active speaker: holds through a short interjection, switches after silence", () => {
    const s = new ParticipantsState();
    s.load(joinState());
    expect(s.activeSpeaker(0)).toBeNull();
    s.apply({ event: "audio_level", participant_id: "b", level: 0.5 }, 0);
    expect(s.activeSpeaker(0)).toBe("b");
    // I interject while Ben still speaks: Ben keeps the highlight.
    s.apply({ event: "audio_level", participant_id: "local", level: 0.6 }, 200);
    s.apply({ event: "audio_level", participant_id: "b", level: 0.4 }, 300);
    s.apply({ event: "audio_level", participant_id: "local", level: 0.6 }, 400);
    expect(s.activeSpeaker(400)).toBe("b");
    // Ben falls silent; after the hold I take over.
    s.apply({ event: "audio_level", participant_id: "b", level: 0.01 }, 500);
    const later = 300 + SPEAKER_HOLD_MS + 100;
    s.apply({ event: "audio_level", participant_id: "local", level: 0.6 }, later);
    expect(s.activeSpeaker(later)).toBe("me");
    // Everyone silent for long: no highlight.
    expect(s.activeSpeaker(later + SPEAKER_HOLD_MS * 3)).toBeNull();
  });

  it("a muted participant never becomes the active speaker", () => {
    const s = new ParticipantsState();
    s.load(joinState());
    s.apply({ event: "media_changed", participant_id: "b", media: { audio: false, video: true, screen: false }, audio_locked: false }, 0);
    s.apply({ event: "audio_level", participant_id: "b", level: 0.9 }, 10);
    expect(s.activeSpeaker(10)).toBeNull();
  });

  it("the speaker who leaves loses the highlight", () => {
    const s = new ParticipantsState();
    s.load(joinState());
    s.apply({ event: "audio_level", participant_id: "b", level: 0.9 }, 10);
    s.apply({ event: "participant_left", participant_id: "b", reason: "removed" }, 20);
    expect(s.activeSpeaker(20)).toBeNull();
  });
});
