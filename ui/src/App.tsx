import { createSignal, Match, onCleanup, onMount, Show, Switch, type JSX } from "solid-js";
import { AppCtx, type AppContext, type Screen } from "./appContext";
import type { Engine, RelayConfig } from "./engine/engine";
import type { StaffIdentity } from "./engine/types";
import { parseJoinSecret } from "./state/accessCode";
import { FrameStore } from "./video/frames";
import { FirstRun } from "./screens/FirstRun";
import { Home } from "./screens/Home";
import { DeviceCheck } from "./screens/DeviceCheck";
import { Meeting } from "./screens/Meeting";
import { Consultations } from "./screens/Consultations";
import { PastMeetings } from "./screens/PastMeetings";
import { ClinicView } from "./screens/ClinicView";
import { Invite } from "./screens/Invite";
import { errorText } from "./engine/engine";
import { LiveRegion } from "./components/LiveRegion";

/** `desktop`: the app (first run, staff home…); `browser`: the relay's guest page (invite
 * landing, join, device check, meeting), on the page's own server. */
export type AppMode = "desktop" | "browser";

export function App(props: { engine: Engine; rendererPreference?: "webgl" | "2d"; mode?: AppMode }): JSX.Element {
  const browser = props.mode === "browser";
  const [screen, setScreen] = createSignal<Screen | null>(null);
  const [relay, setRelay] = createSignal<RelayConfig | null>(null);
  const [staff, setStaff] = createSignal<StaffIdentity | null>(null);
  const [prefill, setPrefill] = createSignal<RelayConfig | null>(null);
  const frames = FrameStore.attach(props.engine, (cb) => requestAnimationFrame(cb));
  const inviteCode = parseJoinSecret(decodeURIComponent(location.hash.replace(/^#/, "")));

  const ctx: AppContext = {
    engine: props.engine,
    browser,
    frames,
    rendererPreference: props.rendererPreference ?? "webgl",
    relay,
    setRelay,
    staff,
    setStaff,
    prefill,
    go: (s) => {
      setScreen(s);
      window.scrollTo(0, 0);
    },
    inviteCode,
  };

  // An invite link opened while the app runs: start over with its code (not in a meeting).
  const offInvite = props.engine.onInvite?.((invite) => {
    if (screen()?.name === "meeting") return;
    location.hash = invite.code ?? "";
    location.reload();
  });
  onCleanup(() => offInvite?.());

  /** Browser guest page: connect to the page's own server, then the join form. */
  const enterBrowser = async (): Promise<void> => {
    const saved = await props.engine.savedRelay();
    setRelay(saved);
    try {
      if (saved) await props.engine.connect(saved);
      setScreen({ name: "home" });
    } catch (err) {
      setScreen({ name: "offline", message: errorText(err) });
    }
  };

  onMount(async () => {
    if (browser) {
      if (inviteCode) setScreen({ name: "invite", code: inviteCode });
      else await enterBrowser();
      return;
    }
    const saved = await props.engine.savedRelay();
    const offered = (await props.engine.launchRelay?.()) ?? null;
    if (!saved || (offered && offered.address !== saved.address)) {
      // First run, or an invite for another clinic: confirm its server first.
      setPrefill(offered);
      setScreen({ name: "first_run" });
      return;
    }
    setRelay(saved);
    try {
      const hello = await props.engine.connect(saved);
      setStaff(hello.staff);
      setScreen({ name: "home" });
    } catch {
      // A changed key or an unreachable server: back to set-up with the warning.
      setScreen({ name: "first_run" });
    }
  });

  return (
    <AppCtx.Provider value={ctx}>
      <LiveRegion />
      <Show when={screen()} fallback={<p class="loading">Connecting…</p>}>
        {(s) => (
          <Switch>
            <Match when={s().name === "first_run"}>
              <FirstRun />
            </Match>
            <Match when={(() => { const x = s(); return x.name === "invite" ? x : null; })()} keyed>
              {(x) => <Invite code={x.code} onJoinHere={enterBrowser} />}
            </Match>
            <Match when={(() => { const x = s(); return x.name === "offline" ? x : null; })()} keyed>
              {(x) => (
                <main class="page page-narrow">
                  <section class="card waiting-card" role="alert">
                    <h1>Cannot reach the clinic</h1>
                    <p class="lead">{x.message}</p>
                    <button type="button" class="btn btn-primary btn-large" onClick={() => void enterBrowser()}>
                      Try again
                    </button>
                  </section>
                </main>
              )}
            </Match>
            <Match when={s().name === "home"}>
              <Home />
            </Match>
            <Match when={(() => { const x = s(); return x.name === "device_check" ? x : null; })()} keyed>
              {(x) => <DeviceCheck code={x.code} displayName={x.displayName} {...(x.meetingId ? { meetingId: x.meetingId } : {})} />}
            </Match>
            <Match when={(() => { const x = s(); return x.name === "meeting" ? x : null; })()} keyed>
              {(x) => <Meeting session={x.session} />}
            </Match>
            <Match when={(() => { const x = s(); return x.name === "consultations" ? x : null; })()} keyed>
              {(x) => <Consultations {...(x.openId ? { openId: x.openId } : {})} />}
            </Match>
            <Match when={s().name === "past_meetings"}>
              <PastMeetings />
            </Match>
            <Match when={s().name === "clinic"}>
              <ClinicView />
            </Match>
          </Switch>
        )}
      </Show>
    </AppCtx.Provider>
  );
}
