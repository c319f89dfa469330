// Chat sidebar: history and live messages (virtualized), own messages with
// sending / sent / failed + retry, typing indicator, staff-only notes tab.
// Message text is rendered as text nodes only, never as HTML. Lines the relay
// wrote itself (joined, left, consultation started…) are centered muted lines,
// worded by text/systemLines.ts.

import { createSignal, For, onCleanup, Show, type JSX } from "solid-js";
import type { ChatEntry, ChatStream } from "../state/chat";
import { typingText } from "../state/chat";
import type { MeetingSession } from "../state/session";
import { systemLineText } from "../text/systemLines";
import { Icon } from "./Icon";
import { useNow, useSelect, useVersion } from "./reactive";
import { VirtualList } from "./VirtualList";

function time(ms: number): string {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/** "Pat joined · 10:42", centered and muted. */
export function SystemRow(props: { entry: ChatEntry }): JSX.Element {
  const text = () => (props.entry.system ? systemLineText(props.entry.system, props.entry.sender_name) : "");
  return (
    <p class="msg-system" data-testid="chat-system-line">
      <span>{text()}</span> <time class="msg-time">{time(props.entry.sent_at)}</time>
    </p>
  );
}

function MessageRow(props: { entry: ChatEntry; onRetry: (id: string) => void }): JSX.Element {
  const e = () => props.entry;
  return (
    <article
      class="msg"
      classList={{ "msg-mine": e().mine, "msg-note": e().staff_only, "msg-failed": e().status === "failed" }}
      aria-label={`${e().mine ? "You" : e().sender_name}, ${time(e().sent_at)}`}
    >
      <header class="msg-head">
        <span class="msg-sender">{e().mine ? "You" : e().sender_name}</span>
        <Show when={e().sender_verified}>
          <span class="verified" title="Verified clinic staff">
            <Icon name="verified" size={14} />
            <span class="sr-only">verified staff</span>
          </span>
        </Show>
        <time class="msg-time">{time(e().sent_at)}</time>
      </header>
      <p class="msg-text">{e().text}</p>
      <Show when={e().mine}>
        <footer class="msg-status" aria-live="polite">
          <Show when={e().status === "sending"}>
            <span class="status-sending">Sending…</span>
          </Show>
          <Show when={e().status === "sent"}>
            <span class="status-sent">
              <Icon name="check" size={14} /> Sent
            </span>
          </Show>
          <Show when={e().status === "failed"}>
            <span class="status-failed">
              <Icon name="warning" size={14} /> Not sent{e().error ? ` (${e().error})` : ""}
            </span>
            <button type="button" class="btn btn-small btn-secondary" onClick={() => props.onRetry(e().client_msg_id)}>
              <Icon name="retry" size={14} /> Retry
            </button>
          </Show>
        </footer>
      </Show>
    </article>
  );
}

export function ChatPanel(props: { session: MeetingSession; onClose: () => void }): JSX.Element {
  const chat = props.session.chat;
  const [stream, setStream] = createSignal<ChatStream>("chat");
  const [draft, setDraft] = createSignal("");
  const version = useVersion(chat);
  const messages = useSelect(chat, () => chat.messages(stream()));
  const now = useNow(1000);
  const typing = () => {
    version();
    return typingText(chat.typingNames(now()));
  };
  const isStaff = useSelect(chat, () => chat.isStaff);

  chat.setSidebarOpen(true);
  onCleanup(() => chat.setSidebarOpen(false));

  let typingSent = false;
  let typingTimer: ReturnType<typeof setTimeout> | undefined;
  const engineTyping = (on: boolean) => {
    if (on === typingSent) return;
    typingSent = on;
    void props.session.typing(on);
  };
  onCleanup(() => {
    clearTimeout(typingTimer);
    if (typingSent) void props.session.typing(false);
  });

  const send = async () => {
    const text = draft();
    if (!text.trim()) return;
    setDraft("");
    engineTyping(false);
    await props.session.send(text, stream() === "notes");
  };

  return (
    <aside class="side-panel chat-panel" aria-label="Chat" data-testid="chat">
      <header class="panel-head">
        <h2>Chat</h2>
        <button type="button" class="btn btn-ghost btn-icon" onClick={props.onClose} aria-label="Close chat" title="Close chat">
          <Icon name="close" />
        </button>
      </header>
      <Show when={isStaff()}>
        <div class="tabs" role="tablist" aria-label="Chat or staff notes">
          <For each={[["chat", "Everyone"], ["notes", "Staff notes"]] as const}>
            {([id, label]) => (
              <button
                type="button"
                role="tab"
                class="tab"
                aria-selected={stream() === id}
                onClick={() => setStream(id)}
              >
                <Icon name={id === "chat" ? "chat" : "notes"} size={18} />
                {label}
              </button>
            )}
          </For>
        </div>
        <Show when={stream() === "notes"}>
          <p class="notes-banner">
            <Icon name="lock" size={16} /> Only clinic staff can see these notes. Patients and guests never see them.
          </p>
        </Show>
      </Show>
      <Show
        when={messages().length > 0}
        fallback={
          <p class="empty">{stream() === "notes" ? "No staff notes yet." : "No messages yet. Messages are kept after the meeting."}</p>
        }
      >
        <VirtualList
          items={messages()}
          key={(m) => m.client_msg_id}
          estimate={72}
          stickToBottom
          class="chat-list"
          ariaLabel={stream() === "notes" ? "Staff notes" : "Chat messages"}
        >
          {(m) =>
            m.system ? <SystemRow entry={m} /> : <MessageRow entry={m} onRetry={(id) => void props.session.retry(id)} />
          }
        </VirtualList>
      </Show>
      <p class="typing" aria-live="polite">
        {typing()}
      </p>
      <form
        class="composer"
        classList={{ "composer-note": stream() === "notes" }}
        onSubmit={(e) => {
          e.preventDefault();
          void send();
        }}
      >
        <label for="chat-input" class="sr-only">
          {stream() === "notes" ? "Write a staff-only note" : "Write a message"}
        </label>
        <textarea
          id="chat-input"
          data-testid="chat-input"
          rows={2}
          maxLength={8000}
          placeholder={stream() === "notes" ? "Staff-only note…" : "Write a message…"}
          value={draft()}
          onInput={(e) => {
            setDraft(e.currentTarget.value);
            engineTyping(e.currentTarget.value.length > 0);
            clearTimeout(typingTimer);
            typingTimer = setTimeout(() => engineTyping(false), 4000);
          }}
          onKeyDown={(e) => {
            if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
              e.preventDefault();
              void send();
            }
          }}
        />
        <button type="submit" class="btn btn-primary" disabled={!draft().trim()} data-testid="chat-send">
          Send
        </button>
      </form>
    </aside>
  );
}
