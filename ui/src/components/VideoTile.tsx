// One participant's tile: their video, or their initials when no video arrives;
// name, verified mark and media badges. The video comes one of two ways, as the
// engine delivers it: I420 frames drawn on a canvas (desktop: decoded in Rust,
// latest wins), or a MediaStream in a <video> (browser guest: `engine.videoStream`).

import { createEffect, createMemo, createSignal, onCleanup, Show, type JSX } from "solid-js";
import { useApp } from "../appContext";
import { createRenderer, type FrameRenderer } from "../video/renderer";
import { Icon } from "./Icon";

export interface TileProps {
  /** Participant id, or `local` for this device's camera. */
  frameId: string;
  name: string;
  verified?: boolean;
  audio: boolean;
  video: boolean;
  videoAvailable: boolean;
  speaking?: boolean;
  connected?: boolean;
  self?: boolean;
  /** A screen share: no media badges, the picture is shown whole (letterboxed). */
  screen?: boolean;
  variant?: "grid" | "main" | "pip" | "preview" | "strip" | "screen";
  label?: string;
}

export function initials(name: string): string {
  const parts = name.replace(/^(dr|mr|mrs|ms|nurse)\.?\s+/i, "").trim().split(/\s+/).filter(Boolean);
  const first = parts[0]?.[0] ?? "?";
  const last = parts.length > 1 ? (parts[parts.length - 1]?.[0] ?? "") : "";
  return (first + last).toUpperCase();
}

export function VideoTile(props: TileProps): JSX.Element {
  const app = useApp();
  const [canvas, setCanvas] = createSignal<HTMLCanvasElement>();
  const [videoEl, setVideoEl] = createSignal<HTMLVideoElement>();
  /** The engine hands over MediaStreams rather than frames. */
  const streams = app.engine.videoStream !== undefined;
  const [box, setBox] = createSignal<HTMLElement>();

  // Tell the engine the tile's size in device pixels: video is scaled to it before it
  // gets here. A tile scrolled out of view (e.g. in the camera strip) reports 0×0:
  // none of its frames are scaled or sent until it shows again.
  createEffect(() => {
    const el = box();
    const id = props.frameId;
    const engine = app.engine;
    if (!el || !engine.setVideoSize || typeof ResizeObserver === "undefined") return;
    let visible = true;
    const report = (): void => {
      const r = el.getBoundingClientRect();
      const dpr = window.devicePixelRatio || 1;
      if (!visible) engine.setVideoSize?.(id, 0, 0);
      else if (r.width > 0 && r.height > 0) engine.setVideoSize?.(id, r.width * dpr, r.height * dpr);
    };
    const ro = new ResizeObserver(report);
    ro.observe(el);
    let io: IntersectionObserver | undefined;
    if (typeof IntersectionObserver !== "undefined") {
      io = new IntersectionObserver((entries) => {
        const e = entries[entries.length - 1];
        if (e && e.isIntersecting !== visible) {
          visible = e.isIntersecting;
          report();
        }
      });
      io.observe(el);
    }
    report();
    onCleanup(() => {
      ro.disconnect();
      io?.disconnect();
    });
  });

  // Memos: participant updates (levels, names) must not restart the renderer.
  const frameId = createMemo(() => props.frameId);
  const show = createMemo(() => props.video && props.videoAvailable);

  // Streams: looked up when the tile's video (re)appears; the engine announces a new
  // stream with `video` unavailable → available, which toggles `show`.
  const stream = createMemo(() => (streams && show() ? (app.engine.videoStream?.(frameId()) ?? null) : null));
  createEffect(() => {
    const v = videoEl();
    const s = stream();
    if (v && v.srcObject !== s) v.srcObject = s;
  });

  createEffect(() => {
    const id = frameId();
    const c = canvas();
    if (streams || !c || !show()) return;
    // One renderer per canvas element (the canvas is recreated when video comes back).
    const renderer: FrameRenderer | null = createRenderer(c, app.rendererPreference);
    c.dataset.renderer = renderer?.kind ?? "none";
    let drawn = 0;
    let drawMs = 0;
    const off = app.frames.register(id, (f) => {
      try {
        const t0 = performance.now();
        renderer?.draw(f);
        drawMs += performance.now() - t0;
        drawn += 1;
        // Read by the end-to-end tests and measurements.
        c.dataset.framesDrawn = String(drawn);
        c.dataset.drawMs = drawMs.toFixed(1);
        c.dataset.framesReceived = String(app.frames.stats.get(id)?.received ?? 0);
      } catch {
        // A malformed frame is skipped; the next one may be fine.
      }
    });
    onCleanup(() => {
      off();
      renderer?.dispose();
    });
  });

  return (
    <figure
      ref={setBox}
      class={`tile tile-${props.variant ?? "grid"}`}
      classList={{ "tile-speaking": !!props.speaking, "tile-self": !!props.self, "tile-offline": props.connected === false }}
      aria-label={props.label ?? `${props.name}${props.self ? " (you)" : ""}${props.audio ? "" : ", microphone off"}${props.video ? "" : ", camera off"}`}
      data-participant={props.frameId}
    >
      <Show when={show()} fallback={<div class="tile-avatar" aria-hidden="true">{initials(props.name)}</div>}>
        <Show when={streams} fallback={<canvas ref={setCanvas} class="tile-canvas" classList={{ mirror: !!props.self }} />}>
          {/* Muted: the engine plays the sound (desktop: in Rust; browser: its own audio elements). */}
          <video
            ref={setVideoEl}
            class="tile-canvas"
            classList={{ mirror: !!props.self }}
            data-testid={props.self ? "local-video" : "remote-video"}
            autoplay
            playsinline
            muted
          />
        </Show>
      </Show>
      <Show when={props.connected === false}>
        <div class="tile-overlay">Reconnecting…</div>
      </Show>
      <figcaption class="tile-caption">
        <Show when={!props.audio && !props.screen}>
          <span class="badge badge-muted" title="Microphone off">
            <Icon name="micOff" size={16} />
            <span class="sr-only">Microphone off</span>
          </span>
        </Show>
        <Show when={!props.video && !props.screen}>
          <span class="badge badge-muted" title="Camera off">
            <Icon name="cameraOff" size={16} />
            <span class="sr-only">Camera off</span>
          </span>
        </Show>
        <span class="tile-name">
          {props.name}
          {props.self ? " (you)" : ""}
        </span>
        <Show when={props.verified}>
          <span class="verified" title="Verified clinic staff">
            <Icon name="verified" size={16} />
            <span class="sr-only">Verified clinic staff</span>
          </span>
        </Show>
      </figcaption>
    </figure>
  );
}
