import { describe, expect, it } from "vitest";
import { Listeners } from "./listeners";

describe("engine listener set", () => {
  it("tells every listener until it is removed", () => {
    const ls = new Listeners<number>();
    const a: number[] = [];
    const b: number[] = [];
    const offA = ls.add((v) => a.push(v));
    ls.add((v) => b.push(v));
    expect(ls.size).toBe(2);
    ls.emit(1);
    offA();
    expect(ls.size).toBe(1);
    ls.emit(2);
    expect(a).toEqual([1]);
    expect(b).toEqual([1, 2]);
  });

  it("does not call a listener removed during the same emit", () => {
    const ls = new Listeners<string>();
    const seen: string[] = [];
    let offSecond = () => {};
    ls.add(() => offSecond());
    offSecond = ls.add((v) => seen.push(v));
    ls.emit("x");
    expect(seen).toEqual([]);
  });
});
