import { describe, expect, it } from "vitest";
import type { SystemLine } from "../engine/types";
import { systemLineText } from "./systemLines";

describe("system line wording", () => {
  it("words every kind, naming the participant where it is about one", () => {
    const all: [SystemLine, string][] = [
      ["joined", "Pat joined"],
      ["left", "Pat left"],
      ["admitted", "Pat was let in"],
      ["consultation_started", "Consultation started"],
      ["consultation_ended", "Consultation ended"],
      ["recording_started", "Recording started"],
      ["recording_stopped", "Recording stopped"],
    ];
    for (const [kind, text] of all) expect(systemLineText(kind, "Pat")).toBe(text);
  });
});
