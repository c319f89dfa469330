import { describe, expect, it } from "vitest";
import { announcer } from "./announcer";

describe("live region text", () => {
  it("the same sentence twice changes the region's content, so it is read twice", () => {
    const seen: string[] = [];
    const off = announcer.onChange(() => seen.push(announcer.text));
    announcer.say("Wendy is waiting to be let in");
    announcer.say("Wendy is waiting to be let in");
    off();
    expect(seen).toHaveLength(2);
    expect(seen[0]).not.toBe(seen[1]);
    expect(seen.map((s) => s.trim())).toEqual(["Wendy is waiting to be let in", "Wendy is waiting to be let in"]);
  });
});
