import { describe, expect, it } from "vitest";
import { indexAt, offsetsOf, visibleRange } from "./virtual";

describe("virtual list window", () => {
  it("renders only the items in view plus overscan", () => {
    const heights = new Array<number>(10_000).fill(40);
    const r = visibleRange(heights, 4000, 400, 5);
    expect(r.start).toBe(95);
    expect(r.end).toBe(115);
    expect(r.before).toBe(95 * 40);
    expect(r.after).toBe((10_000 - 115) * 40);
    expect(r.before + (r.end - r.start) * 40 + r.after).toBe(r.total);
  });

  it("handles variable heights", () => {
    const heights = [10, 100, 10, 100, 10];
    expect(offsetsOf(heights)).toEqual([0, 10, 110, 120, 220, 230]);
    expect(indexAt(offsetsOf(heights), 0)).toBe(0);
    expect(indexAt(offsetsOf(heights), 109)).toBe(1);
    expect(indexAt(offsetsOf(heights), 110)).toBe(2);
    const r = visibleRange(heights, 105, 10, 0);
    expect([r.start, r.end]).toEqual([1, 3]);
  });

  it("clamps a scroll position past the end and copes with an empty list", () => {
    const r = visibleRange(new Array<number>(100).fill(20), 1e9, 200, 0);
    expect(r.end).toBe(100);
    expect(r.start).toBe(90);
    expect(visibleRange([], 0, 100)).toEqual({ start: 0, end: 0, before: 0, after: 0, total: 0 });
  });
});
