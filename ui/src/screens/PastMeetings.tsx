// "Past meetings": every meeting this user took part in (this device's store,
// merged for staff with the relay's list), searchable by title and a date range;
// opening one shows its chat transcript as kept on this device (readable offline).

import { createMemo, createResource, createSignal, For, Show, type JSX } from "solid-js";
import { useApp } from "../appContext";
import { errorText } from "../engine/engine";
import type { ChatMessage, PastMeeting } from "../engine/types";
import { dayRange, filterPast, mergePast, type PastRow } from "../state/pastMeetings";
import { TranscriptLines } from "../components/TranscriptLines";
import { AppHeader } from "../components/AppHeader";
import { Field } from "../components/Form";
import { Icon } from "../components/Icon";

function fmt(ms: number): string {
  return new Date(ms).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

/** A meeting's chat transcript from this device's store. */
export function Transcript(props: { row: PastRow }): JSX.Element {
  const app = useApp();
  const [chat] = createResource(
    () => props.row.meeting_id,
    async (id): Promise<ChatMessage[]> => {
      try {
        return await app.engine.chatHistory(id);
      } catch {
        return [];
      }
    },
  );
  return (
    <section class="card consult-detail" aria-labelledby="pm-detail-title" data-testid="past-detail">
      <h2 id="pm-detail-title">{props.row.title}</h2>
      <dl class="facts">
        <dt>Date</dt>
        <dd>{fmt(props.row.at)}</dd>
        <dt>Status</dt>
        <dd>
          <span class={`status status-${props.row.status}`}>{props.row.status}</span>
        </dd>
      </dl>
      <h3>Chat</h3>
      <Show
        when={(chat() ?? []).length > 0}
        fallback={<p class="empty">{props.row.onDevice ? "No chat messages in this meeting." : "This device kept no chat of this meeting."}</p>}
      >
        <TranscriptLines messages={chat() ?? []} testId="past-transcript" />
      </Show>
    </section>
  );
}

export function PastMeetings(): JSX.Element {
  const app = useApp();
  const [lists] = createResource(async () => {
    const local = await app.engine.localMeetings().catch(() => []);
    let relay: PastMeeting[] = [];
    let error: string | null = null;
    if (app.staff() !== null) {
      try {
        relay = await app.engine.pastMeetings({ query: null, from: null, to: null, consultations_only: false, limit: 0 });
      } catch (err) {
        error = errorText(err);
      }
    }
    return { rows: mergePast(local, relay), error };
  });
  const [text, setText] = createSignal("");
  const [from, setFrom] = createSignal("");
  const [to, setTo] = createSignal("");
  const rows = createMemo(() => filterPast(lists()?.rows ?? [], { text: text(), ...dayRange(from(), to()) }));
  const [open, setOpen] = createSignal<string | null>(null);
  const openRow = () => rows().find((r) => r.meeting_id === open()) ?? null;

  return (
    <>
      <AppHeader />
      <main class="page" aria-labelledby="pm-title">
        <div class="card-head">
          <h1 id="pm-title">Past meetings</h1>
          <button type="button" class="btn btn-ghost" onClick={() => app.go({ name: "home" })}>
            Back to home
          </button>
        </div>
        <form class="row past-filter" role="search" onSubmit={(e) => e.preventDefault()}>
          <Field id="pm-search" label="Search by title">
            <input id="pm-search" type="search" value={text()} onInput={(e) => setText(e.currentTarget.value)} data-testid="past-search" />
          </Field>
          <Field id="pm-from" label="From">
            <input id="pm-from" type="date" value={from()} onInput={(e) => setFrom(e.currentTarget.value)} />
          </Field>
          <Field id="pm-to" label="To">
            <input id="pm-to" type="date" value={to()} onInput={(e) => setTo(e.currentTarget.value)} />
          </Field>
        </form>
        <Show when={lists()?.error}>
          {(why) => (
            <p class="hint" role="status">
              The clinic's list cannot be read now ({why()}). Showing the meetings kept on this device.
            </p>
          )}
        </Show>
        <div class="consult-grid">
          <section class="card" aria-label="Past meeting list">
            <Show when={rows().length > 0} fallback={<p class="empty">No past meetings match.</p>}>
              <table class="table" data-testid="past-list">
                <thead>
                  <tr>
                    <th scope="col">Date</th>
                    <th scope="col">Title</th>
                    <th scope="col">Status</th>
                    <th scope="col">
                      <span class="sr-only">Open</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  <For each={rows()}>
                    {(r) => (
                      <tr classList={{ selected: open() === r.meeting_id }}>
                        <td>{fmt(r.at)}</td>
                        <td>{r.title}</td>
                        <td>
                          <span class={`status status-${r.status}`}>{r.status}</span>
                        </td>
                        <td>
                          <button type="button" class="btn btn-secondary btn-small" onClick={() => setOpen(r.meeting_id)} aria-label={`Open the chat of ${r.title}`}>
                            <Icon name="chat" size={16} /> Open
                          </button>
                        </td>
                      </tr>
                    )}
                  </For>
                </tbody>
              </table>
            </Show>
          </section>
          <Show when={openRow()} keyed fallback={<section class="card"><p class="empty">Choose a meeting to read its chat.</p></section>}>
            {(r) => <Transcript row={r} />}
          </Show>
        </div>
      </main>
    </>
  );
}
