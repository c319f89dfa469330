// @vitest-environment happy-dom
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { render } from "solid-js/web";
import { AppCtx, type AppContext } from "../appContext";
import { EngineError } from "../engine/engine";
import { DEMO_PIN, DEMO_RELAY, DemoEngine } from "../engine/demo";
import type { StaffIdentity } from "../engine/types";
import { settle } from "../state/demoSession";
import { PastMeetings } from "./PastMeetings";

let dispose: (() => void) | null = null;
let engine: DemoEngine;
beforeEach(() => {
  vi.useFakeTimers();
  engine = new DemoEngine({ staffName: "Dr. Ada" });
});
afterEach(() => {
  dispose?.();
  dispose = null;
  document.body.innerHTML = "";
  engine.dispose();
  vi.useRealTimers();
});

async function mount(staff: StaffIdentity | null): Promise<HTMLElement> {
  const root = document.createElement("div");
  document.body.append(root);
  const app = { engine, staff: () => staff, go: () => undefined, relay: () => ({ address: DEMO_RELAY, pin: DEMO_PIN }) } as unknown as AppContext;
  dispose = render(
    () => (
      <AppCtx.Provider value={app}>
        <PastMeetings />
      </AppCtx.Provider>
    ),
    root,
  );
  await settle(50);
  return root;
}

const titles = (root: HTMLElement) => [...root.querySelectorAll('[data-testid="past-list"] tbody tr td:nth-child(2)')].map((td) => td.textContent);

describe("past meetings screen", () => {
  it("lists the staff member's past meetings from both lists, searches by title and opens a chat transcript with its system lines", async () => {
    const root = await mount({ staff_id: "s", name: "Dr. Ada" });
    expect(titles(root)).toEqual(["Post-op review", "Medication check", "Case review: ward 3"]);
    const search = root.querySelector<HTMLInputElement>('[data-testid="past-search"]')!;
    search.value = "case";
    search.dispatchEvent(new Event("input", { bubbles: true }));
    expect(titles(root)).toEqual(["Case review: ward 3"]);
    root.querySelector<HTMLButtonElement>('button[aria-label="Open the chat of Case review: ward 3"]')!.click();
    await settle(50);
    const lines = [...root.querySelectorAll('[data-testid="past-transcript"] li')].map((li) => li.textContent ?? "");
    expect(lines).toHaveLength(5);
    expect(lines[0]).toContain("Dr. Li joined");
    expect(lines[2]).toContain("Bed 4 goes home tomorrow");
    expect(lines[3]).toContain("Recording started");
    expect(lines[4]).toContain("Dr. Li left");
  });

  it("narrows by a date range", async () => {
    const root = await mount({ staff_id: "s", name: "Dr. Ada" });
    const from = root.querySelector<HTMLInputElement>("#pm-from")!;
    const d = new Date(Date.now() - 3 * 86_400_000);
    from.value = `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
    from.dispatchEvent(new Event("input", { bubbles: true }));
    expect(titles(root)).toEqual(["Post-op review", "Medication check"]);
  });

  it("still lists this device's meetings when the relay's list cannot be read, and says so", async () => {
    vi.spyOn(engine, "pastMeetings").mockRejectedValue(new EngineError("unreachable", "The clinic's server cannot be reached."));
    const root = await mount({ staff_id: "s", name: "Dr. Ada" });
    expect(root.textContent).toContain("The clinic's list cannot be read now (The clinic's server cannot be reached.)");
    expect(titles(root)).toEqual(["Case review: ward 3"]);
  });

  it("does not ask the relay for a user who is not staff", async () => {
    const past = vi.spyOn(engine, "pastMeetings");
    const root = await mount(null);
    expect(past).not.toHaveBeenCalled();
    expect(titles(root)).toEqual(["Case review: ward 3"]);
  });
});
