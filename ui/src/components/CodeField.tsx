import { createSignal, type JSX } from "solid-js";
import { codeHint, normalizeCodeInput } from "../state/accessCode";

const DEFAULT_HINT = "8 letters and digits, like ABCD-EFGH";

/** Access-code input: normalizes as you type (upper case, dash), explains rejected characters. */
export function CodeField(props: { id: string; value: string; onInput: (display: string) => void; label?: string }): JSX.Element {
  // The rejected character never reaches the field, so the hint comes from the raw input.
  const [hint, setHint] = createSignal<string | null>(null);
  return (
    <div class="field">
      <label for={props.id}>{props.label ?? "Meeting code"}</label>
      <input
        id={props.id}
        class="code-input"
        type="text"
        autocomplete="off"
        autocapitalize="characters"
        spellcheck={false}
        placeholder="ABCD-EFGH"
        value={normalizeCodeInput(props.value).display}
        aria-describedby={`${props.id}-hint`}
        aria-invalid={hint() !== null}
        onInput={(e) => {
          const next = normalizeCodeInput(e.currentTarget.value);
          e.currentTarget.value = next.display;
          setHint(codeHint(next));
          props.onInput(next.display);
        }}
      />
      <p id={`${props.id}-hint`} class="hint" classList={{ "hint-warn": hint() !== null }} aria-live="polite">
        {hint() ?? DEFAULT_HINT}
      </p>
    </div>
  );
}
