// Solid adapter for the framework-independent state classes.

import { createMemo, createSignal, onCleanup, type Accessor } from "solid-js";
import type { Observable } from "../state/observable";

/** A signal that changes whenever `obs` reports a change; read it to track. */
export function useVersion(obs: Observable): Accessor<number> {
  const [v, setV] = createSignal(obs.version);
  const off = obs.onChange(() => setV(obs.version));
  onCleanup(off);
  return v;
}

/** A derived value recomputed on every change of `obs`. */
export function useSelect<T>(obs: Observable, select: () => T): Accessor<T> {
  const v = useVersion(obs);
  return () => {
    v();
    return select();
  };
}

/** Current time, ticking every `ms`. */
export function useNow(ms = 1000): Accessor<number> {
  const [now, setNow] = createSignal(Date.now());
  const t = setInterval(() => setNow(Date.now()), ms);
  onCleanup(() => clearInterval(t));
  return now;
}

/** Same ids in the same order. */
export function sameIds(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** A list of ids recomputed on every change of `obs` that only notifies when the ids
 * themselves change: `<For>` over it keeps each row's component (and its local state)
 * while the objects behind the ids are replaced. */
export function useIds(obs: Observable, select: () => readonly string[]): Accessor<readonly string[]> {
  const v = useVersion(obs);
  return createMemo(
    () => {
      v();
      return select();
    },
    [],
    { equals: sameIds },
  );
}
