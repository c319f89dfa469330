// Ending a consultation: the doctor writes the notes, then it ends for everyone.

import { createSignal, type JSX } from "solid-js";
import { useApp } from "../appContext";
import { errorText } from "../engine/engine";
import type { MeetingSession } from "../state/session";
import { Field, FormError } from "../components/Form";
import { formatDuration, durationSecs } from "../state/timer";

export function ConsultationEndDialog(props: { session: MeetingSession; onCancel: () => void }): JSX.Element {
  const app = useApp();
  const [notes, setNotes] = createSignal("");
  const [busy, setBusy] = createSignal(false);
  const [error, setError] = createSignal<string | null>(null);
  const m = () => props.session.meeting;

  const end = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    const id = m()?.id;
    try {
      await app.engine.endConsultation(notes());
      // Into the clinic's record too (written once). If the relay cannot take them now,
      // they are kept on this device and the record screen offers to save them.
      if (id && notes().trim()) await app.engine.saveConsultationNotes(id, notes()).catch(() => undefined);
      app.go(id ? { name: "consultations", openId: id } : { name: "consultations" });
    } catch (err) {
      setError(errorText(err));
      setBusy(false);
    }
  };

  return (
    <div class="dialog-backdrop">
      <form class="dialog" role="dialog" aria-modal="true" aria-labelledby="ce-title" onSubmit={end}>
        <h2 id="ce-title">End consultation</h2>
        <dl class="facts">
          <dt>Patient reference</dt>
          <dd>{m()?.patient_reference ?? "—"}</dd>
          <dt>Duration so far</dt>
          <dd>{formatDuration(durationSecs(m()?.started_at ?? null, Date.now()))}</dd>
        </dl>
        <Field id="ce-notes" label="Consultation notes" hintId="ce-hint" hint="Saved into the consultation's record. Later changes are amendments, with time and author.">
          <textarea id="ce-notes" rows={8} value={notes()} onInput={(e) => setNotes(e.currentTarget.value)} aria-describedby="ce-hint" />
        </Field>
        <FormError message={error()} />
        <div class="row row-end">
          <button type="button" class="btn btn-ghost" onClick={props.onCancel}>
            Keep going
          </button>
          <button type="submit" class="btn btn-danger" disabled={busy()}>
            {busy() ? "Ending…" : "End for everyone and save notes"}
          </button>
        </div>
      </form>
    </div>
  );
}
