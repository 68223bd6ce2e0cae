// The node-target store on real files in a temporary directory: a chunk only ever appears under
// its name after its bytes hashed to that name, a manifest only becomes a row after the same
// check, corrupt copies are never returned, an interrupted write leaves nothing behind after a
// restart, chunks written together share one pack batch, a torn pack tail is dropped at start,
// compaction gives back the space of deleted chunks (and only theirs), and a deletion is
// durable when it is confirmed.

import { createHash } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Chid, Nhid, Uvid } from "../../common/ids.ts";
import { decodeFrame, FRAME_GET_DATA, FRAME_MAX, FRAME_PAYLOAD_MAX, type StoredRef } from "../../common/protocol.ts";
import { ChunkStore } from "../../node-target/store.ts";
import { chunkOnDisk, chunksOnDisk, readOnDisk } from "../../node-target/packs/on-disk.ts";
import { packName } from "../../node-target/packs/pack-files.ts";
import { footprint } from "../../node-target/packs/record.ts";
import { flipByte, pseudoRandom, removeDir } from "./helpers.ts";

const chidOf = (b: Uint8Array) => createHash("sha256").update(b).digest("hex") as Chid;
const chunk = (chid: Chid): StoredRef => ({ kind: "chunk", chid });
const NHID = "ab".repeat(32) as Nhid;
const uvidOf = (n: number) => `${String(n).padStart(12, "0")}000000000a` as Uvid;
let dir: string;
let store: ChunkStore;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "edgestore-store-"));
  store = new ChunkStore(dir);
  await store.open();
});

afterEach(async () => {
  await store.close();
  removeDir(dir);
});

async function writeItem(s: ChunkStore, ref: StoredRef, bytes: Uint8Array, pieces = 3): Promise<void> {
  const w = s.beginWrite(ref, bytes.length);
  const step = Math.ceil(bytes.length / pieces) || 1;
  for (let off = 0; off < bytes.length; off += step) await w.write(off, bytes.subarray(off, off + step));
  await w.commit();
}

const writeChunk = (bytes: Uint8Array, chid = chidOf(bytes)) => writeItem(store, chunk(chid), bytes);

function manifest(n: number): { ref: StoredRef; bytes: Uint8Array } {
  const bytes = new TextEncoder().encode(`{"v":${n}}`);
  return { ref: { kind: "vm", nhid: NHID, uvid: uvidOf(n), chid: chidOf(bytes) }, bytes };
}

describe("node-target store: chunks", () => {
  it("stores a chunk under its CHID, written in pieces, and reads it back verified", async () => {
    const bytes = pseudoRandom(300_000, 1);
    await writeChunk(bytes);
    const chid = chidOf(bytes);
    expect(await store.hasChunk(chid)).toBe(true);
    expect(store.has(chunk(chid))).toBe(true);
    expect(Buffer.compare(Buffer.from((await store.readVerified(chunk(chid)))!), Buffer.from(bytes))).toBe(0);
    expect(store.stats).toEqual({ chunks: 1, bytes: bytes.length });
  });

  it("refuses bytes that do not hash to the name, and leaves no file under it", async () => {
    const bytes = pseudoRandom(10_000, 2);
    const wrong = chidOf(pseudoRandom(10_000, 3));
    await expect(writeChunk(bytes, wrong)).rejects.toThrow(/hash mismatch/);
    expect(store.has(chunk(wrong))).toBe(false);
    expect(chunksOnDisk(dir)).toEqual([]);
  });

  it("refuses a short or overlong write", async () => {
    const bytes = pseudoRandom(5_000, 4);
    const chid = chidOf(bytes);
    const short = store.beginWrite(chunk(chid), bytes.length);
    await short.write(0, bytes.subarray(0, 100));
    await expect(short.commit()).rejects.toThrow(/short item/);
    const long = store.beginWrite(chunk(chid), 10);
    await expect(long.write(0, bytes)).rejects.toThrow(/larger than announced/);
    await long.abort();
    expect(chunkOnDisk(dir, chid)).toBeNull();
    expect(store.io.pool.outstanding).toBe(0);
  });

  it("never returns a corrupt copy: it is moved to quarantine and reported missing", async () => {
    const bytes = pseudoRandom(50_000, 5);
    await writeChunk(bytes);
    const chid = chidOf(bytes);
    const copy = chunkOnDisk(dir, chid)!;
    flipByte(copy.path, copy.offset + 12_345);
    expect(await store.readVerified(chunk(chid))).toBeNull();
    expect(chunkOnDisk(dir, chid)).toBeNull();
    expect(readdirSync(join(dir, "quarantine")).length).toBe(1);
    expect(await store.hasChunk(chid)).toBe(false);
    expect(store.stats).toEqual({ chunks: 0, bytes: 0 });
  });

  it("lets no write that began before its chunk was reclaimed land after the reclaim", async () => {
    const bytes = pseudoRandom(200_000, 7);
    const chid = chidOf(bytes);
    // Begun before the reclaim (a repair's copy, or a put its group gave up on): it fails, nothing lands.
    const stale = store.beginWrite(chunk(chid), bytes.length);
    await stale.write(0, bytes.subarray(0, 1000));
    expect(await store.remove(chunk(chid))).toBe(0);
    await stale.write(1000, bytes.subarray(1000));
    await expect(stale.commit()).rejects.toThrow(/reclaimed by its group while being written/);
    expect(await store.hasChunk(chid)).toBe(false);
    expect(chunkOnDisk(dir, chid)).toBeNull();
    // One already landing as the reclaim comes is deleted once it has landed.
    const landing = store.beginWrite(chunk(chid), bytes.length);
    await landing.write(0, bytes);
    const committed = landing.commit();
    await new Promise((r) => setImmediate(r));
    const freed = await store.remove(chunk(chid));
    await committed.catch(() => {});
    expect(await store.hasChunk(chid)).toBe(false);
    expect(chunkOnDisk(dir, chid)).toBeNull();
    expect(freed === 0 || freed === bytes.length).toBe(true);
    // One begun after the reclaim (the group stored it again) lands.
    await writeChunk(bytes);
    expect(await store.hasChunk(chid)).toBe(true);
    expect(store.stats).toEqual({ chunks: 1, bytes: bytes.length });
  });

  it("keeps nothing of an unfinished write across a restart, and recounts what is stored", async () => {
    const bytes = pseudoRandom(20_000, 6);
    await writeChunk(bytes);
    const m = manifest(1);
    await writeItem(store, m.ref, m.bytes);
    const unfinished = store.beginWrite(chunk(chidOf(pseudoRandom(9, 7))), 9);
    await unfinished.write(0, pseudoRandom(5, 7));
    await store.close();
    store = new ChunkStore(dir);
    await store.open();
    expect(store.stats).toEqual({ chunks: 1, bytes: bytes.length + m.bytes.length });
    expect(chunksOnDisk(dir).map((c) => c.chid)).toEqual([chidOf(bytes)]);
    expect(store.heldGroups(8).sort()).toEqual([...new Set([chidOf(bytes), NHID].map((id) => parseInt(id.slice(0, 8), 16) % 8))].sort());
  });

  it("writes chunks that are ready together as one pack batch, each durable and indexed when acknowledged", async () => {
    const bodies = Array.from({ length: 24 }, (_, i) => pseudoRandom(4096 + i * 1000, 300 + i));
    const before = store.packs.batches;
    await Promise.all(bodies.map((b) => writeItem(store, chunk(chidOf(b)), b, 1)));
    expect(store.packs.batches - before).toBeLessThan(bodies.length / 2);
    // Another connection to the database sees every row, and each row names its bytes.
    for (const b of bodies) expect(Buffer.compare(readOnDisk(chunkOnDisk(dir, chidOf(b))!), Buffer.from(b))).toBe(0);
    expect(store.stats.chunks).toBe(bodies.length);
  });

  it("counts a chunk once when two writes of it race, in one batch or in two", async () => {
    const a = pseudoRandom(30_000, 41);
    const b = pseudoRandom(40_000, 42);
    // Both writes of `a` begin before either lands (neither sees the other): one batch.
    await Promise.all([writeItem(store, chunk(chidOf(a)), a, 1), writeItem(store, chunk(chidOf(a)), a, 1)]);
    // `b` stored, then a late second copy of it lands in a later batch.
    const late = store.beginWrite(chunk(chidOf(b)), b.length);
    await writeItem(store, chunk(chidOf(b)), b, 1);
    await late.write(0, b);
    await late.commit();
    expect(store.stats).toEqual({ chunks: 2, bytes: a.length + b.length });
    // What a restart recounts from the index agrees.
    await store.close();
    store = new ChunkStore(dir);
    await store.open();
    expect(store.stats).toEqual({ chunks: 2, bytes: a.length + b.length });
  });

  it("drops a torn pack tail at start, and keeps every acknowledged chunk", async () => {
    const kept = pseudoRandom(70_000, 8);
    await writeChunk(kept);
    const pack = chunkOnDisk(dir, chidOf(kept))!.path;
    const committed = statSync(pack).size;
    await store.close();
    // A batch the crash cut off before its commit: bytes past the pack's committed size.
    appendFileSync(pack, pseudoRandom(10_000, 9));
    store = new ChunkStore(dir);
    await store.open();
    expect(statSync(pack).size).toBe(committed);
    expect(Buffer.from((await store.readVerified(chunk(chidOf(kept))))!).equals(Buffer.from(kept))).toBe(true);
    // And appends go on from there.
    const next = pseudoRandom(5_000, 10);
    await writeChunk(next);
    expect(Buffer.from((await store.readVerified(chunk(chidOf(next))))!).equals(Buffer.from(next))).toBe(true);
  });

  it("indexes again at start the chunks of a batch whose index commit a crash lost: the pack is the log", async () => {
    const bodies = [pseudoRandom(40_000, 20), pseudoRandom(90_000, 21), pseudoRandom(5, 22)];
    for (const b of bodies) await writeChunk(b);
    const pack = chunkOnDisk(dir, chidOf(bodies[0]!))!.path;
    await store.close();
    // The commits of these rows were never synced, and the crash took them (and the pack's size).
    const db = new DatabaseSync(join(dir, "index.sqlite"));
    db.exec("DELETE FROM chunks; UPDATE packs SET size = 0, dead = 0;");
    db.close();
    appendFileSync(pack, pseudoRandom(3_000, 23));
    store = new ChunkStore(dir);
    await store.open();
    for (const b of bodies) expect(Buffer.from((await store.readVerified(chunk(chidOf(b))))!).equals(Buffer.from(b))).toBe(true);
    expect(store.stats.chunks).toBe(bodies.length);
    expect(store.lostAtOpen).toBe(0);
  });

  it("steps over a damaged record when it indexes a pack again, and keeps the records after it", async () => {
    const bodies = [pseudoRandom(40_000, 24), pseudoRandom(50_000, 25), pseudoRandom(30_000, 26)];
    for (const b of bodies) await writeChunk(b);
    const middle = chunkOnDisk(dir, chidOf(bodies[1]!))!;
    await store.close();
    const db = new DatabaseSync(join(dir, "index.sqlite"));
    db.exec("DELETE FROM chunks; UPDATE packs SET size = 0, dead = 0;");
    db.close();
    // Media damage inside the middle record, whose index commit the crash also took.
    flipByte(middle.path, middle.offset + 1_000);
    store = new ChunkStore(dir);
    await store.open();
    expect(store.has(chunk(chidOf(bodies[1]!)))).toBe(false);
    for (const b of [bodies[0]!, bodies[2]!]) expect(Buffer.from((await store.readVerified(chunk(chidOf(b))))!).equals(Buffer.from(b))).toBe(true);
    expect(store.stats.chunks).toBe(2);
  });

  it("compacts packs whose chunks were mostly deleted: live chunks move, the space comes back", async () => {
    await store.close();
    store = new ChunkStore(dir, { packMaxBytes: 256 * 1024, compaction: { intervalMs: 3_600_000, rate: 1e12 } });
    await store.open();
    const bodies = Array.from({ length: 30 }, (_, i) => pseudoRandom(60_000, 400 + i));
    for (const b of bodies) await writeChunk(b);
    const packsBefore = store.index.packs().length;
    expect(packsBefore).toBeGreaterThan(3);
    const keep = bodies.filter((_, i) => i % 5 === 0);
    for (const b of bodies.filter((_, i) => i % 5 !== 0)) await store.remove(chunk(chidOf(b)));
    await store.compactor!.runOnce();
    const after = store.index.packs();
    expect(after.length).toBeLessThan(packsBefore);
    // What is left is mostly live.
    const size = after.reduce((a, p) => a + p.size, 0);
    const live = keep.reduce((a, b) => a + footprint(b.length), 0);
    expect(live / size).toBeGreaterThan(0.5);
    for (const b of keep) expect(Buffer.from((await store.readVerified(chunk(chidOf(b))))!).equals(Buffer.from(b))).toBe(true);
    expect(store.stats.chunks).toBe(keep.length);
    // Deleted chunks stay deleted.
    for (const b of bodies.filter((_, i) => i % 5 !== 0)) expect(store.has(chunk(chidOf(b)))).toBe(false);
  });

  it("deletes a compacted pack at the next start if it stopped before the file went: deleted chunks stay deleted", async () => {
    await store.close();
    store = new ChunkStore(dir, { packMaxBytes: 256 * 1024, compaction: { intervalMs: 3_600_000, rate: 1e12 } });
    await store.open();
    const bodies = Array.from({ length: 30 }, (_, i) => pseudoRandom(60_000, 500 + i));
    for (const b of bodies) await writeChunk(b);
    const keep = bodies.filter((_, i) => i % 5 === 0);
    for (const b of bodies.filter((_, i) => i % 5 !== 0)) await store.remove(chunk(chidOf(b)));
    const filesBefore = readdirSync(join(dir, "packs"));
    await store.compactor!.runOnce();
    // Stopped (or crashed) within the grace period that lets reads of the old packs finish.
    await store.close();
    expect(readdirSync(join(dir, "packs"))).toEqual(expect.arrayContaining(filesBefore));
    store = new ChunkStore(dir);
    await store.open();
    const known = new Set(store.index.packs().map((p) => packName(p.id)));
    expect(readdirSync(join(dir, "packs")).filter((f) => !known.has(f))).toEqual([]);
    for (const b of bodies.filter((_, i) => i % 5 !== 0)) expect(store.has(chunk(chidOf(b)))).toBe(false);
    for (const b of keep) expect(Buffer.from((await store.readVerified(chunk(chidOf(b))))!).equals(Buffer.from(b))).toBe(true);
    expect(store.stats.chunks).toBe(keep.length);
  });

  it("leaves alone packs of small chunks written one at a time: the padding after a batch is not dead space", async () => {
    await store.close();
    store = new ChunkStore(dir, { packMaxBytes: 64 * 1024, compaction: { intervalMs: 3_600_000, rate: 1e12 } });
    await store.open();
    for (let i = 0; i < 40; i++) await writeChunk(pseudoRandom(300, 600 + i));
    const packsBefore = store.index.packs();
    expect(packsBefore.length).toBeGreaterThan(2);
    await store.compactor!.runOnce();
    expect(store.index.packs()).toEqual(packsBefore);
    expect(store.index.retired()).toEqual([]);
    expect(packsBefore.every((p) => p.dead === 0)).toBe(true);
  });

  it("answers a read whose pack file is gone with an error, once (the chunk is lost, not moved)", async () => {
    const bytes = pseudoRandom(20_000, 13);
    await writeChunk(bytes);
    rmSync(chunkOnDisk(dir, chidOf(bytes))!.path);
    await expect(store.readFrames(chunk(chidOf(bytes)), 1, 0)).rejects.toThrow(/ENOENT/);
    expect(store.io.pool.outstanding).toBe(0);
  });

  it("moves chunk files of an older data directory into packs, verified", async () => {
    await store.close();
    const good = pseudoRandom(30_000, 11);
    const fan = join(dir, "chunks", chidOf(good).slice(0, 2));
    mkdirSync(fan, { recursive: true });
    writeFileSync(join(fan, chidOf(good)), good);
    const bad = chidOf(pseudoRandom(10, 12));
    mkdirSync(join(dir, "chunks", bad.slice(0, 2)), { recursive: true });
    writeFileSync(join(dir, "chunks", bad.slice(0, 2), bad), pseudoRandom(11, 12));
    store = new ChunkStore(dir);
    await store.open();
    expect(existsSync(join(dir, "chunks"))).toBe(false);
    expect(store.has(chunk(bad))).toBe(false);
    expect(Buffer.from((await store.readVerified(chunk(chidOf(good))))!).equals(Buffer.from(good))).toBe(true);
  });

  // Sizes around the 4 KiB direct-I/O alignment, the 1 MiB staging block and the frame payload.
  const AWKWARD = [0, 1, 4095, 4096, 4097, FRAME_PAYLOAD_MAX - 1, FRAME_PAYLOAD_MAX, FRAME_PAYLOAD_MAX + 1, 1024 * 1024, 1024 * 1024 + 3, 3 * 1024 * 1024 + 77];

  async function roundTrips(s: ChunkStore): Promise<void> {
    for (const [i, size] of AWKWARD.entries()) {
      const bytes = pseudoRandom(size, 100 + i);
      const ref = chunk(chidOf(bytes));
      const w = s.beginWrite(ref, size);
      // Arrive in frame-sized pieces, as from a group.
      for (let off = 0; off < size; off += FRAME_PAYLOAD_MAX) await w.write(off, bytes.subarray(off, off + FRAME_PAYLOAD_MAX));
      await w.commit();
      expect(s.index.find(ref.chid)?.length).toBe(size);
      const read = (await s.readFrames(ref, 42, 0))!;
      expect(read.size).toBe(size);
      let offset = 0;
      const joined = Buffer.concat(
        read.frames.map((f, k) => {
          expect(f.length).toBeLessThanOrEqual(FRAME_MAX);
          const { header, payload } = decodeFrame(f);
          expect(header).toEqual({ kind: FRAME_GET_DATA, last: k === read.frames.length - 1, item: 0, txn: 42, offset, total: size });
          offset += payload.length;
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
    const s = new ChunkStore(other, { directIo: false });
    try {
      await s.open();
      expect(s.io.direct).toBe(false);
      await roundTrips(s);
    } finally {
      await s.close();
      removeDir(other);
    }
  });
});

describe("node-target store: version manifests", () => {
  it("files manifests by name and version, and finds the newest or an exact one", async () => {
    for (const n of [1, 3, 2]) {
      const m = manifest(n);
      await writeItem(store, m.ref, m.bytes, 1);
    }
    expect(store.findVm(NHID, null)?.uvid).toBe(uvidOf(3));
    expect(store.findVm(NHID, uvidOf(2))?.uvid).toBe(uvidOf(2));
    expect(store.findVm(NHID, uvidOf(2))?.size).toBe(manifest(2).bytes.length);
    expect(store.findVm("cd".repeat(32) as Nhid, null)).toBeNull();
    expect(store.heldGroups(8)).toEqual([parseInt(NHID.slice(0, 8), 16) % 8]);
    const read = (await store.readFrames(manifest(2).ref, 7, 0))!;
    expect(Buffer.from(decodeFrame(read.frames[0]!).payload).toString()).toBe('{"v":2}');
    read.release();
  });

  it("refuses a manifest whose bytes do not hash to its name", async () => {
    const m = manifest(4);
    const bad = { ...m.ref, chid: chidOf(new TextEncoder().encode("other")) } as StoredRef;
    await expect(writeItem(store, bad, m.bytes)).rejects.toThrow(/hash mismatch/);
    expect(store.has(bad)).toBe(false);
  });

  it("commits manifests that arrive together in one transaction, each durable when acknowledged", async () => {
    const before = store.vms.commits;
    const ms = Array.from({ length: 20 }, (_, i) => manifest(100 + i));
    await Promise.all(ms.map((m) => writeItem(store, m.ref, m.bytes, 1)));
    expect(store.vms.commits - before).toBeLessThan(ms.length);
    for (const m of ms) expect(store.has(m.ref)).toBe(true);
    // Another connection to the database sees every row: they are committed, not just queued.
    const db = new DatabaseSync(join(dir, "index.sqlite"));
    expect(Number(db.prepare("SELECT count(*) AS n FROM vm").get()!.n)).toBe(ms.length);
    db.close();
  });

  it("confirms a manifest's deletion only once the log holding it is synced", async () => {
    const m = manifest(12);
    await writeItem(store, m.ref, m.bytes, 1);
    const before = store.vms.syncs;
    expect(await store.remove(m.ref)).toBeGreaterThan(0);
    expect(store.vms.syncs).toBeGreaterThan(before);
    expect(store.has(m.ref)).toBe(false);
  });

  it("lets no manifest write that began before the manifest was reclaimed land after the reclaim", async () => {
    const m = manifest(9);
    const stale = store.beginWrite(m.ref, m.bytes.length);
    await stale.write(0, m.bytes);
    await store.remove(m.ref);
    await expect(stale.commit()).rejects.toThrow(/reclaimed by its group while being written/);
    expect(store.has(m.ref)).toBe(false);
    // Committing (queued for the log's next transaction) as the reclaim comes: dropped once it is in.
    const landing = store.beginWrite(m.ref, m.bytes.length);
    await landing.write(0, m.bytes);
    const committed = landing.commit();
    await store.remove(m.ref);
    await committed.catch(() => {});
    expect(store.has(m.ref)).toBe(false);
    await writeItem(store, m.ref, m.bytes, 1);
    expect(store.has(m.ref)).toBe(true);
  });

  /** A small file's manifest as the gateway writes it, version `n`, of content number `c` (its hashes). */
  function realManifest(n: number, c = 1): { ref: StoredRef; bytes: Uint8Array } {
    const hash = (what: string) => createHash("sha256").update(`${what} ${c}`).digest("hex");
    const vm = {
      bucket: "photos", chunks: [[0, 6144, hash("stored"), "deflate-raw", 2300, hash("raw")]], contentType: "binary/octet-stream", created: 1764633600000 + n,
      creator: "LOCALACCESSKEY000001", deleteMarker: false, etag: hash("md5").slice(0, 32), format: 1, httpMeta: {}, inline: null,
      key: "src/d12/f1234.txt", size: 6144, tenant: "default", userMeta: {}, uvid: uvidOf(n),
    };
    const bytes = new TextEncoder().encode(JSON.stringify(vm));
    return { ref: { kind: "vm", nhid: NHID, uvid: uvidOf(n), chid: chidOf(bytes) }, bytes };
  }

  const rowOf = (n: number) => {
    const db = new DatabaseSync(join(dir, "index.sqlite"));
    try {
      return db.prepare("SELECT length(bytes) AS stored, size, enc, dict FROM vm WHERE uvid = unhex(?)").get(uvidOf(n))!;
    } finally {
      db.close();
    }
  };
  const dictsOf = () => {
    const db = new DatabaseSync(join(dir, "index.sqlite"));
    try {
      return db.prepare("SELECT n, length(bytes) AS stored FROM vm_dicts ORDER BY n").all().map((r) => ({ n: Number(r.n), stored: Number(r.stored) }));
    } finally {
      db.close();
    }
  };

  it("keeps a name's manifests as their difference from an earlier one, and serves their exact bytes", async () => {
    const first = realManifest(7);
    await writeItem(store, first.ref, first.bytes);
    // The first of a name becomes its dictionary, kept deflated: half its size or less.
    expect(dictsOf()).toHaveLength(1);
    expect(dictsOf()[0]!.stored).toBeLessThanOrEqual(first.bytes.length / 2);
    expect(Number(rowOf(7).size)).toBe(first.bytes.length);
    // The same content again (a tree re-uploaded whole): only its version id and time differ.
    const again = realManifest(8);
    await writeItem(store, again.ref, again.bytes);
    expect([Number(rowOf(8).enc), Number(rowOf(8).dict)]).toEqual([2, 1]);
    expect(Number(rowOf(8).stored)).toBeLessThanOrEqual(48);
    // Changed content: its hashes differ, so it becomes the name's next dictionary.
    const changed = realManifest(9, 2);
    await writeItem(store, changed.ref, changed.bytes);
    expect(Number(rowOf(9).dict)).toBe(2);
    for (const m of [first, again, changed]) expect(Buffer.from((await store.readVerified(m.ref))!).equals(Buffer.from(m.bytes))).toBe(true);
    expect(store.findVm(NHID, uvidOf(8))?.size).toBe(again.bytes.length);
    // A dictionary goes with the last manifest deflated against it, and not before.
    await store.remove(first.ref);
    expect(dictsOf().map((d) => d.n)).toEqual([1, 2]);
    expect(Buffer.from((await store.readVerified(again.ref))!).equals(Buffer.from(again.bytes))).toBe(true);
    await store.remove(again.ref);
    expect(dictsOf().map((d) => d.n)).toEqual([2]);
    await store.remove(changed.ref);
    expect(dictsOf()).toEqual([]);
  });

  it("numbers dictionaries of writes that land together apart, and keeps each while a write needs it", async () => {
    const ms = [realManifest(20, 5), realManifest(21, 6), realManifest(22, 7), realManifest(23, 7)];
    await Promise.all(ms.map((m) => writeItem(store, m.ref, m.bytes, 1)));
    expect(dictsOf().map((d) => d.n)).toEqual([1, 2, 3]);
    // Dropped while a write deflated against the same dictionary is still on its way.
    const late = realManifest(24, 7);
    const landing = writeItem(store, late.ref, late.bytes, 1);
    await store.remove(ms[2]!.ref);
    await store.remove(ms[3]!.ref);
    await landing;
    expect(Buffer.from((await store.readVerified(late.ref))!).equals(Buffer.from(late.bytes))).toBe(true);
    for (const m of [...ms.slice(0, 2), late]) await store.remove(m.ref);
    expect(dictsOf()).toEqual([]);
  });

  it("rewrites a log whose ids are hex text at open, and serves what it held", async () => {
    const m = realManifest(11);
    await store.close();
    const db = new DatabaseSync(join(dir, "index.sqlite"));
    db.exec("DROP TABLE vm; DROP TABLE IF EXISTS vm_dicts");
    db.exec("CREATE TABLE vm (nhid TEXT NOT NULL, uvid TEXT NOT NULL, chid TEXT NOT NULL, bytes BLOB NOT NULL, PRIMARY KEY (nhid, uvid, chid)) WITHOUT ROWID");
    const ref = m.ref as StoredRef & { kind: "vm" };
    db.prepare("INSERT INTO vm (nhid, uvid, chid, bytes) VALUES (?, ?, ?, ?)").run(ref.nhid, ref.uvid, ref.chid, m.bytes);
    db.close();
    store = new ChunkStore(dir);
    await store.open();
    expect(store.has(m.ref)).toBe(true);
    expect(Buffer.from((await store.readVerified(m.ref))!).equals(Buffer.from(m.bytes))).toBe(true);
    expect(store.findVm(NHID, null)?.uvid).toBe(uvidOf(11));
  });

  it("quarantines a manifest that fails its check and no longer serves or bids it", async () => {
    const m = manifest(5);
    await writeItem(store, m.ref, m.bytes);
    const db = new DatabaseSync(join(dir, "index.sqlite"));
    db.prepare("UPDATE vm SET bytes = ? WHERE uvid = unhex(?)").run(new TextEncoder().encode('{"v":6}'), uvidOf(5));
    db.close();
    expect(await store.readVerified(m.ref)).toBeNull();
    expect(store.has(m.ref)).toBe(false);
    expect(store.findVm(NHID, uvidOf(5))).toBeNull();
  });

  it("moves manifest files of an older data directory into the log, verified", async () => {
    await store.close();
    const m = manifest(8);
    const ref = m.ref as Extract<StoredRef, { kind: "vm" }>;
    const legacy = join(dir, "vms", NHID.slice(0, 2), NHID);
    mkdirSync(legacy, { recursive: true });
    writeFileSync(join(legacy, `${ref.uvid}-${ref.chid}`), m.bytes);
    writeFileSync(join(legacy, `${uvidOf(9)}-${ref.chid}`), new TextEncoder().encode("damaged"));
    store = new ChunkStore(dir);
    await store.open();
    expect(existsSync(join(dir, "vms"))).toBe(false);
    expect(store.findVm(NHID, null)?.uvid).toBe(uvidOf(8));
    expect(Buffer.from((await store.readVerified(m.ref))!).toString()).toBe('{"v":8}');
  });
});
