// Group-count history (workers/shared/group-layout.ts): which groups of older counts a group's ids
// were in, and which new counts may follow.

import { describe, expect, it } from "vitest";
import { groupOf, type Nhid } from "../../common/ids.ts";
import { ancestorsOf, parentOf, refuseCount } from "../../workers/shared/group-layout.ts";

describe("group layout", () => {
  it("names, for every group, the groups of each older count its ids were in, nearest first", () => {
    expect(ancestorsOf(5, [8])).toEqual([]);
    expect(ancestorsOf(5, [8, 16])).toEqual([]);
    expect(ancestorsOf(13, [8, 16])).toEqual([5]);
    expect(ancestorsOf(40, [8, 16, 64])).toEqual([8, 0]);
    expect(ancestorsOf(56, [8, 16, 64])).toEqual([8, 0]);
    expect(ancestorsOf(24, [8, 16, 64])).toEqual([8, 0]);
    expect(ancestorsOf(17, [8, 64])).toEqual([1]);
    expect(parentOf(40, [8, 16, 64])).toBe(8);
    expect(parentOf(3, [8, 16, 64])).toBeNull();
  });

  it("agrees with where ids hash: an id's group under an older count is its group's ancestor or the group itself", () => {
    const history = [8, 16, 64, 1024];
    for (let i = 0; i < 2000; i++) {
      const id = ((i * 2654435761) >>> 0).toString(16).padStart(8, "0") + "0".repeat(56);
      const now = groupOf(id as Nhid, 1024);
      const before = history.slice(0, -1).map((c) => groupOf(id as Nhid, c));
      for (const g of before) expect(g === now || ancestorsOf(now, history).includes(g)).toBe(true);
    }
  });

  it("lets a count grow only to a multiple of the last", () => {
    expect(refuseCount([], 8)).toBeNull();
    expect(refuseCount([8], 8)).toBeNull();
    expect(refuseCount([8], 16)).toBeNull();
    expect(refuseCount([8, 16], 1024)).toBeNull();
    expect(refuseCount([8], 12)).toMatch(/not a multiple of 8/);
    expect(refuseCount([16], 8)).toMatch(/split, not merged/);
  });
});
