import { describe, expect, it } from "vitest";
import { drawSyntheticI420, i420Size, readFrameCounter } from "./synthetic";

describe("synthetic I420 frames", () => {
  it("has the packed I420 size, odd sizes rounded up in chroma", () => {
    expect(i420Size(640, 360)).toBe(640 * 360 * 3 / 2);
    expect(i420Size(5, 3)).toBe(15 + 2 * 3 * 2);
    expect(drawSyntheticI420(640, 360, 0, 0).length).toBe(i420Size(640, 360));
  });

  it("carries a frame number that reads back", () => {
    for (const n of [0, 1, 2, 255, 1000, 65535]) {
      expect(readFrameCounter(320, drawSyntheticI420(320, 180, n, 200))).toBe(n);
    }
  });

  it("reuses the output buffer when its size fits", () => {
    const buf = new Uint8Array(i420Size(64, 32));
    expect(drawSyntheticI420(64, 32, 3, 10, buf)).toBe(buf);
  });
});
