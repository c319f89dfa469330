import { describe, expect, it } from "vitest";
import { decodeFrame } from "./tauri";

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

