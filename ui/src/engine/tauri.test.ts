import { describe, expect, it } from "vitest";
import { decodeBatch, decodeFrame } from "./tauri";

function frame(id: string, w: number, h: number, fill: number, extra = 0): ArrayBuffer {
  const idBytes = new TextEncoder().encode(id);
  const planes = w * h + 2 * Math.ceil(w / 2) * Math.ceil(h / 2);
  const buf = new ArrayBuffer(9 + idBytes.length + planes + extra);
  const v = new DataView(buf);
  v.setUint32(0, 0x31464d43, true);
  v.setUint16(4, w, true);
  v.setUint16(6, h, true);
  v.setUint8(8, idBytes.length);
  new Uint8Array(buf, 9, idBytes.length).set(idBytes);
  new Uint8Array(buf, 9 + idBytes.length).fill(fill);
  return buf;
}

describe("decodeFrame (the shell's binary frame messages)", () => {
  it("reads the header and the I420 planes", () => {
    const f = decodeFrame(frame("local", 3, 3, 7));
    expect(f).not.toBeNull();
    expect(f?.participantId).toBe("local");
    expect([f?.width, f?.height, f?.data.length]).toEqual([3, 3, 9 + 8]);
    expect(f?.data[0]).toBe(7);
  });

  it("refuses wrong magic and wrong sizes", () => {
    const bad = frame("p", 2, 2, 0);
    new DataView(bad).setUint32(0, 0, true);
    expect(decodeFrame(bad)).toBeNull();
    expect(decodeFrame(frame("p", 2, 2, 0, 1))).toBeNull();
    expect(decodeFrame(new ArrayBuffer(4))).toBeNull();
  });
});

function batch(frames: ArrayBuffer[], truncate = 0): ArrayBuffer {
  const len = 6 + frames.reduce((n, f) => n + 4 + f.byteLength, 0);
  const buf = new ArrayBuffer(len);
  const v = new DataView(buf);
  v.setUint32(0, 0x31424d43, true);
  v.setUint16(4, frames.length, true);
  let at = 6;
  for (const f of frames) {
    v.setUint32(at, f.byteLength, true);
    new Uint8Array(buf, at + 4).set(new Uint8Array(f));
    at += 4 + f.byteLength;
  }
  return buf.slice(0, len - truncate);
}

describe("decodeBatch (one next_frames answer)", () => {
  it("reads every frame of a batch", () => {
    const fs = decodeBatch(batch([frame("a", 2, 2, 1), frame("b", 4, 2, 2)]));
    expect(fs.map((f) => [f.participantId, f.width, f.data[0]])).toEqual([
      ["a", 2, 1],
      ["b", 4, 2],
    ]);
    expect(decodeBatch(batch([]))).toEqual([]);
  });

  it("stops at a truncated entry and refuses other magic", () => {
    expect(decodeBatch(batch([frame("a", 2, 2, 1), frame("b", 2, 2, 2)], 3)).map((f) => f.participantId)).toEqual(["a"]);
    expect(decodeBatch(frame("a", 2, 2, 1))).toEqual([]);
  });
});
