import type { JSX } from "solid-js";
import type { MeetingSession } from "../state/session";
import { Icon } from "../components/Icon";
import { SignalsToggle } from "../components/SignalsToggle";

/** Shown while the host has not let us in yet. */
export function WaitingRoom(props: { session: MeetingSession; onLeave: () => void }): JSX.Element {
  const consult = () => props.session.meeting?.kind === "consultation";
  return (
    <main class="page page-narrow waiting" aria-labelledby="wait-title">
      <section class="card waiting-card" role="status" aria-live="polite" data-testid="waiting">
        <div class="pulse" aria-hidden="true">
          <Icon name="clock" size={40} />
        </div>
        <h1 id="wait-title">{consult() ? "The doctor will be with you shortly" : "Waiting for the host to let you in"}</h1>
        <p class="lead">{props.session.meeting?.title}</p>
        <p>You can keep this window open. You will join automatically when you are let in.</p>
        <SignalsToggle />
        <button type="button" class="btn btn-secondary btn-large" onClick={props.onLeave}>
          Leave
        </button>
      </section>
    </main>
  );
}
