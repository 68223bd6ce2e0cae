import { describe, expect, it } from "vitest";
import type { Chid, TargetId } from "../../common/ids.ts";
import { LocationCache } from "../../workers/negotiating-group/locations.ts";

const c = (n: number) => String(n).padStart(64, "0") as Chid;
const t = (s: string) => s as TargetId;

describe("where a group last saw its chunks", () => {
  it("takes turns over a chunk's holders, one further along per read", () => {
    const loc = new LocationCache();
    loc.add(c(1), [t("a"), t("b"), t("c")]);
    expect(loc.holders(c(1))).toEqual(["a", "b", "c"]);
    expect(loc.holders(c(1))).toEqual(["b", "c", "a"]);
    expect(loc.holders(c(1))).toEqual(["c", "a", "b"]);
    expect(loc.holders(c(2))).toEqual([]);
  });

  it("merges holders without repeats and forgets one that failed", () => {
    const loc = new LocationCache();
    loc.add(c(1), [t("a"), t("b")]);
    loc.add(c(1), [t("b"), t("c")]);
    loc.remove(c(1), t("b"));
    expect(loc.holders(c(1)).sort()).toEqual(["a", "c"]);
    loc.remove(c(1), t("a"));
    loc.remove(c(1), t("c"));
    expect(loc.holders(c(1))).toEqual([]);
    expect(loc.size).toBe(0);
  });

  it("stays within its bound, evicting the least recently used chunk", () => {
    const loc = new LocationCache(2);
    loc.add(c(1), [t("a")]);
    loc.add(c(2), [t("a")]);
    loc.holders(c(1));
    loc.add(c(3), [t("a")]);
    expect(loc.size).toBe(2);
    expect(loc.holders(c(2))).toEqual([]);
    expect(loc.holders(c(1))).toEqual(["a"]);
  });
});
