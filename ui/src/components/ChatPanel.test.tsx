// @vitest-environment happy-dom
import { afterEach, describe, expect, it } from "vitest";
import { render } from "solid-js/web";
import type { ChatEntry } from "../state/chat";
import { SystemRow } from "./ChatPanel";

let dispose: (() => void) | null = null;
afterEach(() => {
  dispose?.();
  dispose = null;
  document.body.innerHTML = "";
});

function entry(extra: Partial<ChatEntry>): ChatEntry {
  return {
    client_msg_id: "s1",
    seq: 3,
    text: "",
    sender_id: "p",
    sender_name: "Pat <b>Lee</b>",
    sender_verified: false,
    staff_only: false,
    sent_at: Date.UTC(2026, 11, 7, 10, 42),
    status: "received",
    mine: false,
    error: null,
    order: 0,
    system: "joined",
    ...extra,
  };
}

function mount(e: ChatEntry): HTMLElement {
  const root = document.createElement("div");
  document.body.append(root);
  dispose = render(() => <SystemRow entry={e} />, root);
  return root;
}

describe("chat panel: system lines", () => {
  it("renders a centered muted line with the participant's name as text, not HTML", () => {
    const root = mount(entry({}));
    const line = root.querySelector('[data-testid="chat-system-line"]')!;
    expect(line.classList.contains("msg-system")).toBe(true);
    expect(line.textContent).toContain("Pat <b>Lee</b> joined");
    expect(line.querySelector("b")).toBeNull();
    expect(line.querySelector("time")).not.toBeNull();
  });

  it("words a line about the meeting without a name", () => {
    const root = mount(entry({ system: "recording_started" }));
    expect(root.textContent).toContain("Recording started");
    expect(root.textContent).not.toContain("Pat");
  });
});
