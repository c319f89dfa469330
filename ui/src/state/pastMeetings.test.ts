import { describe, expect, it } from "vitest";
import type { LocalMeeting } from "../engine/engine";
import { defaultSettings, type MeetingInfo, type PastMeeting } from "../engine/types";
import { dayRange, filterPast, mergePast } from "./pastMeetings";

function local(id: string, title: string, at: number, extra: Partial<LocalMeeting> = {}): LocalMeeting {
  return { meeting_id: id, title, kind: "video", status: "active", role: "guest", patient_reference: null, last_seen_at: at, ...extra };
}

function relay(id: string, title: string, started: number | null, created: number, held = false): PastMeeting {
  const meeting: MeetingInfo = { id, title, kind: "consultation", status: "completed", host_name: "Dr. Ada", locked: false, settings: defaultSettings(), created_at: created };
  if (started !== null) meeting.started_at = started;
  return { meeting, held };
}

describe("past meetings: merging this device's and the relay's lists", () => {
  it("keeps one row per meeting, the relay's facts winning, newest first", () => {
    const rows = mergePast(
      [local("a", "Old title", 100, { status: "active" }), local("b", "Only here", 500)],
      [relay("a", "Knee review", 300, 50, true), relay("c", "Only on relay", null, 200)],
    );
    expect(rows.map((r) => [r.meeting_id, r.title, r.at, r.onDevice])).toEqual([
      ["b", "Only here", 500, true],
      ["a", "Knee review", 300, true],
      ["c", "Only on relay", 200, false],
    ]);
    expect(rows.find((r) => r.meeting_id === "a")!.status).toBe("completed");
    expect(rows.find((r) => r.meeting_id === "a")!.held).toBe(true);
  });

  it("works with no relay list (guests, or the relay unreachable)", () => {
    expect(mergePast([local("a", "x", 1, { role: "host" })], []).map((r) => [r.meeting_id, r.held])).toEqual([["a", true]]);
    expect(mergePast([], [])).toEqual([]);
  });
});

describe("past meetings: search and date range", () => {
  const rows = mergePast([local("a", "Knee Review", 1000), local("b", "Team huddle", 2000), local("c", "knee follow-up", 3000)], []);

  it("matches every typed word in the title, ignoring case and extra spaces", () => {
    expect(filterPast(rows, { text: "KNEE", from: null, to: null }).map((r) => r.meeting_id)).toEqual(["c", "a"]);
    expect(filterPast(rows, { text: "  knee   review ", from: null, to: null }).map((r) => r.meeting_id)).toEqual(["a"]);
    expect(filterPast(rows, { text: "", from: null, to: null })).toHaveLength(3);
    expect(filterPast(rows, { text: "nothing", from: null, to: null })).toHaveLength(0);
  });

  it("takes the lower bound inclusive and the upper bound exclusive", () => {
    expect(filterPast(rows, { text: "", from: 2000, to: 3000 }).map((r) => r.meeting_id)).toEqual(["b"]);
    expect(filterPast(rows, { text: "", from: 2001, to: null }).map((r) => r.meeting_id)).toEqual(["c"]);
    expect(filterPast(rows, { text: "", from: null, to: 1000 })).toHaveLength(0);
  });

  it("turns date fields into whole local days, and ignores empty or broken ones", () => {
    const r = dayRange("2026-12-01", "2026-12-07");
    expect(r.from).toBe(new Date(2026, 11, 1).getTime());
    expect(r.to).toBe(new Date(2026, 11, 8).getTime());
    expect(dayRange("", "not a date")).toEqual({ from: null, to: null });
  });
});
