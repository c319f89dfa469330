// The listener set each engine keeps for its events: add one and get back the
// function that removes it, tell every listener in turn.

import type { Unsubscribe } from "./engine";

export class Listeners<T> {
  private readonly set = new Set<(value: T) => void>();

  /** How many listen now. */
  get size(): number {
    return this.set.size;
  }

  add(listener: (value: T) => void): Unsubscribe {
    this.set.add(listener);
    return () => this.set.delete(listener);
  }

  /** Calls each listener with `value` (one removed meanwhile is not called). */
  emit(value: T): void {
    for (const l of this.set) l(value);
  }
}
