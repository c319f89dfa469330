import { createSignal, onCleanup, type JSX } from "solid-js";
import { Icon } from "./Icon";

/** Copies `text`; says "Copied" for two seconds (also announced to screen readers).
 * `caption` replaces the visible "Copy" of a full-size button. */
export function CopyButton(props: { text: string; label: string; compact?: boolean; caption?: string }): JSX.Element {
  const [copied, setCopied] = createSignal(false);
  let timer: ReturnType<typeof setTimeout> | undefined;
  onCleanup(() => clearTimeout(timer));
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(props.text);
    } catch {
      // Clipboard blocked (insecure context): select-and-copy fallback.
      const ta = document.createElement("textarea");
      ta.value = props.text;
      document.body.append(ta);
      ta.select();
      document.execCommand("copy");
      ta.remove();
    }
    setCopied(true);
    clearTimeout(timer);
    timer = setTimeout(() => setCopied(false), 2000);
  };
  return (
    <button
      type="button"
      class={props.compact ? "btn btn-ghost btn-icon" : "btn btn-secondary"}
      onClick={copy}
      aria-label={props.label}
      title={props.label}
    >
      <Icon name={copied() ? "check" : "copy"} size={18} />
      {!props.compact && <span>{copied() ? "Copied" : (props.caption ?? "Copy")}</span>}
      <span class="sr-only" aria-live="polite">
        {copied() ? "Copied" : ""}
      </span>
    </button>
  );
}
