import { describe, expect, it } from "vitest";
import type { ChatMessage } from "../engine/types";
import { ChatState, TYPING_TIMEOUT_MS, typingText } from "./chat";

const MEETING = "m-1";
const SELF = "p-self";
const OTHER = "p-other";

function msg(seq: number, id: string, text: string, extra: Partial<ChatMessage> = {}): ChatMessage {
  return {
    meeting_id: MEETING,
    seq,
    client_msg_id: id,
    sender_id: OTHER,
    sender_name: "Ben",
    sender_verified: false,
    text,
    staff_only: false,
    sent_at: 1000 + seq,
    ...extra,
  };
}

function staff(): ChatState {
  return new ChatState({ selfId: SELF, selfName: "Dr. Ada", selfVerified: true, isStaff: true });
}
function guest(): ChatState {
  return new ChatState({ selfId: SELF, selfName: "Pat", selfVerified: false, isStaff: false });
}

describe("chat state: optimistic send", () => {
  it("shows an own message at once as sending, then sent with its seq", () => {
    const chat = staff();
    chat.sending("c1", "hello", false, 500);
    let list = chat.messages();
    expect(list).toHaveLength(1);
    expect(list[0]!.status).toBe("sending");
    expect(list[0]!.seq).toBeNull();
    expect(list[0]!.mine).toBe(true);

    chat.sent(msg(7, "c1", "hello", { sender_id: SELF, sender_name: "Dr. Ada" }));
    list = chat.messages();
    expect(list).toHaveLength(1);
    expect(list[0]!.status).toBe("sent");
    expect(list[0]!.seq).toBe(7);
  });

  it("marks a message failed and a retry goes back to sending with the same id", () => {
    const chat = staff();
    chat.sending("c1", "hello", false, 500);
    chat.failed("c1", "connection lost");
    expect(chat.messages()[0]!.status).toBe("failed");
    expect(chat.messages()[0]!.error).toBe("connection lost");
    expect(chat.failedIds()).toEqual(["c1"]);

    chat.sending("c1", "hello", false, 900); // retry
    expect(chat.messages()).toHaveLength(1);
    expect(chat.messages()[0]!.status).toBe("sending");
    expect(chat.failedIds()).toEqual([]);

    chat.sent(msg(3, "c1", "hello", { sender_id: SELF }));
    expect(chat.messages()[0]!.status).toBe("sent");
  });

  it("a late failure does not undo an accepted message", () => {
    const chat = staff();
    chat.sending("c1", "hi", false, 1);
    chat.sent(msg(1, "c1", "hi", { sender_id: SELF }));
    chat.failed("c1", "timeout");
    expect(chat.messages()[0]!.status).toBe("sent");
  });

  it("a failed message whose echo arrives anyway becomes sent", () => {
    const chat = staff();
    chat.sending("c1", "hi", false, 1);
    chat.failed("c1", "timeout");
    chat.receive(msg(4, "c1", "hi", { sender_id: SELF }));
    expect(chat.messages()).toHaveLength(1);
    expect(chat.messages()[0]!.status).toBe("sent");
  });
});

describe("chat state: dedupe and order", () => {
  it("ignores a second copy with the same client_msg_id", () => {
    const chat = staff();
    chat.receive(msg(1, "a", "one"));
    chat.receive(msg(1, "a", "one"));
    chat.loadHistory([msg(1, "a", "one")]);
    expect(chat.messages()).toHaveLength(1);
  });

  it("ignores a different message claiming a seq already held", () => {
    const chat = staff();
    chat.receive(msg(1, "a", "one"));
    chat.receive(msg(1, "b", "impostor"));
    expect(chat.messages().map((m) => m.text)).toEqual(["one"]);
  });

  it("orders by seq whatever the arrival order, pending messages last", () => {
    const chat = staff();
    chat.sending("mine", "pending one", false, 0);
    chat.receive(msg(3, "c", "three"));
    chat.receive(msg(1, "a", "one"));
    chat.loadHistory([msg(2, "b", "two"), msg(1, "a", "one")]);
    expect(chat.messages().map((m) => m.text)).toEqual(["one", "two", "three", "pending one"]);
    expect(chat.lastSeq("chat")).toBe(3);
  });

  it("pending messages keep the order they were typed in", () => {
    const chat = staff();
    chat.sending("x", "first", false, 10);
    chat.sending("y", "second", false, 5);
    expect(chat.messages().map((m) => m.text)).toEqual(["first", "second"]);
  });

  it("a message from the same sender in history after reload counts as mine and sent", () => {
    const chat = staff();
    chat.loadHistory([msg(1, "a", "earlier", { sender_id: SELF })]);
    expect(chat.messages()[0]!.mine).toBe(true);
    expect(chat.messages()[0]!.status).toBe("sent");
  });
});

describe("chat state: staff-only notes", () => {
  it("keeps notes in their own stream with their own sequence", () => {
    const chat = staff();
    chat.receive(msg(1, "a", "chat one"));
    chat.receive(msg(1, "n1", "note one", { staff_only: true }));
    expect(chat.messages("chat").map((m) => m.text)).toEqual(["chat one"]);
    expect(chat.messages("notes").map((m) => m.text)).toEqual(["note one"]);
    expect(chat.lastSeq("notes")).toBe(1);
  });

  it("a guest never keeps or shows notes, and cannot queue one", () => {
    const chat = guest();
    chat.receive(msg(1, "n1", "note", { staff_only: true }));
    chat.sending("c1", "sneaky note", true, 0);
    expect(chat.messages("notes")).toEqual([]);
    expect(chat.messages("chat")).toEqual([]);
    expect(chat.unread).toBe(0);
  });

  it("losing staff rights drops notes already held", () => {
    const chat = staff();
    chat.receive(msg(1, "n1", "note", { staff_only: true }));
    chat.setIdentity({ selfId: SELF, selfName: "Dr. Ada", selfVerified: false, isStaff: false });
    expect(chat.messages("notes")).toEqual([]);
  });
});

describe("chat state: unread", () => {
  it("counts others' live messages while the sidebar is closed and resets on open", () => {
    const chat = staff();
    chat.receive(msg(1, "a", "one"));
    chat.receive(msg(2, "b", "two"));
    chat.receive(msg(2, "b", "two")); // duplicate, not counted
    chat.sending("c", "mine", false, 0); // own, not counted
    expect(chat.unread).toBe(2);
    chat.setSidebarOpen(true);
    expect(chat.unread).toBe(0);
    chat.receive(msg(3, "d", "three"));
    expect(chat.unread).toBe(0); // open: read at once
    chat.setSidebarOpen(false);
    chat.receive(msg(4, "e", "four"));
    expect(chat.unread).toBe(1);
  });

  it("counts messages while the window is unfocused even with the sidebar open; focus with the sidebar open reads them", () => {
    const chat = staff();
    chat.setSidebarOpen(true);
    chat.setFocused(false);
    chat.receive(msg(1, "a", "one"));
    chat.receive(msg(2, "b", "two"));
    expect(chat.unread).toBe(2);
    chat.setFocused(true);
    expect(chat.unread).toBe(0);
    // Focused with the sidebar closed: still unread until it opens.
    chat.setSidebarOpen(false);
    chat.receive(msg(3, "c", "three"));
    chat.setFocused(false);
    chat.setFocused(true);
    expect(chat.unread).toBe(1);
    chat.setSidebarOpen(true);
    expect(chat.unread).toBe(0);
  });

  it("history does not count as unread", () => {
    const chat = staff();
    chat.loadHistory([msg(1, "a", "old"), msg(2, "b", "old too")]);
    expect(chat.unread).toBe(0);
  });
});

describe("chat state: typing", () => {
  it("shows who is typing until they stop, send, or the indicator expires", () => {
    const chat = staff();
    chat.setTyping(OTHER, "Ben", true, 0);
    chat.setTyping("p-3", "Cleo", true, 0);
    expect(chat.typingNames(100)).toEqual(["Ben", "Cleo"]);
    chat.setTyping("p-3", "Cleo", false, 200);
    expect(chat.typingNames(200)).toEqual(["Ben"]);
    chat.receive(msg(1, "a", "done typing"));
    expect(chat.typingNames(300)).toEqual([]);
    chat.setTyping(OTHER, "Ben", true, 1000);
    expect(chat.typingNames(1000 + TYPING_TIMEOUT_MS + 1)).toEqual([]);
  });

  it("ignores one's own typing and words the indicator", () => {
    const chat = staff();
    chat.setTyping(SELF, "Dr. Ada", true, 0);
    expect(chat.typingNames(1)).toEqual([]);
    expect(typingText(["Ben"])).toBe("Ben is typing…");
    expect(typingText(["Ben", "Cleo"])).toBe("Ben and Cleo are typing…");
    expect(typingText(["a", "b", "c"])).toBe("3 people are typing…");
  });
});

describe("chat state: system lines", () => {
  it("keeps the relay's own lines in order with their kind, not counted unread, not mine", () => {
    const chat = staff();
    chat.receive(msg(1, "a", "hi"));
    chat.receive(msg(2, "s1", "", { system: "joined", sender_id: SELF, sender_name: "Dr. Ada" }));
    chat.receive(msg(3, "s2", "", { system: "consultation_started" }));
    const list = chat.messages();
    expect(list.map((e) => e.system)).toEqual([null, "joined", "consultation_started"]);
    expect(list[1]!.mine).toBe(false);
    expect(list[1]!.status).toBe("received");
    expect(chat.unread).toBe(1);
  });

  it("does not end a typing indicator", () => {
    const chat = guest();
    chat.setTyping(OTHER, "Ben", true, 0);
    chat.receive(msg(1, "s1", "", { system: "left", sender_id: OTHER }));
    expect(chat.typingNames(10)).toEqual(["Ben"]);
  });

  it("treats a message without the field as written by a person", () => {
    const chat = guest();
    chat.receive(msg(1, "a", "hello"));
    chat.sending("c1", "mine", false, 5);
    expect(chat.messages().map((e) => e.system)).toEqual([null, null]);
  });
});
