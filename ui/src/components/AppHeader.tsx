import { Show, type JSX } from "solid-js";
import { useApp } from "../appContext";
import { Icon } from "./Icon";
import { SignalsToggle } from "./SignalsToggle";

/** Top bar outside meetings: brand, server, who is signed in. */
export function AppHeader(): JSX.Element {
  const app = useApp();
  return (
    <header class="app-header">
      <button type="button" class="brand brand-button" onClick={() => app.go({ name: "home" })} aria-label="ClinicMeet home">
        <span class="brand-mark" aria-hidden="true">
          <Icon name="plus" size={20} />
        </span>
        <span class="brand-name">ClinicMeet</span>
      </button>
      <div class="app-header-right">
        <SignalsToggle />
        <span class="server" title="Connected server">
          <span class="dot dot-ok" aria-hidden="true" />
          {app.relay()?.address}
        </span>
        <Show when={app.staff()} fallback={<span class="who">Guest</span>}>
          {(s) => (
            <span class="who">
              <Icon name="verified" size={16} /> {s().name}
            </span>
          )}
        </Show>
        <Show when={!app.browser}>
          <button type="button" class="btn btn-ghost btn-small" onClick={() => app.go({ name: "first_run" })}>
            Server settings
          </button>
        </Show>
      </div>
    </header>
  );
}
