import { describe, expect, it } from "vitest";
import { drawSyntheticI420, i420Size } from "../engine/synthetic";
import { i420ToRgba, splitI420, yuvToRgb } from "./convert";
import { FrameStore } from "./frames";

describe("I420 conversion", () => {
  it("maps limited-range black, white and primaries (BT.601)", () => {
    expect(yuvToRgb(16, 128, 128)).toEqual([0, 0, 0]);
    expect(yuvToRgb(235, 128, 128)).toEqual([255, 255, 255]);
    const [r, g, b] = yuvToRgb(81, 90, 240); // BT.601 red
    expect(r).toBeGreaterThan(250);
    expect(g).toBeLessThan(5);
    expect(b).toBeLessThan(5);
  });

  it("converts a frame using the chroma of each 2x2 block", () => {
    const w = 4;
    const h = 2;
    const data = new Uint8Array(i420Size(w, h));
    data.fill(235, 0, 8); // luma white
    data.set([128, 128], 8); // U
    data.set([128, 240], 10); // V: right block reddish
    const out = new Uint8ClampedArray(w * h * 4);
    i420ToRgba(w, h, data, out);
    expect([...out.slice(0, 4)]).toEqual([255, 255, 255, 255]);
    expect(out[3 * 4 + 1]).toBeLessThan(200); // right block: V raises red, lowers green
    expect(out[1 * 4 + 1]).toBe(255); // left block untouched
    expect(out[3 * 4]).toBe(255);
  });

  it("refuses a buffer shorter than the frame", () => {
    expect(() => splitI420(640, 360, new Uint8Array(100))).toThrow(RangeError);
    expect(() => splitI420(0, 360, new Uint8Array(100))).toThrow(RangeError);
  });
});

describe("frame store: latest frame wins", () => {
  it("draws only the newest frame per participant per animation frame", () => {
    const pending: Array<() => void> = [];
    const store = new FrameStore((cb) => pending.push(cb));
    const drawn: number[] = [];
    store.register("p", (f) => drawn.push(f.data[0] ?? -1));
    for (const n of [1, 2, 3]) store.push({ participantId: "p", width: 2, height: 2, data: new Uint8Array(6).fill(n) });
    expect(pending).toHaveLength(1); // one flush scheduled, not three
    pending.shift()!();
    expect(drawn).toEqual([3]);
    expect(store.stats.get("p")).toEqual({ received: 3, drawn: 1, dropped: 2 });
  });

  it("hands a late tile the last frame at once and stops after unregister", () => {
    const pending: Array<() => void> = [];
    const store = new FrameStore((cb) => pending.push(cb));
    store.push({ participantId: "q", width: 64, height: 32, data: drawSyntheticI420(64, 32, 9, 0) });
    let count = 0;
    const off = store.register("q", () => count++);
    expect(count).toBe(1);
    off();
    pending.shift()!();
    expect(count).toBe(1);
  });
});
