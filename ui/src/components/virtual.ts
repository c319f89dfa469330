// Windowing arithmetic for the virtualized chat list (pure, tested).

export interface Range {
  /** First index to render. */
  start: number;
  /** One past the last index to render. */
  end: number;
  /** Pixels above `start` (spacer height). */
  before: number;
  /** Pixels below `end - 1`. */
  after: number;
  /** Total content height. */
  total: number;
}

/** Prefix offsets: offsets[i] = top of item i; offsets[n] = total height. */
export function offsetsOf(heights: readonly number[]): number[] {
  const out = new Array<number>(heights.length + 1);
  out[0] = 0;
  for (let i = 0; i < heights.length; i++) out[i + 1] = (out[i] ?? 0) + (heights[i] ?? 0);
  return out;
}

/** Index of the item containing pixel `y` (binary search over the offsets). */
export function indexAt(offsets: readonly number[], y: number): number {
  let lo = 0;
  let hi = offsets.length - 2;
  if (hi < 0) return 0;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((offsets[mid] ?? 0) <= y) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Items to render for a viewport, with `overscan` extra items on each side. */
export function visibleRange(heights: readonly number[], scrollTop: number, viewport: number, overscan = 6): Range {
  const n = heights.length;
  const offsets = offsetsOf(heights);
  const total = offsets[n] ?? 0;
  if (n === 0) return { start: 0, end: 0, before: 0, after: 0, total };
  const top = Math.max(0, Math.min(scrollTop, Math.max(0, total - viewport)));
  const first = indexAt(offsets, top);
  const last = indexAt(offsets, top + Math.max(viewport, 1) - 1);
  const start = Math.max(0, first - overscan);
  const end = Math.min(n, last + 1 + overscan);
  return { start, end, before: offsets[start] ?? 0, after: total - (offsets[end] ?? total), total };
}
