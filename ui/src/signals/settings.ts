// The "Sounds and notifications" setting, kept in this device's localStorage (the
// desktop app's web view and the guest page alike). On unless turned off.

import { Observable } from "../state/observable";

export const SIGNALS_KEY = "clinicmeet.signals";

class SignalSettings extends Observable {
  private on: boolean;

  constructor() {
    super();
    this.on = read() !== "off";
  }

  get enabled(): boolean {
    return this.on;
  }

  set enabled(on: boolean) {
    if (on === this.on) return;
    this.on = on;
    try {
      globalThis.localStorage?.setItem(SIGNALS_KEY, on ? "on" : "off");
    } catch {
      // Storage full or blocked: the setting holds for this run.
    }
    this.changed();
  }
}

function read(): string | null {
  try {
    return globalThis.localStorage?.getItem(SIGNALS_KEY) ?? null;
  } catch {
    return null;
  }
}

/** The one setting of this page. */
export const signalSettings = new SignalSettings();
