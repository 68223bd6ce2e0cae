import { describe, expect, it } from "vitest";
import { readItems, streamOf } from "../../workers/negotiating-group/payload.ts";

function piecewise(parts: Uint8Array[]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      if (i < parts.length) c.enqueue(parts[i++]!);
      else c.close();
    },
  });
}

const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);

describe("payload stream from gateway to group", () => {
  it("splits a stream into items whatever the piece boundaries", async () => {
    const items = [bytes(10, 1), bytes(0, 2), bytes(3000, 3), bytes(1, 4)];
    const all = new Uint8Array(items.reduce((s, b) => s + b.length, 0));
    let at = 0;
    for (const b of items) {
      all.set(b, at);
      at += b.length;
    }
    for (const pieceSize of [1, 7, 1000, all.length]) {
      const parts: Uint8Array[] = [];
      for (let o = 0; o < all.length; o += pieceSize) parts.push(all.subarray(o, o + pieceSize));
      const got = await Promise.all(readItems(piecewise(parts), items.map((b) => b.length)));
      expect(got).toEqual(items);
    }
  });

  it("rejects a stream shorter or longer than the items announced", async () => {
    const [short] = readItems(piecewise([bytes(5, 0)]), [10]);
    await expect(short).rejects.toThrow(/ended in item 0 at byte 5 of 10/);
    const [ok, last] = readItems(piecewise([bytes(12, 0)]), [10, 1]);
    expect((await ok!).length).toBe(10);
    await expect(last).rejects.toThrow(/longer than the 2 items/);
  });

  it("streamOf yields the chunk in pieces no larger than asked", async () => {
    const chunk = bytes(2500, 9);
    const reader = streamOf(chunk, 1000).getReader();
    const sizes: number[] = [];
    for (let r = await reader.read(); !r.done; r = await reader.read()) sizes.push(r.value.length);
    expect(sizes).toEqual([1000, 1000, 500]);
  });
});
