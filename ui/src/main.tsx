// Entry point. An engine injected as `window.clinicmeetEngine` wins; inside the
// Tauri shell the TauriEngine is used; a plain browser (`npm run dev`) gets the
// in-memory DemoEngine.
// Demo URL switches: ?staff=Name (start enrolled), ?devices=none, ?renderer=2d, ?reset.

import { render } from "solid-js/web";
import { App } from "./App";
import type { Engine } from "./engine/engine";
import { DemoEngine } from "./engine/demo";
import { TauriEngine } from "./engine/tauri";
import "./styles.css";

declare global {
  interface Window {
    clinicmeetEngine?: Engine;
    /** The demo engine, for the screenshot script and manual testing (reconnect etc.). */
    demoEngine?: DemoEngine;
  }
}

const params = new URLSearchParams(location.search);
if (params.has("reset")) localStorage.removeItem("clinicmeet.demo");

let engine: Engine;
let tauri: TauriEngine | null = null;
if (window.clinicmeetEngine) {
  engine = window.clinicmeetEngine;
} else if (TauriEngine.available()) {
  // The desktop app: the Rust shell over shared/client.
  tauri = new TauriEngine();
  window.clinicmeetEngine = tauri;
  engine = tauri;
} else {
  const staffName = params.get("staff");
  const demo = new DemoEngine({
    persist: true,
    noDevices: params.get("devices") === "none",
    ...(staffName ? { staffName } : {}),
  });
  window.demoEngine = demo;
  engine = demo;
}

async function start(): Promise<void> {
  // An invite link the app was opened with carries the meeting code (as `#CODE` does in a browser).
  if (tauri && !location.hash) {
    const code = await tauri.launchInfo().then((l) => l.code, () => null);
    if (code) location.hash = code;
  }
  const root = document.getElementById("root");
  if (root) render(() => <App engine={engine} rendererPreference={params.get("renderer") === "2d" ? "2d" : "webgl"} />, root);
}
void start();
