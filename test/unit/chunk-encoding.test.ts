// Compressed chunks: the codec and the manifest's wire form for them, inside workerd.

import { describe, expect, it } from "vitest";
import { compress, compressIfWorth, decompress, logicalBytes } from "../../common/chunk-encoding.ts";
import { chunkFromWire, chunkToWire, type ChunkRef } from "../../common/manifest.ts";
import type { Chid } from "../../common/ids.ts";

function noise(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const text = (n: number) => new TextEncoder().encode("the quick brown fox jumps over the lazy dog ".repeat(Math.ceil(n / 44))).subarray(0, n);

describe("chunk compression", () => {
  it("round-trips both formats", async () => {
    const t = text(100_000);
    for (const enc of ["gzip", "deflate-raw"] as const) expect(await decompress(await compress(t, enc), enc)).toEqual(t);
  });

  it("compresses only where it saves at least 10%", async () => {
    expect(await compressIfWorth(noise(200_000, 7))).toBeNull();
    const packed = await compressIfWorth(text(200_000));
    expect(packed).not.toBeNull();
    expect(packed!.length).toBeLessThan(20_000);
    expect(await compressIfWorth(text(1000))).toBeNull(); // too small to bother
  });

  it("checks a chunk's logical length when reading it", async () => {
    const t = text(50_000);
    const ref: ChunkRef = { offset: 0, length: t.length, chid: "a".repeat(64) as Chid, enc: "deflate-raw", stored: 0, raw: "b".repeat(64) };
    expect(await logicalBytes(ref, await compress(t, "deflate-raw"))).toEqual(t);
    await expect(logicalBytes({ ...ref, length: 49_999 }, await compress(t, "deflate-raw"))).rejects.toThrow(/50000 bytes/);
  });

  it("keeps encoding, stored length and logical hash on the manifest's wire", () => {
    const plain: ChunkRef = { offset: 0, length: 10, chid: "a".repeat(64) as Chid };
    const packed: ChunkRef = { offset: 10, length: 100, chid: "c".repeat(64) as Chid, enc: "gzip", stored: 40, raw: "d".repeat(64) };
    expect(chunkToWire(plain)).toEqual([0, 10, plain.chid]);
    expect(chunkFromWire(chunkToWire(plain))).toEqual(plain);
    expect(chunkFromWire(chunkToWire(packed))).toEqual(packed);
  });

  it("keeps a slice's place in its chunk on the wire, compressed or not", () => {
    const plain: ChunkRef = { offset: 5, length: 10, chid: "a".repeat(64) as Chid, skip: 3, whole: 40 };
    const packed: ChunkRef = { offset: 10, length: 100, chid: "c".repeat(64) as Chid, enc: "gzip", stored: 40, raw: "d".repeat(64), skip: 0, whole: 200 };
    expect(chunkToWire(plain)).toEqual([5, 10, plain.chid, null, null, null, 3, 40]);
    expect(chunkFromWire(chunkToWire(plain))).toEqual(plain);
    expect(chunkFromWire(chunkToWire(packed))).toEqual(packed);
  });

  it("reads a slice's part of its chunk, checking the chunk's whole length", async () => {
    const t = text(50_000);
    const ref: ChunkRef = { offset: 0, length: 1000, chid: "a".repeat(64) as Chid, enc: "deflate-raw", stored: 0, raw: "b".repeat(64), skip: 20_000, whole: t.length };
    expect(await logicalBytes(ref, await compress(t, "deflate-raw"))).toEqual(t.subarray(20_000, 21_000));
    expect(await logicalBytes({ offset: 0, length: 7, chid: ref.chid, skip: 3, whole: 12 }, t.subarray(0, 12))).toEqual(t.subarray(3, 10));
    await expect(logicalBytes({ ...ref, whole: 49_999 }, await compress(t, "deflate-raw"))).rejects.toThrow(/50000 bytes/);
  });
});
