import { afterEach, describe, expect, it, vi } from "vitest";
import { durationSecs, formatDuration, formatElapsed, MeetingTimer } from "./timer";

describe("meeting timer", () => {
  afterEach(() => vi.useRealTimers());

  it("formats elapsed time as m:ss then h:mm:ss", () => {
    const t0 = 1_700_000_000_000;
    expect(formatElapsed(t0, t0)).toBe("0:00");
    expect(formatElapsed(t0, t0 + 9_999)).toBe("0:09");
    expect(formatElapsed(t0, t0 + 65_000)).toBe("1:05");
    expect(formatElapsed(t0, t0 + 59 * 60_000 + 59_000)).toBe("59:59");
    expect(formatElapsed(t0, t0 + 3_600_000)).toBe("1:00:00");
    expect(formatElapsed(t0, t0 + 3_600_000 + 61_000)).toBe("1:01:01");
  });

  it("never shows negative time (clock skew) and handles a missing start", () => {
    expect(formatElapsed(2000, 1000)).toBe("0:00");
    expect(formatElapsed(null, 1000)).toBe("0:00");
  });

  it("formats durations for lists", () => {
    expect(formatDuration(null)).toBe("—");
    expect(formatDuration(42)).toBe("42 s");
    expect(formatDuration(12 * 60 + 10)).toBe("12 min");
    expect(formatDuration(65 * 60)).toBe("1 h 05 min");
    expect(durationSecs(1000, 61_000)).toBe(60);
    expect(durationSecs(1000, null)).toBeNull();
  });

  it("ticks every second while running and stops", () => {
    vi.useFakeTimers();
    let now = 0;
    const timer = new MeetingTimer(0, () => now);
    const seen: string[] = [];
    timer.start((t) => seen.push(t));
    now = 1000;
    vi.advanceTimersByTime(1000);
    now = 2000;
    vi.advanceTimersByTime(1000);
    timer.stop();
    now = 3000;
    vi.advanceTimersByTime(3000);
    expect(seen).toEqual(["0:00", "0:01", "0:02"]);
  });
});
