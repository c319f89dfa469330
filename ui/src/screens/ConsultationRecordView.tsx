// One consultation's record for the staff member who held it: start, end,
// duration, patient reference, the notes (written once, on the relay) and the
// amendments after them (time and author, an "Add amendment" form), then the
// chat transcript from this device. When the relay cannot be reached it shows
// this device's copy of the notes.

import { createResource, createSignal, For, Show, type JSX } from "solid-js";
import { useApp } from "../appContext";
import { errorText, type ConsultationRecord } from "../engine/engine";
import type { ChatMessage, RelayConsultationRecord } from "../engine/types";
import { formatDuration } from "../state/timer";
import { Field, FormError } from "../components/Form";
import { TranscriptLines } from "../components/TranscriptLines";

function fmt(ms: number | null | undefined): string {
  return ms === null || ms === undefined ? "—" : new Date(ms).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

export function ConsultationRecordView(props: { record: ConsultationRecord; onSaved: () => void }): JSX.Element {
  const app = useApp();
  const [remote, { mutate }] = createResource(
    () => props.record.meeting_id,
    async (id): Promise<{ record: RelayConsultationRecord | null; error: string | null }> => {
      try {
        return { record: await app.engine.consultationRecord(id), error: null };
      } catch (err) {
        return { record: null, error: errorText(err) };
      }
    },
  );
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
  const rec = () => remote()?.record ?? null;
  const started = () => rec()?.meeting.started_at ?? props.record.started_at;
  const ended = () => rec()?.meeting.ended_at ?? props.record.ended_at;
  const duration = () => rec()?.duration_secs ?? props.record.duration_secs;

  const [notes, setNotes] = createSignal(props.record.notes);
  const [amendment, setAmendment] = createSignal("");
  const [busy, setBusy] = createSignal(false);
  const [error, setError] = createSignal<string | null>(null);

  const run = async (f: () => Promise<RelayConsultationRecord>, after: () => void) => {
    setBusy(true);
    setError(null);
    try {
      mutate({ record: await f(), error: null });
      after();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  const saveNotes = (e: Event) => {
    e.preventDefault();
    if (!notes().trim()) return;
    void run(() => app.engine.saveConsultationNotes(props.record.meeting_id, notes()), props.onSaved);
  };
  const amend = (e: Event) => {
    e.preventDefault();
    if (!amendment().trim()) return;
    void run(() => app.engine.amendConsultation(props.record.meeting_id, amendment()), () => setAmendment(""));
  };

  return (
    <section class="card consult-detail" aria-labelledby="cd-title" data-testid="consultation-record">
      <h2 id="cd-title">{props.record.title}</h2>
      <dl class="facts">
        <dt>Patient reference</dt>
        <dd>{props.record.patient_reference ?? "—"}</dd>
        <dt>Started</dt>
        <dd>{fmt(started())}</dd>
        <dt>Ended</dt>
        <dd>{fmt(ended())}</dd>
        <dt>Duration</dt>
        <dd>{formatDuration(duration())}</dd>
        <dt>Status</dt>
        <dd>
          <span class={`status status-${props.record.status}`}>{props.record.status}</span>
        </dd>
      </dl>
      <Show when={remote()?.error}>
        {(why) => (
          <p class="hint" role="status" data-testid="record-offline">
            The clinic's record cannot be read now ({why()}). Showing the notes kept on this device.
          </p>
        )}
      </Show>
      <h3>Notes</h3>
      <Show
        when={rec()?.notes}
        fallback={
          <Show
            when={rec()}
            fallback={<p class="record-notes">{props.record.notes || "No notes on this device."}</p>}
          >
            <form class="form" onSubmit={saveNotes}>
              <Field id="cd-notes" label="Notes" hintId="cd-notes-hint" hint="Saved once into the clinic's record; later changes are amendments.">
                <textarea id="cd-notes" rows={6} value={notes()} onInput={(e) => setNotes(e.currentTarget.value)} aria-describedby="cd-notes-hint" />
              </Field>
              <div class="row">
                <button type="submit" class="btn btn-primary" disabled={busy() || !notes().trim()} data-testid="record-save-notes">
                  Save notes
                </button>
              </div>
            </form>
          </Show>
        }
      >
        {(n) => (
          <>
            <p class="record-notes" data-testid="record-notes">
              {n().text}
            </p>
            <p class="hint">
              Written by {n().author_name}, {fmt(n().written_at)}
            </p>
          </>
        )}
      </Show>
      <Show when={rec()?.notes}>
        <h3>Amendments</h3>
        <Show when={(rec()?.amendments ?? []).length > 0} fallback={<p class="empty">No amendments.</p>}>
          <ol class="amendments" data-testid="record-amendments">
            <For each={rec()?.amendments}>
              {(a) => (
                <li>
                  <header class="msg-head">
                    <span class="msg-sender">{a.author_name}</span>
                    <time class="msg-time">{fmt(a.at)}</time>
                  </header>
                  <p class="msg-text">{a.text}</p>
                </li>
              )}
            </For>
          </ol>
        </Show>
        <form class="form" onSubmit={amend}>
          <Field id="cd-amend" label="Add amendment">
            <textarea id="cd-amend" rows={3} value={amendment()} onInput={(e) => setAmendment(e.currentTarget.value)} />
          </Field>
          <div class="row">
            <button type="submit" class="btn btn-secondary" disabled={busy() || !amendment().trim()} data-testid="record-amend">
              Add amendment
            </button>
          </div>
        </form>
      </Show>
      <FormError message={error()} />
      <h3>Chat</h3>
      <Show when={(chat() ?? []).length > 0} fallback={<p class="empty">No chat messages in this consultation.</p>}>
        <TranscriptLines messages={chat() ?? []} />
      </Show>
    </section>
  );
}
