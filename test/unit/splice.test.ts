// Where an edit cuts a pending version's chunk list (workers/gateway/session/splice.ts).

import { describe, expect, it } from "vitest";
import type { Chid } from "../../common/ids.ts";
import { sliceOf, type ChunkRef } from "../../common/manifest.ts";
import { cutAt, cutTo, placed } from "../../workers/gateway/session/splice.ts";

const ref = (offset: number, length: number, c: string): ChunkRef => ({ offset, length, chid: c.repeat(64) as Chid });
// Three chunks: [0,10) a, [10,30) b, [30,35) c.
const chunks = [ref(0, 10, "a"), ref(10, 20, "b"), ref(30, 5, "c")];
const names = (cs: ChunkRef[]) => cs.map((c) => c.chid[0]).join("");

describe("cutAt", () => {
  it("keeps chunks wholly outside, and names the chunks cut at either edge", () => {
    const cut = cutAt(chunks, 12, 31);
    expect(names(cut.before)).toBe("a");
    expect(cut.left?.chid[0]).toBe("b");
    expect(cut.right?.chid[0]).toBe("c");
    expect(cut.after).toEqual([]);
  });

  it("cuts nothing when the edit lies on chunk boundaries", () => {
    const cut = cutAt(chunks, 10, 30);
    expect([names(cut.before), cut.left, cut.right, names(cut.after)]).toEqual(["a", null, null, "c"]);
  });

  it("names one chunk as both edges when the edit is inside it", () => {
    const cut = cutAt(chunks, 12, 20);
    expect(cut.left?.chid[0]).toBe("b");
    expect(cut.right?.chid[0]).toBe("b");
    expect([names(cut.before), names(cut.after)]).toEqual(["a", "c"]);
  });

  it("an append cuts nothing", () => {
    const cut = cutAt(chunks, 35, 40);
    expect([names(cut.before), cut.left, cut.right, names(cut.after)]).toEqual(["abc", null, null, ""]);
  });
});

describe("cutTo and placed", () => {
  it("keeps the chunks below a size and names the one it cuts through", () => {
    expect(cutTo(chunks, 30)).toEqual({ kept: chunks.slice(0, 2), cut: null });
    const r = cutTo(chunks, 15);
    expect([names(r.kept), r.cut?.chid[0]]).toEqual(["a", "b"]);
    expect(cutTo(chunks, 0)).toEqual({ kept: [], cut: null });
  });

  it("moves a region's refs to their place in the object", () => {
    expect(placed([ref(0, 4, "d"), ref(4, 6, "e")], 100).map((c) => [c.offset, c.length])).toEqual([
      [100, 4],
      [104, 6],
    ]);
  });
});

describe("sliceOf", () => {
  it("names the part of a chunk an edit keeps, by its place in the chunk", () => {
    const b = ref(10, 20, "b");
    expect(sliceOf(b, 10, 14)).toEqual({ ...b, offset: 10, length: 4, skip: 0, whole: 20 });
    const right = sliceOf(b, 22, 30);
    expect(right).toEqual({ ...b, offset: 22, length: 8, skip: 12, whole: 20 });
    // A slice of a slice stays relative to the chunk, not to the first slice.
    expect(sliceOf(right, 25, 27)).toEqual({ ...b, offset: 25, length: 2, skip: 15, whole: 20 });
  });

  it("gives back a plain ref when the part is the whole chunk", () => {
    const b = ref(10, 20, "b");
    expect(sliceOf(b, 10, 30)).toEqual(b);
    expect(sliceOf({ ...b, offset: 40, length: 20, skip: 0, whole: 20 }, 40, 60)).toEqual({ ...b, offset: 40 });
  });
});
