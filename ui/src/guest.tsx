// The browser guest page, served by the relay over HTTPS (`/`, `/join#CODE`): the
// desktop app's screens (invite landing, join, device check, waiting room, meeting)
// over a BrowserEngine (WebSocket signaling + getUserMedia + RTCPeerConnection).

import { render } from "solid-js/web";
import { App } from "./App";
import { BrowserEngine } from "./engine/browser";
import "./styles.css";

declare global {
  interface Window {
    /** The guest page's engine, for the end-to-end test (`peer.getStats()`). */
    clinicmeetGuest?: BrowserEngine;
  }
}

const engine = new BrowserEngine();
window.clinicmeetGuest = engine;
const root = document.getElementById("root");
if (root) render(() => <App engine={engine} mode="browser" />, root);
