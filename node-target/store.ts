// The store on one data directory: chunks as records of append-only pack files (packs/), found
// through an index; version manifests as rows of the manifest log (vm-log.ts), filed under their
// name (NHID) and version (UVID). Both indexes live in one SQLite database (index-db.ts). An item
// is only ever held under its name after its bytes hashed to that name and are durable
// (pending-write.ts); a copy that later fails its hash is quarantined: never served, never bid.

import { createHash, createHmac } from "node:crypto";
import { statfsSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import type { Chid, Nhid, Uvid } from "../common/ids.ts";
import { FRAME_GET_DATA, FRAME_HEADER, storedRefKey, writeFrameHeader, type StoredRef } from "../common/protocol.ts";
import { ALIGN, BLOCK, BlockIo } from "./block-io.ts";
import { CommitQueue, openIndexDb, walPath } from "./index-db.ts";
import { importChunkFiles, importManifestFiles } from "./legacy-import.ts";
import { log } from "./log.ts";
import { metrics } from "./metrics.ts";
import { Compactor, type CompactionOptions } from "./packs/compactor.ts";
import { PackFiles, PACK_MAX_BYTES } from "./packs/pack-files.ts";
import { PackIndex, type ChunkLocation, type ChunkRow } from "./packs/pack-index.ts";
import { PendingWrite, type WriteHost } from "./pending-write.ts";
import { VmLog, type VmEntry } from "./vm-log.ts";
import { inventoryPage, type InventoryPage } from "./inventory.ts";

export type { VmEntry } from "./vm-log.ts";
export type { PendingWrite } from "./pending-write.ts";
export type { InventoryPage } from "./inventory.ts";

export interface StoreStats {
  /** Chunks held. */
  chunks: number;
  /** Bytes of chunks and manifests. */
  bytes: number;
}

/** A stored item, laid out as ready-to-send frames in pool blocks. */
export interface FramedRead {
  size: number;
  frames: Uint8Array[];
  /** Return the blocks to the pool; call once every frame has been handed to the socket. */
  release(): void;
}

export interface StoreOptions {
  /** false forces buffered I/O (for filesystems whose O_DIRECT misbehaves). */
  directIo?: boolean;
  /** A new pack is started past this size (tests use small packs to see compaction). */
  packMaxBytes?: number;
  /** Compaction of packs with dead space; absent: the defaults, run in the background once opened. */
  compaction?: Partial<CompactionOptions> | false;
}

/**
 * Payload bytes per frame a read builds: a direct read starts up to ALIGN - 1 bytes before the
 * payload it wants, and the frame header sits in the ALIGN bytes before that, all in one block.
 */
const READ_SPAN = BLOCK - 2 * ALIGN;

function movedSince(was: ChunkLocation, now: ChunkLocation | null): boolean {
  return now !== null && (now.pack !== was.pack || now.pos !== was.pos);
}
const FREE_TTL_MS = 1_000;

export class ChunkStore {
  readonly dir: string;
  readonly stats: StoreStats = { chunks: 0, bytes: 0 };
  /** Chunks the packs were found not to hold at open though the index named them (a disk that did not keep its promise). */
  lostAtOpen = 0;
  /** When an item was last written or served (not checked): how busy clients keep this target. */
  lastTraffic = 0;
  private freeCache: { at: number; disk: number; bytesAtCheck: number } | null = null;
  /** First 4 bytes of every stored CHID and NHID: enough to say which groups we hold data for. */
  private readonly prefixes = new Set<number>();
  /**
   * Chunks being deleted (reclaimed by their group). Such a chunk is not held from the moment
   * the group's message arrives: it is neither bid as "have" nor served, and a new copy of it
   * waits for the deletion before it is placed.
   */
  private readonly removing = new Map<Chid, Promise<void>>();
  /** Writes in progress, by storedRefKey: a reclaim of the item dooms those already begun. */
  private readonly writing = new Map<string, Set<PendingWrite>>();
  private readonly opts: StoreOptions;

  #io: BlockIo | null = null;
  #db: DatabaseSync | null = null;
  #commits: CommitQueue | null = null;
  #vms: VmLog | null = null;
  #index: PackIndex | null = null;
  #packs: PackFiles | null = null;
  #compactor: Compactor | null = null;

  /** What a write needs of this store (pending-write.ts). */
  private readonly host: WriteHost;

  constructor(dir: string, opts: StoreOptions = {}) {
    this.dir = dir;
    this.opts = opts;
    const store = this;
    this.host = {
      get pool() {
        return store.io.pool;
      },
      placeChunk: (chid, parts, length) => this.packs.append({ chid, parts, length }),
      placeManifest: (nhid, uvid, chid, bytes) => this.vms.put(nhid, uvid, chid, bytes),
      removed: (chid) => this.removed(chid),
      landed: (w, ms) => {
        this.lastTraffic = Date.now();
        this.recordFsync(ms);
        // A second copy of a chunk stored here already is no new chunk and no new bytes.
        if (!w.replaced) {
          if (w.ref.kind === "chunk") this.stats.chunks++;
          this.stats.bytes += w.size;
        }
        this.notePrefix(w.ref.kind === "vm" ? w.ref.nhid : w.ref.chid);
      },
      ended: (w) => this.writeEnded(w),
    };
  }

  get io(): BlockIo {
    return this.must(this.#io);
  }

  get vms(): VmLog {
    return this.must(this.#vms);
  }

  get packs(): PackFiles {
    return this.must(this.#packs);
  }

  get index(): PackIndex {
    return this.must(this.#index);
  }

  get compactor(): Compactor | null {
    return this.#compactor;
  }

  private must<T>(x: T | null): T {
    if (x === null) throw new Error("store used before open()");
    return x;
  }

  /** Set up direct I/O, the database and the packs (dropping a torn tail), and count what is stored. */
  async open(): Promise<void> {
    // Older layouts wrote chunks through tmp/; nothing there is ever needed again.
    await rm(join(this.dir, "tmp"), { recursive: true, force: true });
    await mkdir(join(this.dir, "tmp"), { recursive: true });
    this.#io = await BlockIo.open(join(this.dir, "tmp"), this.opts.directIo ?? true);
    this.#db = openIndexDb(this.dir);
    this.#commits = new CommitQueue(this.#db, walPath(this.dir));
    this.#vms = new VmLog(this.#db, this.#commits);
    this.#index = new PackIndex(this.#db);
    const opened = await PackFiles.open(join(this.dir, "packs"), { io: this.#io, index: this.#index, commits: this.#commits, maxBytes: this.opts.packMaxBytes ?? PACK_MAX_BYTES });
    this.#packs = opened.packs;
    this.lostAtOpen = opened.lost;
    await importChunkFiles(this.dir, this.packs);
    await importManifestFiles(this.dir, this.vms);
    const totals = this.index.totals();
    this.stats.chunks = totals.chunks;
    this.stats.bytes = totals.bytes + this.vms.bytes();
    for (const p of this.index.prefixes()) this.prefixes.add(p);
    for (const p of this.vms.namePrefixes()) this.prefixes.add(p);
    if (this.opts.compaction !== false) {
      this.#compactor = new Compactor(
        {
          packs: this.packs,
          index: this.index,
          read: async (chid) => {
            const r = await this.readFrames({ kind: "chunk", chid }, 0, 0, true);
            return r && { parts: r.frames.map((f) => f.subarray(FRAME_HEADER)), release: r.release };
          },
        },
        this.opts.compaction ?? {},
      );
      this.#compactor.start();
    }
  }

  /** Stop compaction, commit what is queued, and let go of files and the database. */
  async close(): Promise<void> {
    await this.#compactor?.stop();
    await this.#packs?.close();
    await this.#commits?.flush();
    await this.#commits?.close();
    this.#db?.close();
    this.#db = null;
  }

  notePrefix(id: string): void {
    this.prefixes.add(parseInt(id.slice(0, 8), 16));
  }

  /** After a deletion: a prefix nothing held has any more no longer names a group held (heartbeats report the drop). */
  private forgetPrefix(id: string): void {
    const p = id.slice(0, 8);
    if (!this.index.hasPrefix(p) && !this.vms.hasNamePrefix(p)) this.prefixes.delete(parseInt(p, 16));
  }

  /**
   * Every item stored here, chunks then version manifests, read lazily in pages (what a scrub
   * or `node-target verify` goes through). Items deleted meanwhile may still be named.
   */
  async *storedRefs(): AsyncGenerator<StoredRef> {
    for (let page = this.index.page(null, 256); page.length > 0; page = page.length < 256 ? [] : this.index.page(page[page.length - 1]!.chid, 256)) {
      for (const r of page) yield { kind: "chunk", chid: r.chid };
    }
    for (let page = this.vms.page(null, 256); page.length > 0; page = page.length < 256 ? [] : this.vms.page(page[page.length - 1]!, 256)) {
      for (const v of page) yield { kind: "vm", ...v };
    }
  }

  /** Chunks written at or after `since` (ms), oldest first: what a start after a crash re-hashes. */
  chunksWrittenSince(since: number): Chid[] {
    return this.index.writtenSince(since, Number.MAX_SAFE_INTEGER).map((r) => r.chid);
  }

  heldGroups(groupCount: number): number[] {
    const out = new Set<number>();
    for (const p of this.prefixes) out.add(p % groupCount);
    return [...out].sort((a, b) => a - b);
  }

  /** Whether this exact item is held (one index lookup). */
  has(ref: StoredRef): boolean {
    if (ref.kind === "vm") return this.vms.has(ref.nhid, ref.uvid, ref.chid);
    return !this.removing.has(ref.chid) && this.index.has(ref.chid);
  }

  async hasChunk(chid: Chid): Promise<boolean> {
    return this.has({ kind: "chunk", chid });
  }

  /** The newest manifest held for a name, or the exact version asked for. */
  findVm(nhid: Nhid, uvid: Uvid | null): VmEntry | null {
    return this.vms.find(nhid, uvid);
  }

  beginWrite(ref: StoredRef, size: number): PendingWrite {
    const w = new PendingWrite(this.host, ref, size);
    const key = storedRefKey(ref);
    const set = this.writing.get(key) ?? new Set();
    set.add(w);
    this.writing.set(key, set);
    return w;
  }

  /** A write committed or was given up. */
  private writeEnded(w: PendingWrite): void {
    const key = storedRefKey(w.ref);
    const set = this.writing.get(key);
    if (!set?.delete(w) || set.size > 0) return;
    this.writing.delete(key);
  }

  /**
   * Doom the writes of this item already under way (see PendingWrite.doomed). Resolves once
   * those already past their last look at `doomed` have landed, so that the deletion after
   * it finds them; the others throw before they land. Never waits on a write's bytes.
   */
  private doomWrites(ref: StoredRef): Promise<void> {
    const placing: Promise<void>[] = [];
    for (const w of this.writing.get(storedRefKey(ref)) ?? []) {
      w.doomed = true;
      // Only its end is awaited here; a placing that fails is its writer's error to report.
      if (w.placing) placing.push(w.placing.catch(() => {}));
    }
    return placing.length === 0 ? Promise.resolve() : Promise.all(placing).then(() => {});
  }

  /**
   * Delete an item its group reclaimed (nothing references it any more). The item stops being
   * held synchronously, before this returns its promise, so whatever the group sends after its
   * reclaim message finds it gone. Resolves to the bytes freed once the deletion is durable;
   * a chunk's space comes back when its pack is compacted.
   */
  remove(ref: StoredRef): Promise<number> {
    const landing = this.doomWrites(ref);
    if (ref.kind === "vm") {
      const drop = () => {
        const n = this.vms.drop(ref.nhid, ref.uvid, ref.chid);
        this.stats.bytes -= n;
        this.forgetPrefix(ref.nhid);
        return n;
      };
      const n = drop();
      // Again once a write that was landing as the reclaim came has landed; then both
      // deletions (commits of their own) are synced before the group is told they are done.
      return landing.then(async () => {
        const m = drop();
        await this.must(this.#commits).sync();
        return n + m;
      });
    }
    let freed = 0;
    const done = (this.removing.get(ref.chid) ?? Promise.resolve())
      .then(() => landing)
      .then(() =>
        this.must(this.#commits).run(() => {
          freed = this.index.removed(ref.chid);
        }),
      )
      .then(() => {
        if (freed === 0) return;
        this.stats.chunks--;
        this.stats.bytes -= freed;
        this.forgetPrefix(ref.chid);
      })
      .finally(() => {
        if (this.removing.get(ref.chid) === done) this.removing.delete(ref.chid);
      });
    this.removing.set(ref.chid, done);
    return done.then(() => freed);
  }

  /** Resolves once no delete of this chunk is in progress (a new copy must not be placed under one). */
  async removed(chid: Chid): Promise<void> {
    // Whether the delete succeeded is its caller's business: this waits only for it to be over.
    await this.removing.get(chid)?.catch(() => {});
  }

  recordFsync(ms: number): void {
    metrics.fsync.observe(ms / 1000);
  }

  /**
   * Read a stored item into GET_DATA frames of item `item` of `txn`: what serving sends; other
   * readers (proofs, checks) look only past the headers. A chunk frame's payload is read from
   * its pack straight behind its header, so nothing is copied before the socket. Serving does
   * not verify (`verify` false): the group hashes what it receives and reports a bad copy
   * (bad-copy), so a second hash here would only double the CPU per byte served. With `verify`,
   * a copy that fails the check is quarantined (never served, never bid as "have") and reported
   * as missing (null). A missing item is null either way.
   */
  async readFrames(ref: StoredRef, txn: number, item: number, verify = false): Promise<FramedRead | null> {
    if (ref.kind === "chunk" && this.removing.has(ref.chid)) return null;
    if (!verify) this.lastTraffic = Date.now();
    const blocks: Buffer[] = [];
    const release = () => {
      for (const b of blocks.splice(0)) this.io.pool.release(b);
    };
    const hash = verify ? createHash("sha256") : null;
    const frames: Uint8Array[] = [];
    // Frame after frame: `fill(block, offset, len)` puts `len` bytes of the item from `offset`
    // in `block` and returns where they begin (at ALIGN, or a little after for a direct read).
    const build = async (size: number, fill: (block: Buffer, offset: number, len: number) => Promise<number>): Promise<void> => {
      for (let offset = 0; offset < size || frames.length === 0; offset += READ_SPAN) {
        const len = Math.min(READ_SPAN, size - offset);
        const block = await this.io.pool.acquire();
        blocks.push(block);
        const at = await fill(block, offset, len);
        const payload = block.subarray(at, at + len);
        hash?.update(payload);
        const frame = block.subarray(at - FRAME_HEADER, at + len);
        writeFrameHeader(frame, { kind: FRAME_GET_DATA, last: offset + len >= size, item, txn, offset, total: size });
        frames.push(frame);
      }
    };
    let size: number;
    let row: ChunkRow | null = null;
    try {
      if (ref.kind === "vm") {
        const bytes = this.vms.read(ref.nhid, ref.uvid, ref.chid);
        if (!bytes) return null;
        size = bytes.length;
        await build(size, async (block, offset, len) => {
          block.set(bytes.subarray(offset, offset + len), ALIGN);
          return ALIGN;
        });
      } else {
        const loc = this.index.find(ref.chid);
        if (!loc) return null;
        row = { chid: ref.chid, ...loc };
        size = loc.length;
        await build(size, (block, offset, len) => this.packs.readPayload(loc, offset, len, block));
      }
    } catch (e) {
      release();
      // A pack compacted away between the lookup and the read: the record is in its new place.
      // If the index still names the missing file, the bytes are gone, and that is the answer.
      if ((e as NodeJS.ErrnoException).code === "ENOENT" && row && movedSince(row, this.index.find(row.chid))) return this.readFrames(ref, txn, item, verify);
      throw e;
    }
    const actual = hash?.digest("hex") ?? ref.chid;
    if (actual !== ref.chid) {
      const bytes = Buffer.concat(frames.map((f) => f.subarray(FRAME_HEADER)));
      release();
      if (row) await this.quarantineChunk(row, bytes, `stored bytes hash to ${actual}`);
      else if (ref.kind === "vm") this.quarantineManifest(ref, `stored bytes hash to ${actual}`);
      return null;
    }
    return { size, frames, release };
  }

  /** A page of the items held for one group (inventory.ts). */
  inventory(group: number, groupCount: number, page: InventoryPage): { refs: StoredRef[]; next: string | null } {
    return inventoryPage({ index: this.index, vms: this.vms }, { group, groupCount }, page);
  }

  /**
   * Proof of holding `ref` now: HMAC-SHA-256 of its stored bytes keyed with `nonce` (hex), as
   * common/possession.ts defines it, computed frame by frame as the copy is read. Null when it
   * is not here.
   */
  async proveHolding(ref: StoredRef, nonce: string): Promise<string | null> {
    const r = await this.readFrames(ref, 0, 0);
    if (!r) return null;
    try {
      const mac = createHmac("sha256", Buffer.from(nonce, "hex"));
      for (const f of r.frames) mac.update(f.subarray(FRAME_HEADER));
      return mac.digest("hex");
    } finally {
      r.release();
    }
  }

  /**
   * The stored bytes, verified (a copy; for checks and tools, not the serving path). `by` says
   * who asked, for the count of copies found damaged (metrics).
   */
  async readVerified(ref: StoredRef, by: "scrub" | "read" | "check" | "start" = "scrub"): Promise<Uint8Array | null> {
    const had = this.has(ref);
    const r = await this.readFrames(ref, 0, 0, true);
    if (!r) {
      if (had) metrics.verifyFailures.inc({ by });
      return null;
    }
    const out = new Uint8Array(r.size);
    let at = 0;
    for (const f of r.frames) {
      out.set(f.subarray(FRAME_HEADER), at);
      at += f.length - FRAME_HEADER;
    }
    r.release();
    return out;
  }

  /** A chunk copy that failed its hash: its bytes kept under quarantine/ for a post-mortem, its row gone. */
  private async quarantineChunk(row: ChunkRow, bytes: Uint8Array, reason: string): Promise<void> {
    const qdir = join(this.dir, "quarantine");
    await mkdir(qdir, { recursive: true });
    const dest = join(qdir, `${Date.now()}-${row.chid}`);
    await writeFile(dest, bytes);
    let n = 0;
    await this.must(this.#commits).run(() => {
      // Only if the row still names the copy that was read (a compaction may have moved it since).
      const now = this.index.find(row.chid);
      if (now && !movedSince(row, now)) n = this.index.removed(row.chid);
    });
    if (n > 0) {
      this.stats.chunks--;
      this.stats.bytes -= n;
    }
    log("error", "corrupt copy quarantined", { chid: row.chid, pack: row.pack, pos: row.pos, reason, moved_to: dest });
  }

  private quarantineManifest(ref: StoredRef & { kind: "vm" }, reason: string): void {
    this.vms.quarantine(ref.nhid, ref.uvid, ref.chid, reason);
    log("error", "corrupt manifest quarantined", { nhid: ref.nhid, uvid: ref.uvid, chid: ref.chid, reason });
  }

  /**
   * Bytes this target may still take. Every bid asks, so the filesystem is asked at most every
   * FREE_TTL_MS; bytes written since are subtracted, so the answer only errs on the safe side.
   */
  freeBytes(capacity: number): number {
    const now = Date.now();
    if (this.freeCache === null || now - this.freeCache.at > FREE_TTL_MS) {
      const fs = statfsSync(this.dir);
      this.freeCache = { at: now, disk: Number(fs.bavail) * Number(fs.bsize), bytesAtCheck: this.stats.bytes };
    }
    const disk = this.freeCache.disk - (this.stats.bytes - this.freeCache.bytesAtCheck);
    return Math.max(0, Math.min(disk, capacity - this.stats.bytes));
  }
}
