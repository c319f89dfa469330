// Chat state: optimistic sending (sending → sent | failed → retry), dedupe by
// client_msg_id and by sequence number, ordering by seq, staff-only notes kept
// apart from the guest-visible chat, unread count while the sidebar is closed or
// the window is not focused,
// and the typing indicator. Pure: feed it events, read the lists.

import type { ChatMessage, ParticipantId, SystemLine, UnixMillis, Uuid } from "../engine/types";
import { Observable } from "./observable";

/** `received`: someone else's message. The others are the life of one's own message. */
export type EntryStatus = "sending" | "sent" | "failed" | "received";

/** The two streams; each has its own sequence numbers on the relay. */
export type ChatStream = "chat" | "notes";

export interface ChatEntry {
  client_msg_id: Uuid;
  /** Null until the relay accepted it. */
  seq: number | null;
  text: string;
  sender_id: ParticipantId;
  sender_name: string;
  sender_verified: boolean;
  staff_only: boolean;
  /** Relay time once sent; local creation time while pending. */
  sent_at: UnixMillis;
  status: EntryStatus;
  mine: boolean;
  error: string | null;
  /** Local insertion order, to keep pending messages in the order they were typed. */
  order: number;
  /** A line the relay wrote itself ("Pat joined"): `text` is empty, the sender
   * fields name the participant it is about. Null for what people wrote. */
  system: SystemLine | null;
}

export interface ChatIdentity {
  selfId: ParticipantId;
  selfName: string;
  selfVerified: boolean;
  /** May read and send staff-only notes (enrolled staff). */
  isStaff: boolean;
}

/** How long a typing indicator lasts without a refresh. */
export const TYPING_TIMEOUT_MS = 6000;

function streamOf(staffOnly: boolean): ChatStream {
  return staffOnly ? "notes" : "chat";
}

export class ChatState extends Observable {
  private identity: ChatIdentity;
  private byId = new Map<Uuid, ChatEntry>();
  private bySeq: Record<ChatStream, Map<number, Uuid>> = { chat: new Map(), notes: new Map() };
  private orderCounter = 0;
  private sidebarOpen = false;
  private windowFocused = true;
  private unreadCount = 0;
  private typingUntil = new Map<ParticipantId, { name: string; until: number }>();
  private sorted: Record<ChatStream, ChatEntry[] | null> = { chat: null, notes: null };

  constructor(identity: ChatIdentity) {
    super();
    this.identity = identity;
  }

  /** Role changes (promotion) or a resume can change who we are. */
  setIdentity(identity: ChatIdentity): void {
    this.identity = identity;
    if (!identity.isStaff) {
      for (const [id, e] of this.byId) {
        if (e.staff_only) {
          this.byId.delete(id);
          if (e.seq !== null) this.bySeq.notes.delete(e.seq);
        }
      }
    }
    this.invalidate();
  }

  get isStaff(): boolean {
    return this.identity.isStaff;
  }

  // ---- own messages --------------------------------------------------------

  /** An own message was queued (optimistic: shown at once as `sending`). Also used on retry. */
  sending(clientMsgId: Uuid, text: string, staffOnly: boolean, createdAt: UnixMillis): void {
    const existing = this.byId.get(clientMsgId);
    if (existing) {
      // A retry: only a failed message goes back to sending; a sent one stays sent.
      if (existing.status === "failed") {
        this.byId.set(clientMsgId, { ...existing, status: "sending", error: null });
        this.invalidate();
      }
      return;
    }
    if (staffOnly && !this.identity.isStaff) return;
    this.byId.set(clientMsgId, {
      client_msg_id: clientMsgId,
      seq: null,
      text,
      sender_id: this.identity.selfId,
      sender_name: this.identity.selfName,
      sender_verified: this.identity.selfVerified,
      staff_only: staffOnly,
      sent_at: createdAt,
      status: "sending",
      mine: true,
      error: null,
      order: this.orderCounter++,
      system: null,
    });
    this.invalidate();
  }

  /** The relay accepted an own message (the accepted copy carries the seq). */
  sent(message: ChatMessage): void {
    this.accept(message, true);
  }

  /** Sending failed (timeout, connection lost, rate limited…). Retry keeps the same id. */
  failed(clientMsgId: Uuid, error: string): void {
    const e = this.byId.get(clientMsgId);
    if (!e || e.status !== "sending") return;
    // Entries are replaced, never mutated, so UIs can compare by identity.
    this.byId.set(clientMsgId, { ...e, status: "failed", error });
    this.invalidate();
  }

  /** Messages that can be retried. */
  failedIds(): Uuid[] {
    return [...this.byId.values()].filter((e) => e.status === "failed").map((e) => e.client_msg_id);
  }

  // ---- messages from the relay ---------------------------------------------

  /** A live message or a history message. Duplicates (same client_msg_id, or same seq in its stream) are ignored. */
  receive(message: ChatMessage): void {
    this.accept(message, false);
  }

  /** History pages (after join or reconnect): same rules as live messages, no unread count. */
  loadHistory(messages: ChatMessage[]): void {
    for (const m of messages) this.accept(m, true);
  }

  private accept(message: ChatMessage, quiet: boolean): void {
    if (message.staff_only && !this.identity.isStaff) return;
    const stream = streamOf(message.staff_only);
    const seqOwner = this.bySeq[stream].get(message.seq);
    if (seqOwner !== undefined && seqOwner !== message.client_msg_id) return; // seq already taken: duplicate
    const existing = this.byId.get(message.client_msg_id);
    if (existing) {
      if (existing.seq !== null) return; // already have the accepted copy
      // Our pending message came back accepted (reply or echo): it becomes sent.
      this.byId.set(message.client_msg_id, {
        ...existing,
        seq: message.seq,
        sent_at: message.sent_at,
        text: message.text,
        status: "sent",
        error: null,
      });
      this.bySeq[stream].set(message.seq, message.client_msg_id);
      this.invalidate();
      return;
    }
    const system = message.system ?? null;
    // A system line about oneself is still the relay's line, not one's own message.
    const mine = system === null && message.sender_id === this.identity.selfId;
    this.byId.set(message.client_msg_id, {
      client_msg_id: message.client_msg_id,
      seq: message.seq,
      text: message.text,
      sender_id: message.sender_id,
      sender_name: message.sender_name,
      sender_verified: message.sender_verified,
      staff_only: message.staff_only,
      sent_at: message.sent_at,
      status: mine ? "sent" : "received",
      mine,
      error: null,
      order: this.orderCounter++,
      system,
    });
    this.bySeq[stream].set(message.seq, message.client_msg_id);
    // System lines are not messages: they neither count as unread nor end a typing indicator.
    if (!mine && system === null) {
      this.typingUntil.delete(message.sender_id);
      if (!quiet && !this.seen) this.unreadCount += 1;
    }
    this.invalidate();
  }

  // ---- reading ---------------------------------------------------------------

  /** One stream in display order: accepted messages by seq, then pending/failed ones in typing order. */
  messages(stream: ChatStream = "chat"): readonly ChatEntry[] {
    if (stream === "notes" && !this.identity.isStaff) return [];
    const cached = this.sorted[stream];
    if (cached) return cached;
    const list = [...this.byId.values()].filter((e) => streamOf(e.staff_only) === stream);
    list.sort((a, b) => {
      if (a.seq !== null && b.seq !== null) return a.seq - b.seq;
      if (a.seq !== null) return -1;
      if (b.seq !== null) return 1;
      return a.order - b.order;
    });
    this.sorted[stream] = list;
    return list;
  }

  /** Highest accepted seq per stream (for `ChatHistory { since_seq, notes_since_seq }` after a reconnect). */
  lastSeq(stream: ChatStream): number {
    let max = 0;
    for (const s of this.bySeq[stream].keys()) if (s > max) max = s;
    return max;
  }

  // ---- unread ----------------------------------------------------------------

  setSidebarOpen(open: boolean): void {
    this.sidebarOpen = open;
    if (this.seen) this.unreadCount = 0;
    if (open) this.changed();
  }

  /** The window gained or lost the focus: messages count as unread while it has not,
   * even with the sidebar open, and are read once it has it with the sidebar open. */
  setFocused(focused: boolean): void {
    if (focused === this.windowFocused) return;
    this.windowFocused = focused;
    if (this.seen && this.unreadCount !== 0) {
      this.unreadCount = 0;
      this.changed();
    }
  }

  get isSidebarOpen(): boolean {
    return this.sidebarOpen;
  }

  /** New messages are seen as they arrive: the sidebar is open in a focused window. */
  private get seen(): boolean {
    return this.sidebarOpen && this.windowFocused;
  }

  get unread(): number {
    return this.unreadCount;
  }

  // ---- typing ----------------------------------------------------------------

  setTyping(participantId: ParticipantId, name: string, typing: boolean, now: number): void {
    if (participantId === this.identity.selfId) return;
    if (typing) this.typingUntil.set(participantId, { name, until: now + TYPING_TIMEOUT_MS });
    else this.typingUntil.delete(participantId);
    this.changed();
  }

  /** Names of people typing now (expired indicators dropped). */
  typingNames(now: number): string[] {
    const names: string[] = [];
    for (const [id, t] of this.typingUntil) {
      if (t.until <= now) this.typingUntil.delete(id);
      else names.push(t.name);
    }
    return names;
  }

  private invalidate(): void {
    this.sorted = { chat: null, notes: null };
    this.changed();
  }
}

/** "Anna is typing…", "Anna and Ben are typing…", "3 people are typing…". */
export function typingText(names: string[]): string {
  if (names.length === 0) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return `${names.length} people are typing…`;
}
