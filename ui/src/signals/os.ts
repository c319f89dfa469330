// The window title and OS notifications: in the desktop app through Tauri (the
// window API and tauri-plugin-notification), on the guest page through
// document.title and the browser's Notification API (only if the guest allowed it).
// Only the policy's fixed sentences reach here (see state/signals.ts).

import { isTauri } from "@tauri-apps/api/core";
import { getCurrentWindow } from "@tauri-apps/api/window";
import { sendNotification } from "@tauri-apps/plugin-notification";
import type { OsNotification } from "../state/signals";

export function setWindowTitle(title: string): void {
  if (document.title !== title) document.title = title;
  if (isTauri()) getCurrentWindow().setTitle(title).catch(() => undefined);
}

export function showNotification(n: OsNotification): void {
  try {
    if (isTauri()) {
      sendNotification({ title: n.title, body: n.body });
    } else if (typeof Notification !== "undefined" && Notification.permission === "granted") {
      new Notification(n.title, { body: n.body, tag: "clinicmeet", silent: true });
    }
  } catch {
    // Notifications are a courtesy: the title and the live region still say it.
  }
}

/** Guest page: asks the browser for permission once (call from a click). The app needs none. */
export function askNotificationPermission(): void {
  if (isTauri() || typeof Notification === "undefined" || Notification.permission !== "default") return;
  void Notification.requestPermission().catch(() => undefined);
}
