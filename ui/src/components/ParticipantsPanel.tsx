// Participants panel: waiting room (admit / deny), everyone's media state,
// host actions (mute, allow to unmute, remove, make moderator), whether
// participants may unmute themselves, and the host's "New code".

import { createSignal, For, Show, type JSX } from "solid-js";
import type { MeetingSession } from "../state/session";
import type { Role } from "../engine/types";
import type { Participant } from "../state/participants";
import { Icon } from "./Icon";
import { useIds, useSelect } from "./reactive";
import { ShareCode } from "./ShareCode";
import { initials } from "./VideoTile";

const ROLE_LABEL: Record<Role, string> = { host: "Host", moderator: "Moderator", staff: "Staff", guest: "Guest" };

export function WaitingList(props: { session: MeetingSession }): JSX.Element {
  const ps = props.session.participants;
  const waiting = useSelect(ps, () => ps.waiting);
  return (
    <Show when={waiting().length > 0}>
      <section class="waiting-list" aria-label="Waiting room">
        <h3>Waiting to join ({waiting().length})</h3>
        <ul>
          <For each={waiting()}>
            {(w) => (
              <li class="person">
                <span class="avatar" aria-hidden="true">
                  {initials(w.display_name)}
                </span>
                <span class="person-name">{w.display_name}</span>
                <span class="person-actions">
                  <button
                    type="button"
                    class="btn btn-small btn-primary"
                    onClick={() => void props.session.act((e) => e.admit(w.participant_id))}
                    aria-label={`Admit ${w.display_name}`}
                  >
                    Admit
                  </button>
                  <button
                    type="button"
                    class="btn btn-small btn-secondary"
                    onClick={() => void props.session.act((e) => e.deny(w.participant_id))}
                    aria-label={`Deny ${w.display_name}`}
                  >
                    Deny
                  </button>
                </span>
              </li>
            )}
          </For>
        </ul>
      </section>
    </Show>
  );
}

function micLabel(p: Participant): string {
  if (p.media.audio) return "Microphone on";
  return p.audio_locked ? "Microphone off (muted by the host)" : "Microphone off";
}

/** Whether participants may unmute themselves (moderators only). */
function SelfUnmuteSetting(props: { session: MeetingSession }): JSX.Element {
  const s = props.session;
  const allowed = useSelect(s, () => s.meeting?.settings.allow_self_unmute ?? true);
  return (
    <label class="panel-setting">
      <input
        type="checkbox"
        checked={allowed()}
        onChange={(e) => {
          const input = e.currentTarget;
          const want = input.checked;
          // Refused (e.g. no longer a moderator): the box shows what the meeting says.
          void s.act((engine) => engine.setSelfUnmute(want)).then((ok) => {
            if (!ok) input.checked = !want;
          });
        }}
      />
      Participants may unmute themselves
    </label>
  );
}

/** Host: replaces the meeting's code and invite link (two steps: the old ones stop working
 * at once), then shows the new ones to share. */
function NewCode(props: { session: MeetingSession }): JSX.Element {
  const s = props.session;
  const [confirming, setConfirming] = createSignal(false);
  const [busy, setBusy] = createSignal(false);
  // The session keeps the new ones: they stay shown when the panel opens again.
  const code = useSelect(s, () => s.accessCode ?? "");
  const secret = useSelect(s, () => s.inviteSecret);
  const rekey = async () => {
    setBusy(true);
    await s.rekey();
    setBusy(false);
    setConfirming(false);
  };
  return (
    <section class="new-code" aria-label="Meeting code">
      <Show
        when={confirming()}
        fallback={
          <button type="button" class="btn btn-small btn-secondary" onClick={() => setConfirming(true)} data-testid="new-code">
            New code
          </button>
        }
      >
        <p class="hint" role="alert">
          Everyone already in stays; the old code and link stop working. Share the new ones.
        </p>
        <div class="row">
          <button type="button" class="btn btn-small btn-danger" disabled={busy()} onClick={() => void rekey()} data-testid="confirm-new-code">
            {busy() ? "Issuing…" : "Confirm new code"}
          </button>
          <button type="button" class="btn btn-small btn-ghost" onClick={() => setConfirming(false)}>
            Cancel
          </button>
        </div>
      </Show>
      <Show when={secret()}>
        {(secret) => (
          <div class="new-code-result" aria-live="polite">
            <ShareCode code={code()} inviteSecret={secret()} compact what="new" codeTestId="new-code-value" />
          </div>
        )}
      </Show>
    </section>
  );
}

/** One participant's row, keyed by id: it stays while the participant's state object is
 * replaced (audio levels do that several times a second), so a pending "Confirm remove"
 * or a focused button survives updates. */
function Row(props: { id: string; session: MeetingSession; canModerate: boolean; isHost: boolean }): JSX.Element {
  const ps = props.session.participants;
  const current = useSelect(ps, () => ps.get(props.id));
  const act = props.session.act.bind(props.session);
  // Two-step removal (no native confirm dialog: web views may block it).
  const [confirming, setConfirming] = createSignal(false);
  return (
    <Show when={current()}>
      {(p) => (
        <li class="person" classList={{ "person-offline": !p().connected }}>
          <span class="avatar" aria-hidden="true">
            {initials(p().display_name)}
          </span>
          <span class="person-main">
            <span class="person-name">
              {p().display_name}
              {p().self ? " (you)" : ""}
              <Show when={p().verified_staff}>
                <span class="verified" title="Verified clinic staff">
                  <Icon name="verified" size={14} />
                  <span class="sr-only">verified staff</span>
                </span>
              </Show>
            </span>
            <span class="person-role">
              {ROLE_LABEL[p().role]}
              {p().connected ? "" : " · reconnecting"}
            </span>
          </span>
          <span class="media-icons">
            <span title={micLabel(p())} classList={{ off: !p().media.audio }}>
              <Icon name={p().media.audio ? "mic" : "micOff"} size={18} />
              <span class="sr-only">{micLabel(p())}</span>
            </span>
            <span title={p().media.video ? "Camera on" : "Camera off"} classList={{ off: !p().media.video }}>
              <Icon name={p().media.video ? "camera" : "cameraOff"} size={18} />
              <span class="sr-only">{p().media.video ? "Camera on" : "Camera off"}</span>
            </span>
            <Show when={p().media.screen}>
              <span title="Sharing screen">
                <Icon name="screen" size={18} />
                <span class="sr-only">Sharing screen</span>
              </span>
            </Show>
          </span>
          <Show when={!p().self && props.canModerate && p().role !== "host"}>
            <span class="person-actions">
              <Show when={p().media.audio}>
                <button type="button" class="btn btn-small btn-secondary" onClick={() => void act((e) => e.mute(p().id))} aria-label={`Mute ${p().display_name}`}>
                  Mute
                </button>
              </Show>
              <Show when={p().audio_locked}>
                <button type="button" class="btn btn-small btn-secondary" onClick={() => void act((e) => e.allowUnmute(p().id))} aria-label={`Allow ${p().display_name} to unmute`}>
                  Allow to unmute
                </button>
              </Show>
              <Show when={props.isHost}>
                <Show
                  when={p().role === "moderator"}
                  fallback={
                    <button type="button" class="btn btn-small btn-secondary" onClick={() => void act((e) => e.promote(p().id))} aria-label={`Make ${p().display_name} a moderator`}>
                      Make moderator
                    </button>
                  }
                >
                  <button type="button" class="btn btn-small btn-secondary" onClick={() => void act((e) => e.demote(p().id))} aria-label={`Remove moderator rights from ${p().display_name}`}>
                    Remove moderator
                  </button>
                </Show>
              </Show>
              <Show
                when={confirming()}
                fallback={
                  <button type="button" class="btn btn-small btn-danger-outline" onClick={() => setConfirming(true)} aria-label={`Remove ${p().display_name} from the meeting`}>
                    Remove
                  </button>
                }
              >
                <button
                  type="button"
                  class="btn btn-small btn-danger"
                  onClick={() => {
                    setConfirming(false);
                    void act((e) => e.remove(p().id));
                  }}
                  aria-label={`Confirm: remove ${p().display_name}`}
                >
                  Confirm remove
                </button>
                <button type="button" class="btn btn-small btn-ghost" onClick={() => setConfirming(false)}>
                  Cancel
                </button>
              </Show>
            </span>
          </Show>
        </li>
      )}
    </Show>
  );
}

export function ParticipantsPanel(props: { session: MeetingSession; onClose: () => void }): JSX.Element {
  const ps = props.session.participants;
  const ids = useIds(ps, () => ps.list().map((p) => p.id));
  const canModerate = useSelect(ps, () => ps.canModerate);
  const isHost = useSelect(ps, () => ps.isHost);
  return (
    <aside class="side-panel" aria-label="Participants">
      <header class="panel-head">
        <h2>Participants ({ids().length})</h2>
        <button type="button" class="btn btn-ghost btn-icon" onClick={props.onClose} aria-label="Close participants" title="Close participants">
          <Icon name="close" />
        </button>
      </header>
      <div class="panel-scroll">
        <Show when={isHost()}>
          <NewCode session={props.session} />
        </Show>
        <Show when={canModerate()}>
          <SelfUnmuteSetting session={props.session} />
          <WaitingList session={props.session} />
        </Show>
        <ul class="people" aria-label="In the meeting">
          <For each={ids()}>{(id) => <Row id={id} session={props.session} canModerate={canModerate()} isHost={isHost()} />}</For>
        </ul>
      </div>
    </aside>
  );
}
