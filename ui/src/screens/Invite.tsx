// The page an invite link opens in a browser (`https://relay/#CODE`, `/join#CODE`):
// open the meeting in the desktop app (its `clinicmeet://` deep link, with the relay's
// QUIC address and key pin from `GET /invite-info`), or join right here in the browser.
// The code stays in the fragment: it never reaches the server.

import { createResource, createSignal, Show, type JSX } from "solid-js";
import { deepLink, isInviteSecret } from "../state/accessCode";
import { Icon } from "../components/Icon";

export interface InviteInfo {
  /** The relay's QUIC port (the host is the one this page came from). */
  quic_port: number;
  /** `sha256/<base64>` of the relay certificate's public key. */
  pin: string;
}

/** What `GET /invite-info` says, or null when the relay does not say. */
export async function fetchInviteInfo(): Promise<InviteInfo | null> {
  try {
    const r = await fetch("/invite-info", { cache: "no-store" });
    if (!r.ok) return null;
    const v: unknown = await r.json();
    if (typeof v !== "object" || v === null) return null;
    const { quic_port, pin } = v as Record<string, unknown>;
    return typeof quic_port === "number" && typeof pin === "string" ? { quic_port, pin } : null;
  } catch {
    return null;
  }
}

export function Invite(props: { code: string; onJoinHere: () => Promise<void> | void }): JSX.Element {
  const [info] = createResource(fetchInviteInfo);
  const [busy, setBusy] = createSignal(false);
  const appLink = () => {
    const i = info();
    return deepLink(props.code, i ? { address: `${location.hostname}:${i.quic_port}`, pin: i.pin } : null);
  };
  return (
    <>
      <header class="app-header">
        <span class="brand brand-button">
          <span class="brand-mark" aria-hidden="true">
            <Icon name="plus" size={20} />
          </span>
          <span class="brand-name">ClinicMeet</span>
        </span>
      </header>
      <main class="page page-narrow" aria-labelledby="invite-title">
        <section class="card waiting-card invite-card" data-testid="invite">
          <h1 id="invite-title">You are invited to a video meeting</h1>
          <Show when={!isInviteSecret(props.code)}>
            <p class="lead">
              Meeting code <span class="mono">{props.code}</span>
            </p>
          </Show>
          <div class="invite-actions">
            <a class="btn btn-secondary btn-large" href={appLink()} data-testid="open-app">
              <Icon name="screen" /> Open in ClinicMeet
            </a>
            <button
              type="button"
              class="btn btn-primary btn-large"
              data-testid="join-browser"
              disabled={busy()}
              onClick={async () => {
                setBusy(true);
                try {
                  await props.onJoinHere();
                } finally {
                  setBusy(false);
                }
              }}
            >
              <Icon name="camera" /> {busy() ? "Connecting…" : "Join in this browser"}
            </button>
          </div>
          <p class="hint">
            Nothing to install to join in the browser. If you have the ClinicMeet app, it opens this meeting directly.
          </p>
          <Show when={info.state === "ready" && !info()}>
            <p class="hint">The app will use the clinic server it is set up with.</p>
          </Show>
        </section>
      </main>
    </>
  );
}
