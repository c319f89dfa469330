// I420 → RGBA conversion (BT.601, limited range) for the 2D-canvas fallback and tests.
// The WebGL path does the same arithmetic in a fragment shader.

export interface Planes {
  y: Uint8Array;
  u: Uint8Array;
  v: Uint8Array;
  chromaWidth: number;
  chromaHeight: number;
}

/** Splits a packed I420 buffer into plane views (no copy). Throws if the buffer is too short. */
export function splitI420(width: number, height: number, data: Uint8Array): Planes {
  const cw = Math.ceil(width / 2);
  const ch = Math.ceil(height / 2);
  const ySize = width * height;
  const cSize = cw * ch;
  if (width <= 0 || height <= 0 || data.length < ySize + 2 * cSize) {
    throw new RangeError(`I420 ${width}x${height} needs ${ySize + 2 * cSize} bytes, got ${data.length}`);
  }
  return {
    y: data.subarray(0, ySize),
    u: data.subarray(ySize, ySize + cSize),
    v: data.subarray(ySize + cSize, ySize + 2 * cSize),
    chromaWidth: cw,
    chromaHeight: ch,
  };
}

function clamp(x: number): number {
  return x < 0 ? 0 : x > 255 ? 255 : Math.round(x);
}

/** One pixel, for tests and the shader's reference. */
export function yuvToRgb(y: number, u: number, v: number): [number, number, number] {
  const c = 1.164383 * (y - 16);
  const d = u - 128;
  const e = v - 128;
  return [clamp(c + 1.596027 * e), clamp(c - 0.391762 * d - 0.812968 * e), clamp(c + 2.017232 * d)];
}

/** Converts a whole frame into `out` (RGBA, width*height*4). */
export function i420ToRgba(width: number, height: number, data: Uint8Array, out: Uint8ClampedArray): void {
  const { y, u, v, chromaWidth } = splitI420(width, height, data);
  if (out.length < width * height * 4) throw new RangeError("output buffer too small");
  for (let row = 0; row < height; row++) {
    const cRow = (row >> 1) * chromaWidth;
    for (let col = 0; col < width; col++) {
      const ci = cRow + (col >> 1);
      const c = 1.164383 * ((y[row * width + col] ?? 0) - 16);
      const d = (u[ci] ?? 128) - 128;
      const e = (v[ci] ?? 128) - 128;
      const o = (row * width + col) * 4;
      out[o] = c + 1.596027 * e;
      out[o + 1] = c - 0.391762 * d - 0.812968 * e;
      out[o + 2] = c + 2.017232 * d;
      out[o + 3] = 255;
    }
  }
}
