import { describe, expect, it } from "vitest";
import { formatUvid, groupOf, nhidOf, parseUvid, chidOf, type Chid } from "../../common/ids.ts";

describe("ids", () => {
  it("CHID is the SHA-256 of the bytes", async () => {
    expect(await chidOf(new TextEncoder().encode("abc"))).toBe(
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
  });
  it("group is the first 4 bytes mod G", () => {
    const chid = "0000000a" + "0".repeat(56);
    expect(groupOf(chid as Chid, 8)).toBe(2);
  });
  it("NHID depends on tenant, bucket and key", async () => {
    expect(await nhidOf("t", "b", "k")).not.toBe(await nhidOf("t", "b", "k2"));
  });
  it("UVID text sorts in stamping order", () => {
    const a = formatUvid({ ms: 1000, seq: 5, group: 3 });
    const b = formatUvid({ ms: 1000, seq: 6, group: 0 });
    const c = formatUvid({ ms: 1001, seq: 0, group: 0 });
    expect([c, b, a].sort()).toEqual([a, b, c]);
    expect(parseUvid(a)).toEqual({ ms: 1000, seq: 5, group: 3 });
  });
});
