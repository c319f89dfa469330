// A virtualized vertical list: renders only the rows in view (plus overscan),
// measures real row heights as they render, sticks to the bottom for chat.

import { createEffect, createMemo, createSignal, For, on, onCleanup, onMount, type JSX } from "solid-js";
import { visibleRange } from "./virtual";

export interface VirtualListProps<T> {
  items: readonly T[];
  key: (item: T) => string;
  estimate: number;
  children: (item: T) => JSX.Element;
  /** Keep the view pinned to the newest item while the user is at the bottom. */
  stickToBottom?: boolean;
  class?: string;
  ariaLabel: string;
}

export function VirtualList<T>(props: VirtualListProps<T>): JSX.Element {
  let viewport: HTMLDivElement | undefined;
  const [scrollTop, setScrollTop] = createSignal(0);
  const [height, setHeight] = createSignal(400);
  const [measured, setMeasured] = createSignal(new Map<string, number>(), { equals: false });
  let atBottom = true;

  const heights = createMemo(() => {
    const m = measured();
    return props.items.map((it) => m.get(props.key(it)) ?? props.estimate);
  });
  const range = createMemo(() => visibleRange(heights(), scrollTop(), height(), 8));
  const rows = createMemo(() => {
    const r = range();
    return props.items.slice(r.start, r.end);
  });

  const observer = new ResizeObserver((entries) => {
    let changed = false;
    const m = measured();
    for (const e of entries) {
      const el = e.target as HTMLElement;
      const k = el.dataset.key;
      if (!k) continue;
      const h = Math.ceil(el.getBoundingClientRect().height);
      if (h > 0 && m.get(k) !== h) {
        m.set(k, h);
        changed = true;
      }
    }
    if (changed) {
      setMeasured(m);
      if (atBottom && props.stickToBottom) scrollToBottom();
    }
  });
  onCleanup(() => observer.disconnect());

  const scrollToBottom = () => {
    if (!viewport) return;
    viewport.scrollTop = viewport.scrollHeight;
    setScrollTop(viewport.scrollTop);
  };

  onMount(() => {
    if (!viewport) return;
    const vp = viewport;
    const ro = new ResizeObserver(() => setHeight(vp.clientHeight));
    ro.observe(vp);
    onCleanup(() => ro.disconnect());
    setHeight(vp.clientHeight);
    if (props.stickToBottom) requestAnimationFrame(scrollToBottom);
  });

  createEffect(
    on(
      () => props.items.length,
      () => {
        if (props.stickToBottom && atBottom) requestAnimationFrame(scrollToBottom);
      },
    ),
  );

  return (
    <div
      ref={viewport}
      class={`vlist ${props.class ?? ""}`}
      role="log"
      aria-label={props.ariaLabel}
      aria-live="polite"
      tabIndex={0}
      onScroll={(e) => {
        const el = e.currentTarget;
        setScrollTop(el.scrollTop);
        atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 48;
      }}
    >
      <div style={{ height: `${range().before}px` }} aria-hidden="true" />
      <For each={rows()}>
        {(item) => (
          <div
            class="vlist-row"
            data-key={props.key(item)}
            ref={(el) => {
              observer.observe(el);
              onCleanup(() => observer.unobserve(el));
            }}
          >
            {props.children(item)}
          </div>
        )}
      </For>
      <div style={{ height: `${range().after}px` }} aria-hidden="true" />
    </div>
  );
}
