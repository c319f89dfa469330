// Synthetic I420 pictures for the demo engine and tests: a soft colour field per
// participant, a moving bright block, and a frame counter drawn as 16 binary cells
// along the top (so a test can read the frame number back from pixels).

/** Bytes of one I420 frame. */
export function i420Size(width: number, height: number): number {
  const cw = Math.ceil(width / 2);
  const ch = Math.ceil(height / 2);
  return width * height + 2 * cw * ch;
}

/** Fills (or allocates) an I420 frame. `hue` 0..360 picks the background colour. */
export function drawSyntheticI420(
  width: number,
  height: number,
  frameNo: number,
  hue: number,
  out?: Uint8Array,
): Uint8Array {
  const size = i420Size(width, height);
  const data = out && out.length === size ? out : new Uint8Array(size);
  const cw = Math.ceil(width / 2);
  const ch = Math.ceil(height / 2);
  // Background: gentle vertical luma gradient.
  for (let y = 0; y < height; y++) {
    const v = 70 + Math.round((y / height) * 60);
    data.fill(v, y * width, y * width + width);
  }
  // Moving block.
  const bw = Math.max(8, Math.floor(width / 6));
  const bh = Math.max(8, Math.floor(height / 4));
  const span = Math.max(1, width - bw);
  const phase = frameNo % (2 * span);
  const bx = phase < span ? phase : 2 * span - phase;
  const by = Math.floor(height / 2 - bh / 2 + Math.sin(frameNo / 15) * (height / 6));
  for (let y = Math.max(0, by); y < Math.min(height, by + bh); y++) {
    data.fill(210, y * width + bx, y * width + Math.min(width, bx + bw));
  }
  // Frame counter: 16 cells along the top edge, white = 1, black = 0 (MSB first).
  const cell = Math.max(2, Math.floor(width / 32));
  for (let bit = 0; bit < 16; bit++) {
    const on = (frameNo >> (15 - bit)) & 1;
    for (let y = 0; y < cell; y++) {
      data.fill(on ? 235 : 16, y * width + bit * cell, y * width + bit * cell + cell);
    }
  }
  // Chroma: constant per participant from the hue.
  const rad = (hue * Math.PI) / 180;
  const u = Math.round(128 + 40 * Math.cos(rad));
  const v = Math.round(128 + 40 * Math.sin(rad));
  const uOff = width * height;
  data.fill(u, uOff, uOff + cw * ch);
  data.fill(v, uOff + cw * ch, uOff + 2 * cw * ch);
  // Counter cells stay neutral grey in chroma.
  const cCell = Math.ceil(cell / 2);
  for (let y = 0; y < cCell; y++) {
    data.fill(128, uOff + y * cw, uOff + y * cw + Math.min(cw, 16 * cCell));
    data.fill(128, uOff + cw * ch + y * cw, uOff + cw * ch + y * cw + Math.min(cw, 16 * cCell));
  }
  return data;
}

/** Reads the frame counter back from an I420 frame's luma (the inverse of the drawing above). */
export function readFrameCounter(width: number, data: Uint8Array): number {
  const cell = Math.max(2, Math.floor(width / 32));
  const mid = Math.floor(cell / 2);
  let n = 0;
  for (let bit = 0; bit < 16; bit++) {
    const px = data[mid * width + bit * cell + mid] ?? 0;
    n = (n << 1) | (px > 128 ? 1 : 0);
  }
  return n;
}
