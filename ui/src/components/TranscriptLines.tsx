/** A stored chat transcript as a list: what people wrote, staff notes marked, and
 * the relay's system lines worded by `systemLineText`. Read-only (past meetings,
 * consultation records). */
import { For, Show, type JSX } from "solid-js";
import type { ChatMessage } from "../engine/types";
import { systemLineText } from "../text/systemLines";

function time(ms: number): string {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function TranscriptLines(props: { messages: ChatMessage[]; testId?: string }): JSX.Element {
  return (
    <ol class="transcript" data-testid={props.testId}>
      <For each={props.messages}>
        {(m) => (
          <Show
            when={m.system}
            fallback={
              <li classList={{ "msg-note": m.staff_only }}>
                <span class="msg-sender">{m.sender_name}</span>
                <Show when={m.staff_only}>
                  <span class="tag">staff note</span>
                </Show>
                <time class="msg-time">{time(m.sent_at)}</time>
                <p class="msg-text">{m.text}</p>
              </li>
            }
          >
            {(kind) => (
              <li class="msg-system">
                {systemLineText(kind(), m.sender_name)} <time class="msg-time">{time(m.sent_at)}</time>
              </li>
            )}
          </Show>
        )}
      </For>
    </ol>
  );
}
