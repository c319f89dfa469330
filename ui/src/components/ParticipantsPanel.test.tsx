// @vitest-environment happy-dom
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { render } from "solid-js/web";
import { AppCtx, type AppContext } from "../appContext";
import { DEMO_PIN, DEMO_RELAY, DemoEngine } from "../engine/demo";
import { hostedSession, settle } from "../state/demoSession";
import type { MeetingSession } from "../state/session";
import { ParticipantsPanel } from "./ParticipantsPanel";

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

function mount(session: MeetingSession): HTMLElement {
  const root = document.createElement("div");
  document.body.append(root);
  const app = { engine, relay: () => ({ address: DEMO_RELAY, pin: DEMO_PIN }) } as unknown as AppContext;
  dispose = render(
    () => (
      <AppCtx.Provider value={app}>
        <ParticipantsPanel session={session} onClose={() => undefined} />
      </AppCtx.Provider>
    ),
    root,
  );
  return root;
}

function button(root: HTMLElement, text: string): HTMLButtonElement {
  const b = [...root.querySelectorAll("button")].find((e) => e.textContent?.trim() === text);
  if (!b) throw new Error(`no button "${text}" in: ${root.textContent}`);
  return b;
}

describe("the host's New code", () => {
  it("asks first, then shows the new code and invite link and makes them the meeting's", async () => {
    const session = await hostedSession(engine);
    const oldCode = session.accessCode;
    const rekey = vi.spyOn(engine, "rekeyMeeting");
    const root = mount(session);

    button(root, "New code").click();
    expect(root.textContent).toContain("Everyone already in stays; the old code and link stop working. Share the new ones.");
    button(root, "Cancel").click();
    expect(root.textContent).not.toContain("stop working");
    expect(rekey).not.toHaveBeenCalled();

    button(root, "New code").click();
    button(root, "Confirm new code").click();
    await settle(500);
    expect(rekey).toHaveBeenCalledTimes(1);
    const code = root.querySelector("[data-testid=new-code-value]")?.textContent;
    expect(code).toBe(session.accessCode);
    expect(code).not.toBe(oldCode);
    expect(root.textContent).toContain(`https://relay.clinic.example:4433/#${session.inviteSecret}`);
    expect(root.querySelector("[aria-label='Copy new meeting code']")).not.toBeNull();
    expect(root.querySelector("[aria-label='Copy new invite link']")).not.toBeNull();
    expect(root.textContent).not.toContain("stop working");
  });

  it("is offered to the host only", async () => {
    const session = await hostedSession(engine);
    const me = session.participants.self!.id;
    session.handle({ event: "role_changed", participant_id: me, role: "moderator", you: true });
    const root = mount(session);
    expect(root.textContent).toContain("Participants may unmute themselves"); // a moderator's panel
    expect([...root.querySelectorAll("button")].some((b) => b.textContent?.trim() === "New code")).toBe(false);
  });
});
