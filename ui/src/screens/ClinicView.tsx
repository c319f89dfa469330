// The clinic view for staff: every active and scheduled meeting of the clinic,
// "Join as staff" on each (by id, through the device check; anyone but the
// creator knocks), and "Cancel meeting" (after a confirmation) on a scheduled
// meeting this device created, and "Add to calendar (.ics)" there (the file goes
// to the Downloads folder; the screen shows its path). The relay checks both.

import { createResource, createSignal, For, Show, type JSX } from "solid-js";
import { useApp } from "../appContext";
import { errorText, type ClinicMeeting } from "../engine/engine";
import { AppHeader } from "../components/AppHeader";
import { FormError } from "../components/Form";
import { Icon } from "../components/Icon";

function when(m: ClinicMeeting): string {
  const at = m.meeting.schedule?.start ?? m.meeting.started_at ?? m.meeting.created_at;
  return new Date(at).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

export function ClinicView(): JSX.Element {
  const app = useApp();
  const [list, { refetch }] = createResource(async () => {
    try {
      return { meetings: await app.engine.clinicMeetings(), error: null };
    } catch (err) {
      return { meetings: [] as ClinicMeeting[], error: errorText(err) };
    }
  });
  const [confirm, setConfirm] = createSignal<ClinicMeeting | null>(null);
  const [error, setError] = createSignal<string | null>(null);
  const [busy, setBusy] = createSignal(false);
  const [saved, setSaved] = createSignal<string | null>(null);

  const saveIcs = async (m: ClinicMeeting) => {
    setError(null);
    setSaved(null);
    try {
      setSaved(await app.engine.saveInvitation(m.meeting.id));
    } catch (err) {
      setError(errorText(err));
    }
  };

  const cancel = async (m: ClinicMeeting) => {
    setBusy(true);
    setError(null);
    try {
      await app.engine.cancelMeeting(m.meeting.id);
      setConfirm(null);
      void refetch();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <AppHeader />
      <main class="page" aria-labelledby="cv-title">
        <div class="card-head">
          <h1 id="cv-title">Clinic meetings</h1>
          <button type="button" class="btn btn-ghost" onClick={() => app.go({ name: "home" })}>
            Back to home
          </button>
        </div>
        <FormError message={list()?.error ?? error()} />
        <Show when={saved()}>
          {(path) => (
            <p class="hint" role="status" data-testid="ics-saved">
              Invitation saved to <span class="mono">{path()}</span>
            </p>
          )}
        </Show>
        <section class="card" aria-label="Active and scheduled meetings of the clinic">
          <Show when={(list()?.meetings ?? []).length > 0} fallback={<p class="empty">No active or scheduled meetings.</p>}>
            <table class="table" data-testid="clinic-list">
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">Title</th>
                  <th scope="col">Host</th>
                  <th scope="col">Status</th>
                  <th scope="col">People</th>
                  <th scope="col">
                    <span class="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                <For each={list()?.meetings}>
                  {(m) => (
                    <tr>
                      <td>{when(m)}</td>
                      <td>{m.meeting.title}</td>
                      <td>{m.meeting.host_name}</td>
                      <td>
                        <span class={`status status-${m.meeting.status}`}>{m.meeting.status}</span>
                      </td>
                      <td>{m.participant_count}</td>
                      <td>
                        <div class="row">
                          <button
                            type="button"
                            class="btn btn-secondary btn-small"
                            aria-label={`Join ${m.meeting.title} as staff`}
                            onClick={() => app.go({ name: "device_check", code: "", displayName: app.staff()?.name ?? "Staff", meetingId: m.meeting.id })}
                          >
                            <Icon name="camera" size={16} /> Join as staff
                          </button>
                          <Show when={m.created_here && m.meeting.schedule}>
                            <button type="button" class="btn btn-ghost btn-small" aria-label={`Add ${m.meeting.title} to calendar (.ics)`} onClick={() => void saveIcs(m)}>
                              Add to calendar (.ics)
                            </button>
                          </Show>
                          <Show when={m.created_here && m.meeting.status === "scheduled"}>
                            <button type="button" class="btn btn-ghost btn-small" aria-label={`Cancel ${m.meeting.title}`} onClick={() => setConfirm(m)}>
                              Cancel meeting
                            </button>
                          </Show>
                        </div>
                      </td>
                    </tr>
                  )}
                </For>
              </tbody>
            </table>
          </Show>
        </section>
        <Show when={confirm()} keyed>
          {(m) => (
            <div class="dialog-backdrop">
              <div class="dialog" role="alertdialog" aria-modal="true" aria-labelledby="cancel-title" aria-describedby="cancel-text">
                <h2 id="cancel-title">Cancel “{m.meeting.title}”?</h2>
                <p id="cancel-text">The meeting's code and invite link stop working, and anyone already waiting is told. This cannot be undone.</p>
                <div class="row row-end">
                  <button type="button" class="btn btn-ghost" onClick={() => setConfirm(null)}>
                    Keep it
                  </button>
                  <button type="button" class="btn btn-danger" disabled={busy()} onClick={() => void cancel(m)}>
                    Cancel meeting
                  </button>
                </div>
              </div>
            </div>
          )}
        </Show>
      </main>
    </>
  );
}
