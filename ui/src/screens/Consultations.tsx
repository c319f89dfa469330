// The doctor's consultation list: date, patient reference, duration, status;
// opens the notes (editable) and the chat of each.

import { createResource, createSignal, For, Show, type JSX } from "solid-js";
import { useApp } from "../appContext";
import { errorText, type ConsultationRecord } from "../engine/engine";
import type { ChatMessage } from "../engine/types";
import { formatDuration } from "../state/timer";
import { AppHeader } from "../components/AppHeader";
import { Field } from "../components/Form";
import { Icon } from "../components/Icon";

function fmt(ms: number | null): string {
  return ms === null ? "—" : new Date(ms).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

function Detail(props: { record: ConsultationRecord; onSaved: () => void }): JSX.Element {
  const app = useApp();
  const [notes, setNotes] = createSignal(props.record.notes);
  const [saved, setSaved] = createSignal<string | null>(null);
  const [chat] = createResource(
    () => props.record.meeting_id,
    async (id): Promise<ChatMessage[]> => {
      try {
        return await app.engine.chatHistory(id);
      } catch {
        return [];
      }
    },
  );
  const save = async (e: Event) => {
    e.preventDefault();
    try {
      await app.engine.saveConsultationNotes(props.record.meeting_id, notes());
      setSaved("Notes saved.");
      props.onSaved();
    } catch (err) {
      setSaved(errorText(err));
    }
  };
  return (
    <section class="card consult-detail" aria-labelledby="cd-title">
      <h2 id="cd-title">{props.record.title}</h2>
      <dl class="facts">
        <dt>Patient reference</dt>
        <dd>{props.record.patient_reference ?? "—"}</dd>
        <dt>Started</dt>
        <dd>{fmt(props.record.started_at)}</dd>
        <dt>Duration</dt>
        <dd>{formatDuration(props.record.duration_secs)}</dd>
        <dt>Status</dt>
        <dd>
          <span class={`status status-${props.record.status}`}>{props.record.status}</span>
        </dd>
      </dl>
      <form class="form" onSubmit={save}>
        <Field id="cd-notes" label="Notes">
          <textarea id="cd-notes" rows={6} value={notes()} onInput={(e) => setNotes(e.currentTarget.value)} />
        </Field>
        <div class="row">
          <button type="submit" class="btn btn-primary">
            Save notes
          </button>
          <span role="status" class="hint">
            {saved()}
          </span>
        </div>
      </form>
      <h3>Chat</h3>
      <Show when={(chat() ?? []).length > 0} fallback={<p class="empty">No chat messages in this consultation.</p>}>
        <ol class="transcript">
          <For each={chat()}>
            {(m) => (
              <li classList={{ "msg-note": m.staff_only }}>
                <span class="msg-sender">{m.sender_name}</span>
                <Show when={m.staff_only}>
                  <span class="tag">staff note</span>
                </Show>
                <time class="msg-time">{new Date(m.sent_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}</time>
                <p class="msg-text">{m.text}</p>
              </li>
            )}
          </For>
        </ol>
      </Show>
    </section>
  );
}

export function Consultations(props: { openId?: string }): JSX.Element {
  const app = useApp();
  const [list, { refetch }] = createResource(() => app.engine.consultations());
  const [open, setOpen] = createSignal<string | null>(props.openId ?? null);
  const record = () => (list() ?? []).find((r) => r.meeting_id === open()) ?? null;
  return (
    <>
      <AppHeader />
      <main class="page" aria-labelledby="cl-title">
        <div class="card-head">
          <h1 id="cl-title">Consultations</h1>
          <button type="button" class="btn btn-ghost" onClick={() => app.go({ name: "home" })}>
            Back to home
          </button>
        </div>
        <div class="consult-grid">
          <section class="card" aria-label="Consultation list">
            <table class="table">
              <thead>
                <tr>
                  <th scope="col">Date</th>
                  <th scope="col">Patient reference</th>
                  <th scope="col">Title</th>
                  <th scope="col">Duration</th>
                  <th scope="col">Status</th>
                  <th scope="col">
                    <span class="sr-only">Open</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                <For each={list()}>
                  {(r) => (
                    <tr classList={{ selected: open() === r.meeting_id }}>
                      <td>{fmt(r.started_at ?? r.created_at)}</td>
                      <td class="mono">{r.patient_reference ?? "—"}</td>
                      <td>{r.title}</td>
                      <td>{formatDuration(r.duration_secs)}</td>
                      <td>
                        <span class={`status status-${r.status}`}>{r.status}</span>
                      </td>
                      <td>
                        <button type="button" class="btn btn-secondary btn-small" onClick={() => setOpen(r.meeting_id)} aria-label={`Open notes and chat of ${r.title}`}>
                          <Icon name="notes" size={16} /> Open
                        </button>
                      </td>
                    </tr>
                  )}
                </For>
              </tbody>
            </table>
          </section>
          <Show when={record()} keyed fallback={<section class="card"><p class="empty">Choose a consultation to see its notes and chat.</p></section>}>
            {(r) => <Detail record={r} onSaved={() => void refetch()} />}
          </Show>
        </div>
      </main>
    </>
  );
}
