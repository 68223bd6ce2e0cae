// Chunks in append-only pack files (the design of Haystack volumes, SeaweedFS and restic packs):
// instead of a file, an fsync, a rename and a directory fsync per chunk, the chunks that are
// ready together are written as one batch at the end of the active pack, made durable with one
// fdatasync, and indexed in one commit (pack-index.ts, index-db.ts). While a batch is being
// written, the next one gathers: the busier the target, the larger its batches.
//
// Durability: the pack is the log. A chunk's write resolves once its record (header with its
// CHID and length, then its bytes) is on disk; its index row is committed after that but not
// synced on its own (the next synced commit, or a checkpoint, carries it), so a batch costs one
// fdatasync. The index holds each pack's committed size; at start, whatever lies beyond it is
// read record by record: a record whose header and bytes check out is indexed again (its row
// may have been lost with the unsynced commit), one whose header checks out but whose bytes do
// not is stepped over (damaged media must not cost the records after it), and the first header
// that does not check out (a batch the crash cut off, never acknowledged) ends the pack: the
// torn tail is truncated away. A pack file the index does not know and that holds no record is
// deleted. Since whatever lies past the committed size is taken back, a record the index must
// not take back (a chunk deleted while compaction copied it) is made durable as dead at once.
//
// Space: deleting a chunk drops its row; the bytes stay until compaction (compactor.ts) copies a
// pack's live records to the active pack and deletes the old file, after a durable note that
// the pack is retired, so that a start before the file is gone deletes it too.

import { createHash } from "node:crypto";
import { readdirSync, statSync } from "node:fs";
import { mkdir, open, rm, type FileHandle } from "node:fs/promises";
import { constants } from "node:fs";
import { join } from "node:path";
import type { Chid } from "../../common/ids.ts";
import { ALIGN, BLOCK, roundUp, type BlockIo, type BlockReader } from "../block-io.ts";
import type { CommitQueue } from "../index-db.ts";
import { log } from "../log.ts";
import type { ChunkLocation, ChunkRow, PackIndex, Placed } from "./pack-index.ts";
import { footprint, readRecordHeader, RECORD_HEADER, writeRecordHeader } from "./record.ts";

/** A new pack is started once the active one would pass this size. */
export const PACK_MAX_BYTES = 128 * 1024 * 1024;
/** A compacted pack's file is deleted this long after its last record moved: reads that found it before then finish first. */
const RETIRE_MS = 30_000;

export interface Append {
  chid: Chid;
  /** The payload, in order (views of pool blocks). */
  parts: readonly Uint8Array[];
  length: number;
  /** Compaction: where the record is now; its row moves only if it still names that place. */
  from?: ChunkLocation;
}

interface Queued extends Append {
  resolve: (at: Placed | null) => void;
  reject: (e: Error) => void;
}

interface ActivePack {
  id: number;
  fh: FileHandle;
  size: number;
}

async function fsyncDir(path: string): Promise<void> {
  const dh = await open(path, "r");
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

/** What a directory of packs is read and written through and indexed in. */
export interface PackStore {
  io: BlockIo;
  index: PackIndex;
  commits: CommitQueue;
  /** A new pack is started once the active one would pass this size: PACK_MAX_BYTES but in tests. */
  maxBytes?: number;
}

/**
 * Read pack `tail.pack` past its committed size `tail.from` to its end `tail.size`: index every
 * record whose header and bytes check out, stop at the first that does not, and cut the file
 * there (aligned, as a batch ends). Returns the pack's size now.
 */
async function recoverTail(path: string, tail: { pack: number; from: number; size: number }, { index, commits }: PackStore): Promise<number> {
  const { pack, from, size } = tail;
  const fh = await open(path, "r+");
  try {
    const found: ChunkRow[] = [];
    const head = Buffer.alloc(RECORD_HEADER);
    let pos = from;
    let end = from;
    let wasted = 0;
    while (pos + RECORD_HEADER <= size) {
      const got = await fh.read(head, 0, RECORD_HEADER, pos);
      const h = got.bytesRead === RECORD_HEADER ? readRecordHeader(head) : null;
      if (!h) {
        // Past the last record of a batch: the next batch starts on an aligned boundary.
        if (pos % ALIGN !== 0) {
          pos = roundUp(pos, ALIGN);
          continue;
        }
        break;
      }
      if (pos + RECORD_HEADER + h.length > size) break;
      const bytes = Buffer.allocUnsafe(h.length);
      const read = await fh.read(bytes, 0, h.length, pos + RECORD_HEADER);
      if (read.bytesRead === h.length && createHash("sha256").update(bytes).digest("hex") === h.chid) {
        found.push({ chid: h.chid, pack, pos, length: h.length, written: Math.floor(h.written) });
      } else {
        wasted += footprint(h.length);
        log("warn", "pack record past the committed size fails its hash: stepped over", { pack, pos, chid: h.chid });
      }
      pos += footprint(h.length);
      end = roundUp(pos, ALIGN);
    }
    if (end < size) {
      await fh.truncate(end);
      log("warn", "pack torn tail dropped", { pack, bytes: size - end });
    }
    await fh.datasync();
    if (found.length > 0 || wasted > 0) {
      await commits.run(() => {
        index.added(pack, end, found);
        index.wasted(pack, wasted);
      });
      log("info", "pack records indexed again at start", { pack, records: found.length });
    }
    return end;
  } finally {
    await fh.close();
  }
}

export function packName(id: number): string {
  return `${String(id).padStart(8, "0")}.pack`;
}

export class PackFiles {
  readonly dir: string;
  private readonly io: BlockIo;
  private readonly index: PackIndex;
  private readonly commits: CommitQueue;
  private readonly maxBytes: number;
  private active: ActivePack | null = null;
  private nextId: number;
  private readonly readers = new Map<number, Promise<BlockReader>>();
  /** Compacted packs whose files are deleted when their timer fires (or at the next open). */
  private readonly retiring = new Map<number, NodeJS.Timeout>();
  private queue: Queued[] = [];
  private draining: Promise<void> | null = null;
  private closed = false;
  private readonly header = Buffer.alloc(RECORD_HEADER);
  /** Batches written, for metrics and tests. */
  batches = 0;

  private constructor(dir: string, store: Required<PackStore>, nextId: number) {
    this.dir = dir;
    this.io = store.io;
    this.index = store.index;
    this.commits = store.commits;
    this.maxBytes = store.maxBytes;
    this.nextId = nextId;
  }

  /**
   * Open the packs of `dir`: index again the records past each pack's committed size and cut
   * its torn tail (recoverTail), delete files that hold no record, and drop index rows whose
   * bytes are not there (a disk that did not keep what it promised). Returns the chunks dropped
   * so, which the caller reports as lost.
   */
  static async open(dir: string, store: PackStore): Promise<{ packs: PackFiles; lost: number }> {
    const { index, commits, maxBytes = PACK_MAX_BYTES } = store;
    await mkdir(dir, { recursive: true });
    const retired = index.retired();
    for (const id of retired) await rm(join(dir, packName(id)), { force: true });
    if (retired.length > 0) {
      await fsyncDir(dir);
      await commits.run(() => retired.forEach((id) => index.forgetRetired(id)));
    }
    const known = new Map(index.packs().map((p) => [p.id, p]));
    const files = new Map<number, number>();
    for (const name of readdirSync(dir)) {
      const m = /^(\d{8})\.pack$/.exec(name);
      if (m) files.set(Number(m[1]), statSync(join(dir, name)).size);
    }
    let lost = 0;
    for (const [id, size] of files) {
      const row = known.get(id) ?? { id, size: 0, dead: 0 };
      if (size > row.size) {
        const end = await recoverTail(join(dir, packName(id)), { pack: id, from: row.size, size }, store);
        if (end === 0 && !known.has(id)) {
          await rm(join(dir, packName(id)), { force: true });
          files.delete(id);
          continue;
        }
        files.set(id, end);
        known.set(id, { ...row, size: end });
      }
    }
    for (const row of known.values()) {
      const size = files.get(row.id) ?? 0;
      if (size >= row.size) continue;
      // Committed bytes that are not on disk: their rows name nothing.
      let after = -1;
      const gone: Chid[] = [];
      for (let page = index.inPack(row.id, after, 1024); page.length > 0; page = index.inPack(row.id, after, 1024)) {
        for (const r of page) if (r.pos + footprint(r.length) > size) gone.push(r.chid);
        after = page[page.length - 1]!.pos;
      }
      await commits.run(() => {
        for (const c of gone) index.removed(c);
        if (!files.has(row.id)) index.dropPack(row.id);
      });
      lost += gone.length;
      log("error", "pack shorter than committed: its missing chunks are dropped", { pack: row.id, committed: row.size, found: size, chunks: gone.length });
    }
    const ids = [...known.keys(), ...files.keys()];
    const packs = new PackFiles(dir, { ...store, maxBytes }, ids.length > 0 ? Math.max(...ids) + 1 : 1);
    // Go on appending to the newest pack while it has room.
    const newest = index.packs().at(-1);
    if (newest && files.has(newest.id) && newest.size < maxBytes) {
      packs.active = { id: newest.id, fh: await packs.openForAppend(newest.id, false), size: newest.size };
    }
    return { packs, lost };
  }

  /** The pack being appended to (compaction leaves it alone). */
  get activeId(): number | null {
    return this.active?.id ?? null;
  }

  /**
   * Append a record; resolves with where it is once it is durable and indexed. For a move
   * (`from`), resolves null when the row no longer named `from` (deleted meanwhile): the new
   * record is then dead space.
   */
  append(a: Append): Promise<Placed | null> {
    if (this.closed) return Promise.reject(new Error("packs closed"));
    return new Promise((resolve, reject) => {
      this.queue.push({ ...a, resolve, reject });
      this.draining ??= this.drain().finally(() => (this.draining = null));
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      try {
        await this.writeBatch(batch);
      } catch (e) {
        const err = e instanceof Error ? e : new Error(String(e));
        for (const q of batch) q.reject(err);
      }
    }
  }

  private async writeBatch(batch: Queued[]): Promise<void> {
    const need = batch.reduce((n, q) => n + footprint(q.length), 0);
    const pack = await this.packFor(need);
    const written = Date.now();
    const rows: ChunkRow[] = [];
    // The batch is laid out in aligned blocks and written with one vectored write, which the
    // pack's O_DSYNC makes durable before it returns: one trip through the thread pool, not a
    // write per block and an fdatasync after them.
    const blocks = [await this.io.pool.acquire()];
    let used = 0;
    const put = async (src: Uint8Array): Promise<void> => {
      for (let at = 0; at < src.length; ) {
        if (used === BLOCK) {
          blocks.push(await this.io.pool.acquire());
          used = 0;
        }
        const n = Math.min(BLOCK - used, src.length - at);
        blocks[blocks.length - 1]!.set(src.subarray(at, at + n), used);
        used += n;
        at += n;
      }
    };
    let fileAt = pack.size;
    try {
      let pos = pack.size;
      for (const q of batch) {
        writeRecordHeader(this.header, q.chid, q.length, written);
        rows.push({ chid: q.chid, pack: pack.id, pos, length: q.length, written });
        await put(this.header);
        for (const p of q.parts) await put(p);
        pos += footprint(q.length);
      }
      // The batch ends on an aligned boundary, the gap zeroed: the next batch starts there.
      const padded = roundUp(used, ALIGN);
      const last = blocks[blocks.length - 1]!;
      last.fill(0, used, padded);
      const parts = blocks.map((b, i) => (i < blocks.length - 1 ? b : b.subarray(0, padded)));
      await this.io.writeAll(pack.fh, parts, fileAt);
      fileAt += (blocks.length - 1) * BLOCK + padded;
    } finally {
      for (const b of blocks) this.io.pool.release(b);
    }
    const moved: boolean[] = [];
    const replaced: boolean[] = [];
    // Not synced on its own: the records are durable in the pack, and a start after a crash
    // indexes again whatever the pack holds past its committed size.
    await this.commits.run(
      () => {
        const fresh = batch.flatMap((q, i) => (q.from ? [] : [i]));
        this.index.added(pack.id, fileAt, fresh.map((i) => rows[i]!)).forEach((r, k) => (replaced[fresh[k]!] = r));
        batch.forEach((q, i) => {
          if (q.from) moved[i] = this.index.moved(q.chid, q.from, rows[i]!);
        });
      },
      { durable: false },
    );
    // A copy whose chunk was deleted meanwhile lies below the committed size only once that
    // commit is durable; until then a crash would have the next start index it again.
    if (batch.some((q, i) => q.from && !moved[i])) await this.commits.sync();
    pack.size = fileAt;
    this.batches++;
    batch.forEach((q, i) => q.resolve(q.from && !moved[i] ? null : { pack: pack.id, pos: rows[i]!.pos, length: q.length, replaced: replaced[i] === true }));
  }

  /** The active pack, or a new one if `need` more bytes would take it past the size limit. */
  private async packFor(need: number): Promise<ActivePack> {
    const a = this.active;
    if (a && (a.size === 0 || a.size + need <= this.maxBytes)) return a;
    if (a) await a.fh.close();
    const id = this.nextId++;
    const fh = await this.openForAppend(id, true);
    // The new file's name must survive a crash as its contents will.
    await fsyncDir(this.dir);
    this.active = { id, fh, size: 0 };
    return this.active;
  }

  /** O_DSYNC: a write returns once its bytes (and the file's new size) are on disk. */
  private openForAppend(id: number, create: boolean): Promise<FileHandle> {
    const flags = constants.O_WRONLY | constants.O_DSYNC | (create ? constants.O_CREAT | constants.O_EXCL : 0) | (this.io.direct ? constants.O_DIRECT : 0);
    return open(join(this.dir, packName(id)), flags, 0o600);
  }

  /** A reader of `pack` (shared, kept open). */
  reader(pack: number): Promise<BlockReader> {
    let h = this.readers.get(pack);
    if (!h) {
      h = this.io.openForRead(join(this.dir, packName(pack)));
      h.catch(() => this.readers.delete(pack));
      this.readers.set(pack, h);
    }
    return h;
  }

  /**
   * Read `length` payload bytes from `offset` into the record at `loc`, into `block` as a frame
   * is laid out there (block-io.ts BLOCK): from ALIGN, or up to ALIGN - 1 bytes after it (direct
   * reads start on an aligned position); returns where they begin. `block` must have room for
   * ALIGN more bytes past the payload.
   */
  async readPayload(loc: ChunkLocation, offset: number, length: number, block: Buffer): Promise<number> {
    const reader = await this.reader(loc.pack);
    const start = loc.pos + RECORD_HEADER + offset;
    const from = this.io.direct ? start - (start % ALIGN) : start;
    const skip = start - from;
    const got = await reader.readInto(block, ALIGN, skip + length, from);
    if (got < skip + length) throw new Error(`pack ${loc.pack} ends ${skip + length - got} bytes short of the record at ${loc.pos}`);
    return ALIGN + skip;
  }

  /**
   * A compacted pack (nothing in it is indexed any more): retired durably now, its file deleted
   * once reads that found it before have finished.
   */
  async retire(pack: number): Promise<void> {
    await this.commits.run(() => this.index.retirePack(pack));
    const t = setTimeout(() => {
      this.retiring.delete(pack);
      void this.deleteRetired(pack).catch((e: unknown) => {
        // The next open deletes it: the pack is still noted as retired.
        log("warn", "retired pack not deleted", { pack, error: String(e) });
      });
    }, RETIRE_MS);
    t.unref();
    this.retiring.set(pack, t);
  }

  private async deleteRetired(pack: number): Promise<void> {
    const h = this.readers.get(pack);
    this.readers.delete(pack);
    // A read handle that fails to close holds nothing to lose.
    await h?.then((r) => r.close()).catch(() => {});
    await rm(join(this.dir, packName(pack)), { force: true });
    // The file must stay gone before its note goes: a file back without one is indexed again.
    await fsyncDir(this.dir);
    await this.commits.run(() => this.index.forgetRetired(pack), { durable: false });
  }

  /** Finish the batches queued; retired packs not yet deleted are deleted at the next open. */
  async close(): Promise<void> {
    this.closed = true;
    await this.draining;
    for (const t of this.retiring.values()) clearTimeout(t);
    this.retiring.clear();
    // Closing at shutdown: every batch written is synced already; a failing close loses nothing.
    await this.active?.fh.close().catch(() => {});
    this.active = null;
    for (const h of this.readers.values()) await h.then((r) => r.close()).catch(() => {});
    this.readers.clear();
  }
}
