// The pieces every form writes the same way: a labelled field, the error alert
// under a form, and the submit button that says when it is busy.

import { Show, type JSX } from "solid-js";
import { Icon } from "./Icon";

/** A label over its control (the child, whose id is `id`), with an optional hint under it. */
export function Field(props: { id: string; label: JSX.Element; hint?: JSX.Element; hintId?: string; inline?: boolean; children: JSX.Element }): JSX.Element {
  return (
    <div class="field" classList={{ "field-inline": props.inline === true }}>
      <label for={props.id}>{props.label}</label>
      {props.children}
      <Show when={props.hint}>
        <p id={props.hintId} class="hint">
          {props.hint}
        </p>
      </Show>
    </div>
  );
}

/** The warning alert a form shows when something failed; nothing while the message is empty. */
export function FormError(props: { message: string | null | undefined; testId?: string }): JSX.Element {
  return (
    <Show when={props.message}>
      <div class="alert alert-warn" role="alert" data-testid={props.testId}>
        <Icon name="warning" size={20} />
        <span>{props.message}</span>
      </div>
    </Show>
  );
}

/** The form's main button: disabled and relabelled while the action runs. */
export function SubmitButton(props: { busy: boolean; label: string; busyLabel: string }): JSX.Element {
  return (
    <button type="submit" class="btn btn-primary btn-large" disabled={props.busy}>
      {props.busy ? props.busyLabel : props.label}
    </button>
  );
}
