// The node-target chunk store on real files in a temporary directory: a chunk only ever appears
// under its name after its bytes hashed to that name, corrupt copies are never returned, and an
// interrupted write leaves nothing behind after a restart.

import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Chid, Nhid, Uvid } from "../../common/ids.ts";
import { decodeFrame, FRAME_GET_DATA, FRAME_MAX, FRAME_PAYLOAD_MAX } from "../../common/protocol.ts";
import { ChunkStore } from "../../node-target/store.ts";
import { pseudoRandom, removeDir } from "./helpers.ts";

const chidOf = (b: Uint8Array) => createHash("sha256").update(b).digest("hex") as Chid;
let dir: string;
let store: ChunkStore;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "edgestore-store-"));
  store = new ChunkStore(dir);
  await store.open();
});

afterEach(() => removeDir(dir));

async function writeChunk(bytes: Uint8Array, chid = chidOf(bytes), pieces = 3): Promise<void> {
  const w = store.beginWrite(chid, bytes.length, store.chunkPath(chid), chid);
  const step = Math.ceil(bytes.length / pieces) || 1;
  for (let off = 0; off < bytes.length; off += step) await w.write(off, bytes.subarray(off, off + step));
  await w.commit();
}

describe("node-target chunk store", () => {
  it("stores a chunk under its CHID, written in pieces, and reads it back verified", async () => {
    const bytes = pseudoRandom(300_000, 1);
    await writeChunk(bytes);
    const chid = chidOf(bytes);
    expect(await store.hasChunk(chid)).toBe(true);
    expect(Buffer.compare(Buffer.from((await store.readVerified(store.chunkPath(chid), chid))!), Buffer.from(bytes))).toBe(0);
    expect(store.stats).toEqual({ chunks: 1, bytes: bytes.length });
  });

  it("refuses bytes that do not hash to the name, and leaves no file under it", async () => {
    const bytes = pseudoRandom(10_000, 2);
    const wrong = chidOf(pseudoRandom(10_000, 3));
    await expect(writeChunk(bytes, wrong)).rejects.toThrow(/hash mismatch/);
    expect(existsSync(store.chunkPath(wrong))).toBe(false);
    expect(readdirSync(join(dir, "tmp"))).toEqual([]);
  });

  it("refuses a short or overlong write", async () => {
    const bytes = pseudoRandom(5_000, 4);
    const chid = chidOf(bytes);
    const short = store.beginWrite(chid, bytes.length, store.chunkPath(chid), chid);
    await short.write(0, bytes.subarray(0, 100));
    await expect(short.commit()).rejects.toThrow(/short chunk/);
    const long = store.beginWrite(chid, 10, store.chunkPath(chid), chid);
    await expect(long.write(0, bytes)).rejects.toThrow(/larger than announced/);
    await long.abort();
    expect(existsSync(store.chunkPath(chid))).toBe(false);
  });

  it("never returns a corrupt copy: it is moved to quarantine and reported missing", async () => {
    const bytes = pseudoRandom(50_000, 5);
    await writeChunk(bytes);
    const chid = chidOf(bytes);
    const path = store.chunkPath(chid);
    const damaged = readFileSync(path);
    damaged[12_345] = damaged[12_345]! ^ 0xff;
    writeFileSync(path, damaged);
    expect(await store.readVerified(path, chid)).toBeNull();
    expect(existsSync(path)).toBe(false);
    expect(readdirSync(join(dir, "quarantine")).length).toBe(1);
    expect(await store.hasChunk(chid)).toBe(false);
  });

  it("sweeps unfinished writes at start and recounts what is stored", async () => {
    const bytes = pseudoRandom(20_000, 6);
    await writeChunk(bytes);
    const unfinished = store.beginWrite(chidOf(pseudoRandom(9, 7)), 9, "/nonexistent", "00");
    await unfinished.write(0, pseudoRandom(5, 7));
    expect(readdirSync(join(dir, "tmp")).length).toBe(1);
    const reopened = new ChunkStore(dir);
    await reopened.open();
    expect(readdirSync(join(dir, "tmp"))).toEqual([]);
    expect(reopened.stats).toEqual({ chunks: 1, bytes: bytes.length });
  });

  it("files version manifests by name and version, and finds the newest or an exact one", async () => {
    const nhid = "ab".repeat(32) as Nhid;
    const versions = ["000000000001000000000000", "000000000003000000000000", "000000000002000000000000"].map((u) => u.slice(0, 22) as Uvid);
    for (const [i, uvid] of versions.entries()) {
      const vm = new TextEncoder().encode(`{"v":${i}}`);
      const chid = chidOf(vm);
      const w = store.beginWrite(chid, vm.length, store.vmPath(nhid, uvid, chid), nhid);
      await w.write(0, vm);
      await w.commit();
    }
    expect((await store.findVm(nhid, null))?.uvid).toBe(versions[1]);
    expect((await store.findVm(nhid, versions[2]!))?.uvid).toBe(versions[2]);
    expect(await store.findVm("cd".repeat(32) as Nhid, null)).toBeNull();
    expect(store.heldGroups(8)).toEqual([parseInt(nhid.slice(0, 8), 16) % 8]);
  });

  // Sizes around the 4 KiB direct-I/O alignment, the 1 MiB staging block and the frame payload.
  const AWKWARD = [0, 1, 4095, 4096, 4097, FRAME_PAYLOAD_MAX - 1, FRAME_PAYLOAD_MAX, FRAME_PAYLOAD_MAX + 1, 1024 * 1024, 1024 * 1024 + 3, 3 * 1024 * 1024 + 77];

  async function roundTrips(s: ChunkStore): Promise<void> {
    for (const [i, size] of AWKWARD.entries()) {
      const bytes = pseudoRandom(size, 100 + i);
      const chid = chidOf(bytes);
      const w = s.beginWrite(chid, size, s.chunkPath(chid), chid);
      // Arrive in frame-sized pieces, as from a group.
      for (let off = 0; off < size; off += FRAME_PAYLOAD_MAX) await w.write(off, bytes.subarray(off, off + FRAME_PAYLOAD_MAX));
      await w.commit();
      expect(readFileSync(s.chunkPath(chid)).length).toBe(size);
      const read = (await s.readFrames(s.chunkPath(chid), chid, FRAME_GET_DATA, 42, 0))!;
      expect(read.size).toBe(size);
      const joined = Buffer.concat(
        read.frames.map((f, k) => {
          expect(f.length).toBeLessThanOrEqual(FRAME_MAX);
          const { header, payload } = decodeFrame(f);
          expect(header).toEqual({ kind: FRAME_GET_DATA, last: k === read.frames.length - 1, item: 0, txn: 42, offset: k * FRAME_PAYLOAD_MAX, total: size });
          return Buffer.from(payload);
        }),
      );
      expect(Buffer.compare(joined, Buffer.from(bytes))).toBe(0);
      read.release();
    }
    expect(s.io.pool.outstanding).toBe(0);
  }

  it("writes and serves chunks of every awkward size with direct I/O, and returns every buffer", async () => {
    expect(store.io.direct).toBe(true);
    await roundTrips(store);
  });

  it("gives the same results with buffered I/O (filesystems without O_DIRECT, or --no-direct-io)", async () => {
    const other = mkdtempSync(join(tmpdir(), "edgestore-store-buffered-"));
    try {
      const s = new ChunkStore(other, { directIo: false });
      await s.open();
      expect(s.io.direct).toBe(false);
      await roundTrips(s);
    } finally {
      removeDir(other);
    }
  });
});
