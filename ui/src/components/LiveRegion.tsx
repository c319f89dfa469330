// The page's one polite live region: what the signals announce (knocks, admission,
// joins and leaves, new messages) for screen readers.

import type { JSX } from "solid-js";
import { announcer } from "../signals/announcer";
import { useSelect } from "./reactive";

export function LiveRegion(): JSX.Element {
  const text = useSelect(announcer, () => announcer.text);
  return (
    <div class="sr-only" role="status" aria-live="polite" aria-atomic="true" data-testid="live-region">
      {text()}
    </div>
  );
}
