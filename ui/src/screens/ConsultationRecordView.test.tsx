// @vitest-environment happy-dom
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { render } from "solid-js/web";
import { AppCtx, type AppContext } from "../appContext";
import { EngineError, type ConsultationRecord } from "../engine/engine";
import { DEMO_PIN, DEMO_RELAY, DemoEngine } from "../engine/demo";
import { describeError } from "../engine/types";
import { settle } from "../state/demoSession";
import { ConsultationRecordView } from "./ConsultationRecordView";

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

async function consultation(title: string): Promise<ConsultationRecord> {
  const r = (await engine.consultations()).find((c) => c.title === title);
  if (!r) throw new Error(`no consultation ${title}`);
  return r;
}

async function mount(record: ConsultationRecord, onSaved = () => undefined): Promise<HTMLElement> {
  const root = document.createElement("div");
  document.body.append(root);
  const app = { engine, relay: () => ({ address: DEMO_RELAY, pin: DEMO_PIN }) } as unknown as AppContext;
  dispose = render(
    () => (
      <AppCtx.Provider value={app}>
        <ConsultationRecordView record={record} onSaved={onSaved} />
      </AppCtx.Provider>
    ),
    root,
  );
  await settle(50);
  return root;
}

function button(root: HTMLElement, text: string): HTMLButtonElement {
  const b = [...root.querySelectorAll("button")].find((e) => e.textContent?.trim() === text);
  if (!b) throw new Error(`no button "${text}" in: ${root.textContent}`);
  return b;
}

function type(root: HTMLElement, id: string, text: string): void {
  const t = root.querySelector<HTMLTextAreaElement>(`#${id}`)!;
  t.value = text;
  t.dispatchEvent(new Event("input", { bubbles: true }));
}

describe("consultation record screen", () => {
  it("shows the notes read-only with their author, the amendments with time and author, and adds one", async () => {
    const root = await mount(await consultation("Post-op review"));
    expect(root.querySelector('[data-testid="record-notes"]')!.textContent).toBe("Wound healing well. Remove sutures on day 10.");
    expect(root.textContent).toContain("Written by Dr. Ada");
    expect(root.querySelector("#cd-notes")).toBeNull(); // notes are written once
    let items = root.querySelectorAll('[data-testid="record-amendments"] li');
    expect(items).toHaveLength(1);
    expect(items[0]!.textContent).toContain("Dr. Ada");
    expect(items[0]!.querySelector("time")!.textContent).not.toBe("—");

    const amend = vi.spyOn(engine, "amendConsultation");
    expect(button(root, "Add amendment").disabled).toBe(true); // nothing typed yet
    type(root, "cd-amend", "Sutures removed on day 10.");
    button(root, "Add amendment").click();
    await settle(50);
    expect(amend).toHaveBeenCalledWith(expect.any(String), "Sutures removed on day 10.");
    items = root.querySelectorAll('[data-testid="record-amendments"] li');
    expect(items).toHaveLength(2);
    expect(items[1]!.textContent).toContain("Sutures removed on day 10.");
    expect((root.querySelector("#cd-amend") as HTMLTextAreaElement).value).toBe("");
    // The relay keeps it: a second look shows both.
    expect((await engine.consultationRecord(amend.mock.calls[0]![0])).amendments.map((a) => a.seq)).toEqual([1, 2]);
  });

  it("writes the notes of an ended consultation once, then offers amendments", async () => {
    const rec = await consultation("Medication check");
    // A consultation whose notes are only on this device yet (the relay was unreachable at the end).
    (engine as unknown as { relayRecords: Map<string, unknown> }).relayRecords.delete(rec.meeting_id);
    const saved = vi.fn();
    const root = await mount(rec, saved);
    expect((root.querySelector("#cd-notes") as HTMLTextAreaElement).value).toBe("Reduce ibuprofen to 400 mg twice daily.");
    button(root, "Save notes").click();
    await settle(50);
    expect(saved).toHaveBeenCalledOnce();
    expect(root.querySelector("#cd-notes")).toBeNull();
    expect(root.querySelector('[data-testid="record-notes"]')!.textContent).toBe("Reduce ibuprofen to 400 mg twice daily.");
    expect(root.textContent).toContain("No amendments.");
    expect(root.querySelector("#cd-amend")).not.toBeNull();
  });

  it("says why the notes of a consultation that has not ended are refused", async () => {
    const root = await mount(await consultation("Follow-up: knee"));
    type(root, "cd-notes", "Early notes");
    button(root, "Save notes").click();
    await settle(50);
    expect(root.querySelector('[role="alert"]')!.textContent).toBe(describeError("invalid_state"));
    expect(root.textContent).not.toContain("Written by");
    expect(root.querySelector("#cd-notes")).not.toBeNull();
    expect(root.querySelector("#cd-amend")).toBeNull();
  });

  it("shows this device's notes, and no amendment form, when the relay cannot be reached", async () => {
    vi.spyOn(engine, "consultationRecord").mockRejectedValue(new EngineError("unreachable", "The clinic's server cannot be reached."));
    const root = await mount(await consultation("Post-op review"));
    expect(root.querySelector('[data-testid="record-offline"]')!.textContent).toContain("The clinic's server cannot be reached.");
    expect(root.textContent).toContain("Wound healing well. Remove sutures on day 10.");
    expect(root.querySelector("#cd-amend")).toBeNull();
    expect(root.querySelector("#cd-notes")).toBeNull();
  });
});
