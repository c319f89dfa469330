// The text of the page's one polite live region (`components/LiveRegion.tsx`).

import { Observable } from "../state/observable";

class Announcer extends Observable {
  text = "";
  private flip = false;

  /** Screen readers read `text`; the same sentence twice is read twice (a trailing
   * no-break space alternates, so the region's content changes). */
  say(text: string): void {
    this.flip = !this.flip;
    this.text = this.flip ? text : `${text}\u00a0`;
    this.changed();
  }
}

export const announcer = new Announcer();
