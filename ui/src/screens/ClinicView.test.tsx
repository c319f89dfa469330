// @vitest-environment happy-dom
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { render } from "solid-js/web";
import { AppCtx, type AppContext, type Screen } from "../appContext";
import { EngineError } from "../engine/engine";
import { DEMO_PIN, DEMO_RELAY, DemoEngine } from "../engine/demo";
import { describeError } from "../engine/types";
import { settle } from "../state/demoSession";
import { ClinicView } from "./ClinicView";

let dispose: (() => void) | null = null;
let engine: DemoEngine;
let went: Screen[];
beforeEach(() => {
  vi.useFakeTimers();
  engine = new DemoEngine({ staffName: "Dr. Ada" });
  went = [];
});
afterEach(() => {
  dispose?.();
  dispose = null;
  document.body.innerHTML = "";
  engine.dispose();
  vi.useRealTimers();
});

async function mount(): Promise<HTMLElement> {
  const hello = engine.connect({ address: DEMO_RELAY, pin: DEMO_PIN });
  await settle(500);
  await hello;
  const root = document.createElement("div");
  document.body.append(root);
  const app = {
    engine,
    staff: () => ({ staff_id: "s", name: "Dr. Ada" }),
    go: (s: Screen) => went.push(s),
    relay: () => ({ address: DEMO_RELAY, pin: DEMO_PIN }),
  } as unknown as AppContext;
  dispose = render(
    () => (
      <AppCtx.Provider value={app}>
        <ClinicView />
      </AppCtx.Provider>
    ),
    root,
  );
  await settle(300);
  return root;
}

function button(root: HTMLElement, label: string): HTMLButtonElement | null {
  return root.querySelector<HTMLButtonElement>(`button[aria-label="${label}"]`);
}

function dialogButton(root: HTMLElement, text: string): HTMLButtonElement {
  const b = [...root.querySelectorAll('[role="alertdialog"] button')].find((e) => e.textContent?.trim() === text);
  if (!b) throw new Error(`no dialog button ${text}`);
  return b as HTMLButtonElement;
}

describe("clinic view", () => {
  it("lists the clinic's active and scheduled meetings; Join as staff goes to the device check by id", async () => {
    const root = await mount();
    const titles = [...root.querySelectorAll('[data-testid="clinic-list"] tbody tr td:nth-child(2)')].map((t) => t.textContent);
    expect(titles).toContain("Follow-up: knee");
    expect(titles).not.toContain("Case review: ward 3"); // over
    button(root, "Join Follow-up: knee as staff")!.click();
    const listed = engine.clinicMeetings();
    await settle(200);
    const id = (await listed).find((m) => m.meeting.title === "Follow-up: knee")!.meeting.id;
    expect(went).toEqual([{ name: "device_check", code: "", displayName: "Dr. Ada", meetingId: id }]);
  });

  it("cancels a scheduled meeting this device created only after the confirmation", async () => {
    const cancel = vi.spyOn(engine, "cancelMeeting");
    const root = await mount();
    // Meetings created elsewhere or already running have no Cancel.
    expect(button(root, "Join Morning huddle as staff")).not.toBeNull();
    expect(button(root, "Cancel Morning huddle")).toBeNull();
    button(root, "Cancel Follow-up: knee")!.click();
    expect(root.querySelector('[role="alertdialog"]')!.textContent).toContain("This cannot be undone.");
    dialogButton(root, "Keep it").click();
    expect(root.querySelector('[role="alertdialog"]')).toBeNull();
    expect(cancel).not.toHaveBeenCalled();

    button(root, "Cancel Follow-up: knee")!.click();
    dialogButton(root, "Cancel meeting").click();
    await settle(300);
    expect(cancel).toHaveBeenCalledOnce();
    expect(root.querySelector('[role="alertdialog"]')).toBeNull();
    const titles = [...root.querySelectorAll('[data-testid="clinic-list"] tbody tr td:nth-child(2)')].map((t) => t.textContent);
    expect(titles).not.toContain("Follow-up: knee");
  });

  it("keeps the dialog open and says why when the relay refuses", async () => {
    vi.spyOn(engine, "cancelMeeting").mockRejectedValue(new EngineError("forbidden", "only its creator"));
    const root = await mount();
    button(root, "Cancel Follow-up: knee")!.click();
    dialogButton(root, "Cancel meeting").click();
    await settle(50);
    expect(root.querySelector('[role="alert"]')!.textContent).toBe(describeError("forbidden"));
    expect(root.querySelector('[role="alertdialog"]')).not.toBeNull();
  });

  it("saves the .ics of a scheduled meeting this device created and shows where", async () => {
    const root = await mount();
    expect(button(root, "Add Morning huddle to calendar (.ics)")).toBeNull();
    button(root, "Add Follow-up: knee to calendar (.ics)")!.click();
    await settle(50);
    expect(root.querySelector('[data-testid="ics-saved"]')!.textContent).toMatch(/Downloads\/clinicmeet-[0-9a-f]{8}\.ics$/);
  });
});
