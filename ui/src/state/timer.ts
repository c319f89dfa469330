// Elapsed time and duration formatting.

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** `m:ss` under an hour, `h:mm:ss` after; negative or missing start gives `0:00`. */
export function formatElapsed(startMs: number | null | undefined, nowMs: number): string {
  if (startMs === null || startMs === undefined) return "0:00";
  const total = Math.max(0, Math.floor((nowMs - startMs) / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h > 0 ? `${h}:${pad2(m)}:${pad2(s)}` : `${m}:${pad2(s)}`;
}

/** Human duration for lists: `45 s`, `12 min`, `1 h 05 min`. */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || seconds < 0) return "—";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const totalMin = Math.round(seconds / 60);
  if (totalMin < 60) return `${totalMin} min`;
  return `${Math.floor(totalMin / 60)} h ${pad2(totalMin % 60)} min`;
}

/** Duration in whole seconds between two timestamps (ms), or null if either is missing. */
export function durationSecs(startMs: number | null | undefined, endMs: number | null | undefined): number | null {
  if (startMs === null || startMs === undefined || endMs === null || endMs === undefined) return null;
  return Math.max(0, Math.round((endMs - startMs) / 1000));
}

/** A running timer: calls `tick` every second while started (the UI's elapsed clock). */
export class MeetingTimer {
  private handle: ReturnType<typeof setInterval> | null = null;
  constructor(
    private readonly startMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  elapsed(): string {
    return formatElapsed(this.startMs, this.now());
  }

  start(tick: (text: string) => void): void {
    this.stop();
    tick(this.elapsed());
    this.handle = setInterval(() => tick(this.elapsed()), 1000);
  }

  stop(): void {
    if (this.handle !== null) clearInterval(this.handle);
    this.handle = null;
  }
}
