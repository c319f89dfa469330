// The wording of the lines the relay writes into the chat itself (joined, left,
// admitted, consultation and recording started/ended). The relay sends only the
// kind and the participant it is about; all the words live here, in one place,
// so they can be translated later.

import type { SystemLine } from "../engine/types";

/** "Pat joined", "Consultation started". `name` is the participant the line is about. */
export function systemLineText(kind: SystemLine, name: string): string {
  switch (kind) {
    case "joined":
      return `${name} joined`;
    case "left":
      return `${name} left`;
    case "admitted":
      return `${name} was let in`;
    case "consultation_started":
      return "Consultation started";
    case "consultation_ended":
      return "Consultation ended";
    case "recording_started":
      return "Recording started";
    case "recording_stopped":
      return "Recording stopped";
  }
}
