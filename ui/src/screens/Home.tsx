// Home: create a meeting (staff), its code and invite link, join with a code,
// and the lists of meetings and consultations.

import { createResource, createSignal, For, Show, type JSX } from "solid-js";
import { useApp } from "../appContext";
import { errorText, type CreatedMeeting } from "../engine/engine";
import type { MeetingKind, MeetingSettings, MeetingSpec } from "../engine/types";
import { defaultSettings, MAX_MAX_PARTICIPANTS, MAX_PATIENT_REFERENCE_CHARS, MAX_TITLE_CHARS } from "../engine/types";
import { isInviteSecret, parseJoinSecret } from "../state/accessCode";
import { formatDuration } from "../state/timer";
import { CodeField } from "../components/CodeField";
import { CopyButton } from "../components/CopyButton";
import { ShareCode, useInviteLink } from "../components/ShareCode";
import { Icon } from "../components/Icon";
import { AppHeader } from "../components/AppHeader";
import { Field, FormError, SubmitButton } from "../components/Form";

const KIND_LABEL: Record<MeetingKind, string> = { video: "Video", audio_only: "Audio only", consultation: "Consultation" };

function fmtDate(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "—";
  return new Date(ms).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

function CreateMeeting(props: { onCreated: (c: CreatedMeeting) => void }): JSX.Element {
  const app = useApp();
  const [title, setTitle] = createSignal("");
  const [description, setDescription] = createSignal("");
  const [kind, setKind] = createSignal<MeetingKind>("video");
  const [patientRef, setPatientRef] = createSignal("");
  const [scheduled, setScheduled] = createSignal(false);
  const [when, setWhen] = createSignal("");
  const [settings, setSettings] = createSignal<MeetingSettings>(defaultSettings());
  const [busy, setBusy] = createSignal(false);
  const [error, setError] = createSignal<string | null>(null);
  const set = <K extends keyof MeetingSettings>(k: K, v: MeetingSettings[K]) => setSettings({ ...settings(), [k]: v });

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    const spec: MeetingSpec = { title: title().trim(), kind: kind(), settings: settings() };
    if (description().trim()) spec.description = description().trim();
    if (kind() === "consultation") spec.patient_reference = patientRef().trim();
    if (scheduled() && when()) {
      const start = new Date(when()).getTime();
      if (Number.isNaN(start)) {
        setError("Pick a valid date and time.");
        return;
      }
      spec.schedule = { start, time_zone: Intl.DateTimeFormat().resolvedOptions().timeZone };
    }
    setBusy(true);
    try {
      props.onCreated(await app.engine.createMeeting(spec));
      setTitle("");
      setDescription("");
      setPatientRef("");
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  const toggle = (id: keyof MeetingSettings, label: string, hint: string) => (
    <div class="check">
      <input id={`set-${id}`} type="checkbox" checked={settings()[id] as boolean} onChange={(e) => set(id, e.currentTarget.checked as never)} />
      <label for={`set-${id}`}>
        {label}
        <span class="hint">{hint}</span>
      </label>
    </div>
  );

  return (
    <form class="form" onSubmit={submit} aria-labelledby="create-title">
      <h2 id="create-title">New meeting</h2>
      <fieldset class="segmented">
        <legend>Type</legend>
        <For each={["video", "audio_only", "consultation"] as MeetingKind[]}>
          {(k) => (
            <label class="segment" classList={{ selected: kind() === k }}>
              <input type="radio" name="kind" value={k} checked={kind() === k} onChange={() => {
                setKind(k);
                if (k === "consultation") set("waiting_room", true);
              }} />
              {KIND_LABEL[k]}
            </label>
          )}
        </For>
      </fieldset>
      <Field id="m-title" label="Title">
        <input id="m-title" type="text" maxLength={MAX_TITLE_CHARS} value={title()} onInput={(e) => setTitle(e.currentTarget.value)} required placeholder={kind() === "consultation" ? "Follow-up consultation" : "Team meeting"} />
      </Field>
      <Show when={kind() === "consultation"}>
        <Field id="m-patient" label="Patient reference" hintId="m-patient-hint" hint="The clinic's reference (e.g. record number), not the patient's name. Only staff see it.">
          <input id="m-patient" type="text" maxLength={MAX_PATIENT_REFERENCE_CHARS} value={patientRef()} onInput={(e) => setPatientRef(e.currentTarget.value)} required aria-describedby="m-patient-hint" />
        </Field>
      </Show>
      <Field
        id="m-desc"
        label={
          <>
            Description <span class="optional">(optional)</span>
          </>
        }
      >
        <textarea id="m-desc" rows={2} value={description()} onInput={(e) => setDescription(e.currentTarget.value)} />
      </Field>
      <div class="check">
        <input id="m-sched" type="checkbox" checked={scheduled()} onChange={(e) => setScheduled(e.currentTarget.checked)} />
        <label for="m-sched">Schedule for later</label>
      </div>
      <Show when={scheduled()}>
        <Field id="m-when" label="Start">
          <input id="m-when" type="datetime-local" value={when()} onInput={(e) => setWhen(e.currentTarget.value)} required />
        </Field>
      </Show>
      <fieldset class="settings">
        <legend>Settings</legend>
        {toggle("waiting_room", "Waiting room", "Guests wait until a host lets them in")}
        {toggle("mute_on_join", "Mute on join", "Microphones start muted")}
        {toggle("allow_self_unmute", "Participants may unmute themselves", "Off: after the host mutes someone, only the host can let them speak again")}
        {toggle("allow_screen_share", "Allow screen share", "")}
        {toggle("allow_recording", "Allow recording", "Everyone is told the meeting may be recorded")}
        <Field id="set-max" label="Max participants" inline>
          <input
            id="set-max"
            type="number"
            min={2}
            max={MAX_MAX_PARTICIPANTS}
            value={settings().max_participants}
            onInput={(e) => {
              const n = Math.round(Number(e.currentTarget.value));
              if (Number.isFinite(n)) set("max_participants", Math.min(MAX_MAX_PARTICIPANTS, Math.max(2, n)));
            }}
          />
        </Field>
      </fieldset>
      <FormError message={error()} />
      <SubmitButton busy={busy()} label="Create meeting" busyLabel="Creating…" />
    </form>
  );
}

function Created(props: { created: CreatedMeeting; onJoin: () => void; onClose: () => void }): JSX.Element {
  return (
    <section class="created" aria-labelledby="created-title" aria-live="polite">
      <h2 id="created-title">
        <Icon name="check" /> “{props.created.meeting.title}” is ready
      </h2>
      <ShareCode code={props.created.access_code} inviteSecret={props.created.invite_secret} codeTestId="created-code" />
      <p class="hint">Chat for this meeting uses the same code. Share the code only with the people you invite.</p>
      <div class="row">
        <button type="button" class="btn btn-primary" onClick={props.onJoin}>
          Join now
        </button>
        <button type="button" class="btn btn-ghost" onClick={props.onClose}>
          Done
        </button>
      </div>
    </section>
  );
}

/** Copies the invite link of a listed meeting (known when this device created or re-keyed it). */
function InviteLinkButton(props: { secret: string; title: string }): JSX.Element {
  const link = useInviteLink(() => props.secret);
  return <CopyButton text={link()} label={`Copy invite link of ${props.title}`} caption="Invite link" />;
}

export function Home(): JSX.Element {
  const app = useApp();
  const isStaff = () => app.staff() !== null;
  const [code, setCode] = createSignal(app.inviteCode ?? "");
  const [name, setName] = createSignal(app.staff()?.name ?? "");
  const [joinError, setJoinError] = createSignal<string | null>(null);
  const [created, setCreated] = createSignal<CreatedMeeting | null>(null);
  const [meetings, { refetch }] = createResource(isStaff, async (staff) => (staff ? app.engine.listMeetings() : []));
  const [consults] = createResource(isStaff, async (staff) => (staff ? app.engine.consultations() : []));

  const join = (e?: Event) => {
    e?.preventDefault();
    const c = parseJoinSecret(code());
    if (!c) {
      setJoinError("Enter the full 8-character code, like ABCD-EFGH.");
      return;
    }
    if (!name().trim()) {
      setJoinError("Enter the name others will see.");
      return;
    }
    setJoinError(null);
    app.go({ name: "device_check", code: c, displayName: name().trim() });
  };

  return (
    <>
      <AppHeader />
      <main class="page home" aria-label="Home">
        <div class="home-grid" classList={{ "home-guest": !isStaff() }}>
          <section class="card" aria-labelledby="join-title">
            <h1 id="join-title">Join a meeting</h1>
            <form class="form" onSubmit={join}>
              <Show
                when={!(app.inviteCode && isInviteSecret(app.inviteCode) && code() === app.inviteCode)}
                fallback={
                  <p class="hint" data-testid="invite-secret-used">
                    Joining with your invite link.
                  </p>
                }
              >
                <CodeField id="join-code" value={code()} onInput={setCode} />
              </Show>
              <Field id="join-name" label="Your name" hint="Shown to the others in the meeting.">
                <input id="join-name" data-testid="name" type="text" autocomplete="name" maxLength={64} value={name()} onInput={(e) => setName(e.currentTarget.value)} required />
              </Field>
              <FormError message={joinError()} />
              <button type="submit" class="btn btn-primary btn-large" data-testid="continue">
                Continue
              </button>
            </form>
            <button type="button" class="btn btn-ghost" onClick={() => app.go({ name: "past_meetings" })} data-testid="open-past">
              <Icon name="chat" size={18} /> Past meetings
            </button>
          </section>
          <Show when={isStaff()}>
            <section class="card">
              <Show
                when={created()}
                fallback={
                  <CreateMeeting
                    onCreated={(c) => {
                      setCreated(c);
                      void refetch();
                    }}
                  />
                }
              >
                {(c) => (
                  <Created
                    created={c()}
                    onClose={() => setCreated(null)}
                    onJoin={() => app.go({ name: "device_check", code: c().access_code, displayName: app.staff()?.name ?? "Host" })}
                  />
                )}
              </Show>
            </section>
          </Show>
        </div>
        <Show when={isStaff()}>
          <div class="home-lists">
            <section class="card" aria-labelledby="meetings-title">
              <div class="card-head">
                <h2 id="meetings-title">Meetings</h2>
                <button type="button" class="btn btn-ghost btn-small" onClick={() => void refetch()}>
                  Refresh
                </button>
                <button type="button" class="btn btn-ghost btn-small" onClick={() => app.go({ name: "clinic" })} data-testid="open-clinic">
                  Clinic meetings
                </button>
              </div>
              <Show when={(meetings() ?? []).length > 0} fallback={<p class="empty">No active or scheduled meetings.</p>}>
                <ul class="list">
                  <For each={meetings()}>
                    {(m) => (
                      <li class="list-row">
                        <div class="list-main">
                          <span class="list-title">{m.meeting.title}</span>
                          <span class="list-sub">
                            <span class={`status status-${m.meeting.status}`}>{m.meeting.status}</span>
                            {KIND_LABEL[m.meeting.kind]}
                            {m.meeting.status === "active" ? ` · ${m.participant_count} in meeting` : ""}
                            {m.meeting.schedule ? ` · ${fmtDate(m.meeting.schedule.start)}` : ""}
                            {m.meeting.patient_reference ? ` · ${m.meeting.patient_reference}` : ""}
                          </span>
                        </div>
                        <Show when={m.access_code}>
                          {(code) => (
                            <>
                              <span class="mono code-small">{code()}</span>
                              <CopyButton text={code()} label={`Copy code of ${m.meeting.title}`} compact />
                              <Show when={m.invite_secret}>{(secret) => <InviteLinkButton secret={secret()} title={m.meeting.title} />}</Show>
                              <button type="button" class="btn btn-secondary btn-small" onClick={() => app.go({ name: "device_check", code: code(), displayName: app.staff()?.name ?? "Host" })}>
                                Join
                              </button>
                            </>
                          )}
                        </Show>
                      </li>
                    )}
                  </For>
                </ul>
              </Show>
            </section>
            <section class="card" aria-labelledby="consults-title">
              <div class="card-head">
                <h2 id="consults-title">Consultations</h2>
                <button type="button" class="btn btn-ghost btn-small" onClick={() => app.go({ name: "consultations" })}>
                  All consultations
                </button>
              </div>
              <Show when={(consults() ?? []).length > 0} fallback={<p class="empty">No consultations yet.</p>}>
                <ul class="list">
                  <For each={(consults() ?? []).slice(0, 5)}>
                    {(c) => (
                      <li class="list-row">
                        <div class="list-main">
                          <span class="list-title">{c.title}</span>
                          <span class="list-sub">
                            <span class={`status status-${c.status}`}>{c.status}</span>
                            {c.patient_reference ?? "—"} · {fmtDate(c.started_at ?? c.created_at)}
                            {c.duration_secs !== null ? ` · ${formatDuration(c.duration_secs)}` : ""}
                          </span>
                        </div>
                        <button type="button" class="btn btn-secondary btn-small" onClick={() => app.go({ name: "consultations", openId: c.meeting_id })}>
                          Notes and chat
                        </button>
                      </li>
                    )}
                  </For>
                </ul>
              </Show>
            </section>
          </div>
        </Show>
      </main>
    </>
  );
}
