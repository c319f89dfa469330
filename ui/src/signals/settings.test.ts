import { afterEach, describe, expect, it, vi } from "vitest";

/** A fresh module (the setting is read once, when the page loads) over `storage`. */
async function load(storage: Map<string, string>) {
  vi.resetModules();
  vi.stubGlobal("localStorage", {
    getItem: (k: string) => storage.get(k) ?? null,
    setItem: (k: string, v: string) => void storage.set(k, v),
  });
  return import("./settings");
}

describe("sounds and notifications setting", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("is on by default, and off stays off after a reload", async () => {
    const storage = new Map<string, string>();
    const first = await load(storage);
    expect(first.signalSettings.enabled).toBe(true);
    first.signalSettings.enabled = false;
    expect(storage.get(first.SIGNALS_KEY)).toBe("off");
    const again = await load(storage);
    expect(again.signalSettings.enabled).toBe(false);
  });

  it("a storage that throws (blocked, full) keeps the setting for this run", async () => {
    vi.resetModules();
    vi.stubGlobal("localStorage", {
      getItem: () => {
        throw new Error("blocked");
      },
      setItem: () => {
        throw new Error("full");
      },
    });
    const { signalSettings } = await import("./settings");
    expect(signalSettings.enabled).toBe(true);
    signalSettings.enabled = false;
    expect(signalSettings.enabled).toBe(false);
  });
});
