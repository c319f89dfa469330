// Entry point. The Tauri shell injects its engine as `window.clinicmeetEngine`
// before this script runs; a plain browser gets the in-memory DemoEngine.
// Demo URL switches: ?staff=Name (start enrolled), ?devices=none, ?renderer=2d, ?reset.

import { render } from "solid-js/web";
import { App } from "./App";
import type { Engine } from "./engine/engine";
import { DemoEngine } from "./engine/demo";
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
if (window.clinicmeetEngine) {
  engine = window.clinicmeetEngine;
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

const root = document.getElementById("root");
if (root) render(() => <App engine={engine} rendererPreference={params.get("renderer") === "2d" ? "2d" : "webgl"} />, root);
