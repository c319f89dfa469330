// The doctor's consultation list: date, patient reference, duration, status;
// opens the record of each (ConsultationRecordView: notes, amendments, chat).

import { createResource, createSignal, For, Show, type JSX } from "solid-js";
import { useApp } from "../appContext";
import { formatDuration } from "../state/timer";
import { AppHeader } from "../components/AppHeader";
import { Icon } from "../components/Icon";
import { ConsultationRecordView } from "./ConsultationRecordView";

function fmt(ms: number | null): string {
  return ms === null ? "—" : new Date(ms).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
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
            {(r) => <ConsultationRecordView record={r} onSaved={() => void refetch()} />}
          </Show>
        </div>
      </main>
    </>
  );
}
