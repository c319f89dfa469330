// The meeting page: header (title, code, elapsed, connection quality), video
// stage (1:1 with picture-in-picture, grid for more), controls, chat and
// participants panels, host controls, banners. Also the waiting room and the
// "meeting is over" states of the same session.

import { createMemo, createSignal, For, Match, onCleanup, onMount, Show, Switch, type Accessor, type JSX } from "solid-js";
import { useApp } from "../appContext";
import { LOCAL_PARTICIPANT, screenFrameId } from "../engine/engine";
import type { Participant } from "../state/participants";
import type { MeetingSession } from "../state/session";
import { formatElapsed } from "../state/timer";
import { ChatPanel } from "../components/ChatPanel";
import { CopyButton } from "../components/CopyButton";
import { Icon, type IconName } from "../components/Icon";
import { ParticipantsPanel, WaitingList } from "../components/ParticipantsPanel";
import { sameIds, useIds, useNow, useSelect, useVersion } from "../components/reactive";
import { VideoTile } from "../components/VideoTile";
import { WaitingRoom } from "./WaitingRoom";
import { ConsultationEndDialog } from "./ConsultationEnd";
import { SignalsToggle } from "../components/SignalsToggle";
import { attachSignals } from "../signals/driver";
import { announcer } from "../signals/announcer";
import { setWindowTitle, showNotification } from "../signals/os";
import { signalSettings } from "../signals/settings";
import { playSound } from "../signals/sound";

function Quality(props: { session: MeetingSession }): JSX.Element {
  const s = props.session;
  const v = useVersion(s);
  const level = () => {
    v();
    if (s.connection === "reconnecting") return 0;
    return s.quality === "good" ? 3 : s.quality === "fair" ? 2 : 1;
  };
  const text = () => {
    v();
    if (s.connection === "reconnecting") return "Connection lost, reconnecting";
    return `Connection ${s.quality}${s.rttMs !== null ? `, ${s.rttMs} ms` : ""}`;
  };
  return (
    <span class={`quality quality-${level()}`} title={text()} role="img" aria-label={text()}>
      <span class="bar b1" />
      <span class="bar b2" />
      <span class="bar b3" />
    </span>
  );
}

/** What `children` renders of participant `id` while they are in the meeting, looked up by id
 * so state updates flow in without recreating the canvas. */
function WithParticipant(props: { session: MeetingSession; id: string; children: (p: Accessor<Participant>) => JSX.Element }): JSX.Element {
  const ps = props.session.participants;
  const p = useSelect(ps, () => ps.get(props.id));
  return <Show when={p()}>{(q) => props.children(q)}</Show>;
}

/** One participant's tile. */
function Tile(props: { session: MeetingSession; id: string; speaker: string | null; variant: "grid" | "main" | "pip" | "strip" }): JSX.Element {
  return (
    <WithParticipant session={props.session} id={props.id}>
      {(q) => (
        <VideoTile
          frameId={q().self ? LOCAL_PARTICIPANT : q().id}
          name={q().display_name}
          verified={q().verified_staff}
          audio={q().media.audio}
          video={q().media.video}
          videoAvailable={q().videoAvailable}
          speaking={props.speaker === q().id}
          connected={q().connected}
          self={q().self}
          variant={props.variant}
        />
      )}
    </WithParticipant>
  );
}

/** A remote participant's screen share, large on the stage. */
function ScreenTile(props: { session: MeetingSession; id: string }): JSX.Element {
  return (
    <WithParticipant session={props.session} id={props.id}>
      {(q) => (
        <VideoTile
          frameId={screenFrameId(q().id)}
          name={`${q().display_name} is sharing their screen`}
          label={`Screen shared by ${q().display_name}`}
          audio
          video
          videoAvailable
          screen
          variant="screen"
        />
      )}
    </WithParticipant>
  );
}

function Stage(props: { session: MeetingSession }): JSX.Element {
  const s = props.session;
  const ps = s.participants;
  const v = useVersion(ps);
  const now = useNow(500);
  const ids = useIds(ps, () => ps.list().map((p) => p.id));
  const selfId = createMemo(() => {
    v();
    return ps.self?.id ?? null;
  });
  const remoteIds = createMemo(() => ids().filter((id) => id !== selfId()), [], { equals: sameIds });
  const speaker = () => {
    v();
    return ps.activeSpeaker(now());
  };
  const cols = () => Math.ceil(Math.sqrt(Math.max(1, ids().length)));
  const sharer = createMemo(() => {
    v();
    return ps.sharer()?.id ?? null;
  });
  return (
    <section class="stage" aria-label="Video">
      <Switch>
        <Match when={sharer()}>
          {(id) => (
            <div class="stage-share">
              <ScreenTile session={s} id={id()} />
              <div class="stage-strip" aria-label="Cameras">
                <For each={ids()}>{(p) => <Tile session={s} id={p} speaker={speaker()} variant="strip" />}</For>
              </div>
            </div>
          )}
        </Match>
        <Match when={remoteIds().length === 0}>
          <div class="stage-alone">
            <Show when={selfId()}>{(me) => <Tile session={s} id={me()} speaker={speaker()} variant="main" />}</Show>
            <p class="stage-note">Waiting for others to join…</p>
          </div>
        </Match>
        <Match when={remoteIds().length === 1}>
          <div class="stage-one">
            <Show when={remoteIds()[0]}>{(r) => <Tile session={s} id={r()} speaker={speaker()} variant="main" />}</Show>
            <Show when={selfId()}>{(me) => <Tile session={s} id={me()} speaker={speaker()} variant="pip" />}</Show>
          </div>
        </Match>
        <Match when={remoteIds().length > 1}>
          <div
            class="stage-grid"
            style={{
              "grid-template-columns": `repeat(${cols()}, minmax(0, 1fr))`,
              "grid-template-rows": `repeat(${Math.ceil(ids().length / cols())}, minmax(0, 1fr))`,
            }}
          >
            <For each={ids()}>{(id) => <Tile session={s} id={id} speaker={speaker()} variant="grid" />}</For>
          </div>
        </Match>
      </Switch>
    </section>
  );
}

function Over(props: { session: MeetingSession }): JSX.Element {
  const app = useApp();
  const text = () => {
    switch (props.session.endReason) {
      case "denied":
        return ["You were not let in", "The host did not admit you to this meeting."];
      case "removed":
        return ["You were removed from the meeting", "A host removed you. You can close this window."];
      case "completed":
        return ["The consultation has ended", "Thank you. You can close this window."];
      case "meeting_ended":
        return ["The meeting has ended", "The host ended the meeting for everyone."];
      default:
        return ["You left the meeting", "The chat stays available in your meeting list."];
    }
  };
  return (
    <main class="page page-narrow" aria-labelledby="over-title">
      <section class="card waiting-card" role="status" data-testid="ended">
        <h1 id="over-title">{text()[0]}</h1>
        <p class="lead">{text()[1]}</p>
        <button type="button" class="btn btn-primary btn-large" onClick={() => app.go({ name: "home" })}>
          Back to home
        </button>
      </section>
    </main>
  );
}

export function Meeting(props: { session: MeetingSession }): JSX.Element {
  const app = useApp();
  const s = props.session;
  const v = useVersion(s);
  // Sounds, notifications, the live region and the window title, for the session's life.
  const stopSignals = attachSignals(
    s,
    app.engine,
    { sound: playSound, notify: showNotification, announce: (t) => announcer.say(t), title: setWindowTitle },
    { enabled: () => signalSettings.enabled },
  );
  onCleanup(stopSignals);
  const phase = () => {
    v();
    return s.phase;
  };
  const leave = async () => {
    await s.leave();
  };
  onCleanup(() => s.dispose());
  return (
    <Switch>
      <Match when={phase() === "waiting" || phase() === "joining"}>
        <WaitingRoom session={s} onLeave={() => void leave()} />
      </Match>
      <Match when={phase() === "in_meeting"}>
        <InMeeting session={s} />
      </Match>
      <Match when={phase() === "ended" || phase() === "idle"}>
        <Over session={s} />
      </Match>
    </Switch>
  );
}

/** The microphone or camera control: pressed while on, crossed out while off; its label
 * says what a press does; Ctrl + `shortcutKey` does the same. `icon` and `label`: [on, off]. */
function MediaToggle(props: {
  on: boolean;
  onToggle: () => void;
  icon: [IconName, IconName];
  label: [string, string];
  shortcutKey: string;
  /** Why turning it on is not possible now (the button stays, and says so). */
  locked?: string;
}): JSX.Element {
  const label = () => (props.on ? props.label[0] : props.label[1]);
  return (
    <button
      type="button"
      class="ctl"
      classList={{ "ctl-off": !props.on, "ctl-locked": !!props.locked }}
      aria-pressed={props.on}
      aria-disabled={props.locked ? true : undefined}
      data-testid={`toggle-${props.icon[0]}`}
      onClick={() => props.onToggle()}
      title={props.locked ?? `${label()} (Ctrl+${props.shortcutKey})`}
      aria-keyshortcuts={`Control+${props.shortcutKey}`}
    >
      <Icon name={props.on ? props.icon[0] : props.icon[1]} />
      <span>{label()}</span>
    </button>
  );
}

function InMeeting(props: { session: MeetingSession }): JSX.Element {
  const app = useApp();
  const s = props.session;
  const ps = s.participants;
  const v = useVersion(s);
  const pv = useVersion(ps);
  const chatV = useVersion(s.chat);
  const now = useNow(1000);
  const [panel, setPanel] = createSignal<"chat" | "participants" | null>(null);
  const [waitingOpen, setWaitingOpen] = createSignal(false);
  const [ending, setEnding] = createSignal(false);
  const [confirmEnd, setConfirmEnd] = createSignal(false);

  const meeting = () => {
    v();
    return s.meeting;
  };
  /** Changes when the host gives the meeting a new code. */
  const accessCode = () => {
    v();
    return s.accessCode;
  };
  const media = () => {
    pv();
    return ps.selfMedia();
  };
  const canModerate = () => {
    pv();
    return ps.canModerate;
  };
  const micLocked = () => {
    pv();
    return ps.selfAudioLocked ? "The host muted you; you can unmute when the host allows it" : undefined;
  };
  const isHost = () => {
    pv();
    return ps.isHost;
  };
  const waitingCount = () => {
    pv();
    return ps.waiting.length;
  };
  const unread = () => {
    chatV();
    return s.chat.unread;
  };
  const connection = () => {
    v();
    return s.connection;
  };
  const notice = () => {
    v();
    return s.notice ?? s.error;
  };
  const isConsult = () => meeting()?.kind === "consultation";
  const audioOnly = () => meeting()?.kind === "audio_only";
  const screenAllowed = () => (app.engine.canShareScreen ?? true) && (meeting()?.settings.allow_screen_share ?? false);
  const elapsed = createMemo(() => formatElapsed(meeting()?.started_at ?? null, now()));

  const toggle = (p: "chat" | "participants") => setPanel(panel() === p ? null : p);

  onMount(() => {
    const onKey = (e: KeyboardEvent) => {
      if (!(e.ctrlKey || e.metaKey) || e.altKey || e.shiftKey) return;
      const k = e.key.toLowerCase();
      if (k === "d") {
        e.preventDefault();
        void s.toggleMic();
      } else if (k === "e" && !audioOnly()) {
        e.preventDefault();
        void s.toggleCamera();
      }
    };
    window.addEventListener("keydown", onKey);
    onCleanup(() => window.removeEventListener("keydown", onKey));
  });

  return (
    <div class="meeting" classList={{ "with-panel": panel() !== null }} data-testid="meeting">
      <header class="meeting-header">
        <div class="mh-left">
          <h1 class="mh-title">{meeting()?.title}</h1>
          <Show when={isConsult() && meeting()?.patient_reference}>
            <span class="tag">Patient {meeting()?.patient_reference}</span>
          </Show>
          <Show when={meeting()?.locked}>
            <span class="tag tag-warn">
              <Icon name="lock" size={14} /> Locked
            </span>
          </Show>
          <Show when={meeting()?.settings.allow_recording}>
            <span class="tag" title="The host allows recording in this meeting">Recording allowed</span>
          </Show>
        </div>
        <div class="mh-right">
          <Show when={accessCode()}>
            {(code) => (
              <span class="mh-code">
                <span class="sr-only">Meeting code</span>
                <span class="mono" data-testid="meeting-code">
                  {code()}
                </span>
                <CopyButton text={code()} label="Copy meeting code" compact />
              </span>
            )}
          </Show>
          <span class="mh-elapsed" title="Elapsed time" aria-label={`Elapsed time ${elapsed()}`}>
            <Icon name="clock" size={16} /> <span class="mono">{elapsed()}</span>
          </span>
          <Quality session={s} />
          <SignalsToggle compact />
          <Show when={canModerate() && waitingCount() > 0}>
            <div class="waiting-badge-wrap">
              <button type="button" class="btn btn-warn btn-small waiting-badge" aria-expanded={waitingOpen()} onClick={() => setWaitingOpen(!waitingOpen())}>
                <Icon name="people" size={18} /> {waitingCount()} waiting
              </button>
              <Show when={waitingOpen()}>
                <div class="popover" role="dialog" aria-label="Waiting room">
                  <WaitingList session={s} />
                </div>
              </Show>
            </div>
          </Show>
        </div>
      </header>

      <Show when={connection() === "reconnecting"}>
        <div class="banner banner-warn" role="status" aria-live="assertive">
          <span class="spinner" aria-hidden="true" /> Connection lost. Reconnecting… The call will resume on its own.
        </div>
      </Show>
      <Show when={notice()}>
        <div class="banner banner-info" role="status">
          <span data-testid="notice">{notice()}</span>
          <button type="button" class="btn btn-ghost btn-small" onClick={() => s.clearNotice()} aria-label="Dismiss">
            <Icon name="close" size={16} />
          </button>
        </div>
      </Show>
      <Show when={isConsult() && isHost() && meeting()?.status === "scheduled"}>
        <div class="banner banner-info" role="status">
          <span>The patient sees “The doctor will be with you shortly” until you start.</span>
          <button type="button" class="btn btn-primary btn-small" onClick={() => void s.act((e) => e.startConsultation())}>
            Start consultation
          </button>
        </div>
      </Show>

      <div class="meeting-body">
        <Stage session={s} />
        <Show when={panel() === "chat"}>
          <ChatPanel session={s} onClose={() => setPanel(null)} />
        </Show>
        <Show when={panel() === "participants"}>
          <ParticipantsPanel session={s} onClose={() => setPanel(null)} />
        </Show>
      </div>

      <nav class="controls" aria-label="Meeting controls">
        <div class="controls-group">
          <MediaToggle on={media().audio} onToggle={() => void s.toggleMic()} icon={["mic", "micOff"]} label={["Mute", "Unmute"]} shortcutKey="D" locked={micLocked()} />
          <Show when={!audioOnly()}>
            <MediaToggle on={media().video} onToggle={() => void s.toggleCamera()} icon={["camera", "cameraOff"]} label={["Stop camera", "Start camera"]} shortcutKey="E" />
          </Show>
          <Show when={screenAllowed() && !audioOnly()}>
            <button type="button" class="ctl" classList={{ "ctl-active": media().screen }} aria-pressed={media().screen} onClick={() => void s.toggleScreen()} title={media().screen ? "Stop sharing" : "Share screen"}>
              <Icon name="screen" />
              <span>{media().screen ? "Stop sharing" : "Share screen"}</span>
            </button>
          </Show>
        </div>
        <div class="controls-group">
          <button type="button" class="ctl" classList={{ "ctl-active": panel() === "chat" }} aria-pressed={panel() === "chat"} onClick={() => toggle("chat")} title="Chat" data-testid="toggle-chat">
            <Icon name="chat" />
            <span>Chat</span>
            <Show when={unread() > 0 && panel() !== "chat"}>
              <span class="count-badge" aria-label={`${unread()} unread`}>
                {unread() > 99 ? "99+" : unread()}
              </span>
            </Show>
          </button>
          <button type="button" class="ctl" classList={{ "ctl-active": panel() === "participants" }} aria-pressed={panel() === "participants"} onClick={() => toggle("participants")} title="Participants">
            <Icon name="people" />
            <span>People</span>
            <Show when={canModerate() && waitingCount() > 0}>
              <span class="count-badge count-warn" aria-label={`${waitingCount()} waiting`}>
                {waitingCount()}
              </span>
            </Show>
          </button>
          <Show when={canModerate()}>
            <button
              type="button"
              class="ctl"
              classList={{ "ctl-active": !!meeting()?.locked }}
              aria-pressed={!!meeting()?.locked}
              onClick={() => void s.act((e) => e.setLocked(!meeting()?.locked))}
              title={meeting()?.locked ? "Unlock meeting (allow new people)" : "Lock meeting (no new people)"}
            >
              <Icon name={meeting()?.locked ? "lock" : "unlock"} />
              <span>{meeting()?.locked ? "Unlock" : "Lock"}</span>
            </button>
          </Show>
        </div>
        <div class="controls-group">
          <Show when={isHost() && isConsult() && meeting()?.status === "active"}>
            <button type="button" class="ctl ctl-danger" onClick={() => setEnding(true)} title="End the consultation and write notes">
              <Icon name="notes" />
              <span>End consultation</span>
            </button>
          </Show>
          <Show when={isHost() && !isConsult()}>
            <Show
              when={confirmEnd()}
              fallback={
                <button type="button" class="ctl ctl-danger" onClick={() => setConfirmEnd(true)} title="End the meeting for everyone">
                  <Icon name="end" />
                  <span>End for all</span>
                </button>
              }
            >
              <button type="button" class="ctl ctl-danger" onClick={() => void s.act((e) => e.endMeeting())} aria-label="Confirm: end the meeting for everyone">
                <Icon name="end" />
                <span>Confirm end</span>
              </button>
              <button type="button" class="ctl" onClick={() => setConfirmEnd(false)}>
                <Icon name="close" />
                <span>Cancel</span>
              </button>
            </Show>
          </Show>
          <button type="button" class="ctl ctl-leave" onClick={() => void s.leave()} title="Leave the meeting">
            <Icon name="leave" />
            <span>Leave</span>
          </button>
        </div>
      </nav>
      <Show when={ending()}>
        <ConsultationEndDialog session={s} onCancel={() => setEnding(false)} />
      </Show>
    </div>
  );
}
