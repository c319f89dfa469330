// Latest-frame-wins delivery: frames from the engine land here; each tile draws
// at most once per animation frame, always the newest frame of its participant.

import type { Engine, VideoFrame } from "../engine/engine";

export type Drawer = (frame: VideoFrame) => void;

export interface FrameStats {
  received: number;
  drawn: number;
  /** Frames replaced before they were drawn. */
  dropped: number;
}

export class FrameStore {
  private latest = new Map<string, VideoFrame>();
  private drawers = new Map<string, Set<Drawer>>();
  private dirty = new Set<string>();
  private scheduled = false;
  readonly stats = new Map<string, FrameStats>();

  constructor(private readonly schedule: (cb: () => void) => void) {}

  static attach(engine: Engine, schedule: (cb: () => void) => void): FrameStore {
    const store = new FrameStore(schedule);
    engine.subscribeFrames((f) => store.push(f));
    return store;
  }

  private stat(id: string): FrameStats {
    let s = this.stats.get(id);
    if (!s) {
      s = { received: 0, drawn: 0, dropped: 0 };
      this.stats.set(id, s);
    }
    return s;
  }

  push(frame: VideoFrame): void {
    const id = frame.participantId;
    const s = this.stat(id);
    s.received += 1;
    if (this.dirty.has(id)) s.dropped += 1;
    this.latest.set(id, frame);
    this.dirty.add(id);
    if (!this.scheduled) {
      this.scheduled = true;
      this.schedule(() => this.flush());
    }
  }

  /** Draws every participant that has a new frame; called once per animation frame. */
  flush(): void {
    this.scheduled = false;
    for (const id of this.dirty) {
      const f = this.latest.get(id);
      const set = this.drawers.get(id);
      if (!f || !set || set.size === 0) continue;
      for (const d of set) d(f);
      this.stat(id).drawn += 1;
    }
    this.dirty.clear();
  }

  /** A tile asks for frames of one participant; it gets the last one at once if there is one. */
  register(id: string, drawer: Drawer): () => void {
    let set = this.drawers.get(id);
    if (!set) {
      set = new Set();
      this.drawers.set(id, set);
    }
    set.add(drawer);
    const last = this.latest.get(id);
    if (last) drawer(last);
    return () => {
      set?.delete(drawer);
    };
  }

  /** Forget a participant's last frame (video stopped). */
  clear(id: string): void {
    this.latest.delete(id);
    this.dirty.delete(id);
  }
}
