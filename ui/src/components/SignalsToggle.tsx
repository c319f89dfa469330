// The "Sounds and notifications" switch: on the home screens (with its words) and in
// the meeting header (an icon with the same name for screen readers).

import { Show, type JSX } from "solid-js";
import { signalSettings } from "../signals/settings";
import { askNotificationPermission } from "../signals/os";
import { Icon } from "./Icon";
import { useSelect } from "./reactive";

export function SignalsToggle(props: { compact?: boolean }): JSX.Element {
  const on = useSelect(signalSettings, () => signalSettings.enabled);
  const toggle = () => {
    const next = !on();
    signalSettings.enabled = next;
    if (next) askNotificationPermission();
  };
  const label = () => (on() ? "Sounds and notifications on" : "Sounds and notifications off");
  return (
    <button
      type="button"
      class="btn btn-ghost btn-small signals-toggle"
      classList={{ "signals-off": !on() }}
      role="switch"
      aria-checked={on()}
      aria-label="Sounds and notifications"
      title={label()}
      data-testid="signals-toggle"
      onClick={toggle}
    >
      <Icon name={on() ? "bell" : "bellOff"} size={18} />
      <Show when={!props.compact}>
        <span>{label()}</span>
      </Show>
    </button>
  );
}
