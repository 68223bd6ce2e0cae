// The store on one data directory. A chunk file is named by its CHID and only ever appears
// under that name after its bytes were hashed and matched, written and fsynced: a partial or
// corrupt write stays in tmp/ and is swept at the next start. Version manifests, small and one
// per version, are rows of the manifest log (vm-log.ts) filed under their name (NHID) and
// version (UVID), checked against their CHID the same way before they are written.

import { createHash, type Hash } from "node:crypto";
import { existsSync, statfsSync } from "node:fs";
import { mkdir, open, readdir, readFile, rename, rm, stat, type FileHandle } from "node:fs/promises";
import { dirname, join } from "node:path";
import { groupOf, type Chid, type Nhid, type Uvid } from "../common/ids.ts";
import { FRAME_HEADER, FRAME_PAYLOAD_MAX, storedRefKey, writeFrameHeader, type StoredRef } from "../common/protocol.ts";
import { ALIGN, BLOCK, BlockIo } from "./block-io.ts";
import { log } from "./log.ts";
import { metrics } from "./metrics.ts";
import { VmLog, type VmEntry } from "./vm-log.ts";

export type { VmEntry } from "./vm-log.ts";

export interface StoreStats {
  /** Chunk files. */
  chunks: number;
  /** Bytes of chunks and manifests. */
  bytes: number;
}

/**
 * A write in progress: bytes are hashed as they arrive. A chunk's are staged in one aligned
 * pool block, which goes to its tmp file whenever it fills (see block-io.ts); a manifest's are
 * kept (manifests are small) and become one row of the manifest log at commit.
 */
export class PendingWrite {
  private received = 0;
  private flushed = 0;
  private stage: Buffer | null = null;
  private staged = 0;
  private hash: Hash = createHash("sha256");
  private fh: FileHandle | null = null;
  private readonly kept: Uint8Array | null;
  private readonly store: ChunkStore;
  private readonly tmpPath: string;
  readonly ref: StoredRef;
  readonly size: number;
  /**
   * Its group reclaimed this item while it was being written: the write began before the
   * reclaim (the group's messages arrive in order), so it is a stale copy (a repair or a put
   * the group has given up on) and must not land after the reclaim found nothing to delete.
   */
  doomed = false;
  /** While the bytes are put in place, past the last look at `doomed`: what a reclaim waits for. */
  placing: Promise<void> | null = null;

  constructor(store: ChunkStore, ref: StoredRef, size: number, tmpPath: string) {
    this.store = store;
    this.ref = ref;
    this.size = size;
    this.tmpPath = tmpPath;
    this.kept = ref.kind === "vm" ? new Uint8Array(size) : null;
  }

  get chid(): Chid {
    return this.ref.chid;
  }

  async write(offset: number, bytes: Uint8Array): Promise<void> {
    if (offset !== this.received) throw new Error(`out-of-order frame: expected offset ${this.received}, got ${offset}`);
    if (this.received + bytes.length > this.size) throw new Error(`item larger than announced ${this.size} bytes`);
    this.hash.update(bytes);
    if (this.kept) {
      this.kept.set(bytes, this.received);
      this.received += bytes.length;
      return;
    }
    const io = this.store.io;
    this.fh ??= await io.openForWrite(this.tmpPath);
    this.stage ??= await io.pool.acquire();
    this.received += bytes.length;
    for (let at = 0; at < bytes.length; ) {
      const n = Math.min(BLOCK - this.staged, bytes.length - at);
      this.stage.set(bytes.subarray(at, at + n), this.staged);
      this.staged += n;
      at += n;
      if (this.staged === BLOCK) {
        await io.writeBlock(this.fh, this.stage, BLOCK, this.flushed);
        this.flushed += BLOCK;
        this.staged = 0;
      }
    }
  }

  /** Verify, make durable, and put in place. Throws (and leaves nothing behind) on any mismatch. */
  async commit(): Promise<void> {
    try {
      if (this.received !== this.size) throw new Error(`short item: got ${this.received} of ${this.size} bytes`);
      const actual = this.hash.digest("hex");
      if (actual !== this.ref.chid) throw new Error(`hash mismatch: bytes hash to ${actual}`);
      const t0 = performance.now();
      if (this.ref.kind === "vm") {
        const ref = this.ref;
        await this.land(() => this.store.vms.put(ref.nhid, ref.uvid, ref.chid, this.kept!));
      } else {
        await this.commitFile();
        this.store.stats.chunks++;
      }
      this.store.recordFsync(performance.now() - t0);
      this.store.stats.bytes += this.size;
      this.store.notePrefix(this.ref.kind === "vm" ? this.ref.nhid : this.ref.chid);
    } catch (e) {
      await this.abort();
      throw e;
    } finally {
      this.store.writeEnded(this);
    }
  }

  /** Put the bytes in place unless a reclaim came first; a reclaim arriving from here on waits for it. */
  private async land(place: () => Promise<void>): Promise<void> {
    if (this.doomed) throw new Error(`${this.ref.kind === "vm" ? "manifest" : "chunk"} ${this.ref.chid} was reclaimed by its group while being written`);
    this.placing = place();
    await this.placing;
  }

  private async commitFile(): Promise<void> {
    const io = this.store.io;
    this.fh ??= await io.openForWrite(this.tmpPath);
    if (this.staged > 0) {
      await io.writeBlock(this.fh, this.stage!, this.staged, this.flushed);
      this.flushed += this.staged;
      this.staged = 0;
    }
    // A direct write pads the last block; the file keeps exactly the chunk's bytes.
    if (io.direct && this.size % ALIGN !== 0) await this.fh.truncate(this.size);
    this.releaseStage();
    await this.fh.sync();
    await this.fh.close();
    this.fh = null;
    await this.store.removed(this.ref.chid);
    await this.land(() => this.store.placeFile(this.tmpPath, this.store.chunkPath(this.ref.chid)));
  }

  async abort(): Promise<void> {
    this.store.writeEnded(this);
    this.releaseStage();
    if (this.fh) await this.fh.close().catch(() => {});
    this.fh = null;
    if (!this.kept) await rm(this.tmpPath, { force: true });
  }

  private releaseStage(): void {
    if (this.stage) this.store.io.pool.release(this.stage);
    this.stage = null;
  }
}

/** A stored item, laid out as ready-to-send frames in pool blocks. */
export interface FramedRead {
  size: number;
  frames: Uint8Array[];
  /** Return the blocks to the pool; call once every frame has been handed to the socket. */
  release(): void;
}

const FREE_TTL_MS = 1_000;

async function fsyncDir(path: string): Promise<void> {
  const dh = await open(path, "r");
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

export class ChunkStore {
  readonly dir: string;
  readonly stats: StoreStats = { chunks: 0, bytes: 0 };
  private tmpSeq = 0;
  private readonly fanDirs = new Set<string>();
  private freeCache: { at: number; disk: number; bytesAtCheck: number } | null = null;
  fsyncMsTotal = 0;
  fsyncCount = 0;
  /** First 4 bytes of every stored CHID and NHID: enough to say which groups we hold data for. */
  private readonly prefixes = new Set<number>();
  /**
   * Chunk files being deleted (reclaimed by their group). Such a chunk is not held from the
   * moment the group's message arrives: it is neither bid as "have" nor served, and a new copy
   * of it waits for the unlink before it is renamed into place.
   */
  private readonly removing = new Map<Chid, Promise<void>>();
  /** Writes in progress, by storedRefKey: a reclaim of the item dooms those already begun. */
  private readonly writing = new Map<string, Set<PendingWrite>>();

  #io: BlockIo | null = null;
  #vms: VmLog | null = null;
  private readonly directIo: boolean;

  /** `directIo: false` forces buffered I/O (for filesystems whose O_DIRECT misbehaves). */
  constructor(dir: string, opts: { directIo?: boolean } = {}) {
    this.dir = dir;
    this.directIo = opts.directIo ?? true;
  }

  get io(): BlockIo {
    if (!this.#io) throw new Error("store used before open()");
    return this.#io;
  }

  get vms(): VmLog {
    if (!this.#vms) throw new Error("store used before open()");
    return this.#vms;
  }

  /** Sweep unfinished writes, set up direct I/O and the manifest log, and count what is stored. */
  async open(): Promise<void> {
    await rm(join(this.dir, "tmp"), { recursive: true, force: true });
    await mkdir(join(this.dir, "tmp"), { recursive: true });
    this.#io = await BlockIo.open(join(this.dir, "tmp"), this.directIo);
    await mkdir(join(this.dir, "chunks"), { recursive: true });
    for (const fan of await readdir(join(this.dir, "chunks"))) {
      for (const name of await readdir(join(this.dir, "chunks", fan))) {
        const s = await stat(join(this.dir, "chunks", fan, name));
        this.stats.chunks++;
        this.stats.bytes += s.size;
        this.notePrefix(name);
      }
    }
    this.#vms = new VmLog(join(this.dir, "manifests.sqlite"));
    await this.importManifestFiles();
    this.stats.bytes += this.vms.bytes();
    for (const p of this.vms.namePrefixes()) this.prefixes.add(p);
  }

  /**
   * Data directories written before the manifest log kept one file per manifest under
   * vms/<aa>/<nhid>/<uvid>-<chid>: move each verified one into the log, then drop the tree.
   */
  private async importManifestFiles(): Promise<void> {
    const root = join(this.dir, "vms");
    if (!existsSync(root)) return;
    let moved = 0;
    for (const fan of await readdir(root)) {
      for (const nhid of await readdir(join(root, fan))) {
        for (const name of await readdir(join(root, fan, nhid))) {
          const [uvid, chid] = name.split("-") as [Uvid, Chid];
          const bytes = await readFile(join(root, fan, nhid, name));
          if (createHash("sha256").update(bytes).digest("hex") !== chid) {
            log("error", "corrupt manifest file not imported", { path: join(root, fan, nhid, name) });
            continue;
          }
          await this.vms.put(nhid as Nhid, uvid, chid, bytes);
          moved++;
        }
      }
    }
    await rm(root, { recursive: true, force: true });
    log("info", "manifest files moved into the manifest log", { count: moved });
  }

  close(): void {
    this.#vms?.close();
  }

  notePrefix(id: string): void {
    this.prefixes.add(parseInt(id.slice(0, 8), 16));
  }

  /**
   * Every item stored here, chunk files then version manifests, read lazily (what a scrub or
   * `node-target verify` goes through). Items deleted meanwhile may still be named.
   */
  async *storedRefs(): AsyncGenerator<StoredRef> {
    const root = join(this.dir, "chunks");
    for (const fan of await readdir(root).catch(() => [] as string[])) {
      for (const name of await readdir(join(root, fan)).catch(() => [] as string[])) yield { kind: "chunk", chid: name as Chid };
    }
    for (let page = this.vms.page(null, 256); page.length > 0; page = page.length < 256 ? [] : this.vms.page(page[page.length - 1]!, 256)) {
      for (const v of page) yield { kind: "vm", ...v };
    }
  }

  heldGroups(groupCount: number): number[] {
    const out = new Set<number>();
    for (const p of this.prefixes) out.add(p % groupCount);
    return [...out].sort((a, b) => a - b);
  }

  chunkPath(chid: Chid): string {
    return join(this.dir, "chunks", chid.slice(0, 2), chid);
  }

  /** Whether this exact item is held (a stat, or one index lookup for a manifest). */
  has(ref: StoredRef): boolean {
    if (ref.kind === "vm") return this.vms.has(ref.nhid, ref.uvid, ref.chid);
    return !this.removing.has(ref.chid) && existsSync(this.chunkPath(ref.chid));
  }

  async hasChunk(chid: Chid): Promise<boolean> {
    if (this.removing.has(chid)) return false;
    try {
      await stat(this.chunkPath(chid));
      return true;
    } catch {
      return false;
    }
  }

  /** The newest manifest held for a name, or the exact version asked for. */
  findVm(nhid: Nhid, uvid: Uvid | null): VmEntry | null {
    return this.vms.find(nhid, uvid);
  }

  beginWrite(ref: StoredRef, size: number): PendingWrite {
    const tmp = join(this.dir, "tmp", `${process.pid}-${++this.tmpSeq}-${ref.chid.slice(0, 16)}`);
    const w = new PendingWrite(this, ref, size, tmp);
    const key = storedRefKey(ref);
    const set = this.writing.get(key) ?? new Set();
    set.add(w);
    this.writing.set(key, set);
    return w;
  }

  /** A write committed or was given up. */
  writeEnded(w: PendingWrite): void {
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
      if (w.placing) placing.push(w.placing.catch(() => {}));
    }
    return placing.length === 0 ? Promise.resolve() : Promise.all(placing).then(() => {});
  }

  /**
   * Delete an item its group reclaimed (nothing references it any more): its space comes back.
   * The item stops being held synchronously, before this returns its promise, so whatever the
   * group sends after its reclaim message finds it gone. Resolves to the bytes freed.
   */
  remove(ref: StoredRef): Promise<number> {
    const landing = this.doomWrites(ref);
    if (ref.kind === "vm") {
      const drop = () => {
        const n = this.vms.drop(ref.nhid, ref.uvid, ref.chid);
        this.stats.bytes -= n;
        return n;
      };
      const n = drop();
      // Again once a write that was landing as the reclaim came has landed.
      return landing.then(() => n + drop());
    }
    const path = this.chunkPath(ref.chid);
    let freed = 0;
    const done = (this.removing.get(ref.chid) ?? Promise.resolve())
      .then(() => landing)
      .then(async () => {
        const s = await stat(path).catch(() => null);
        if (!s) return;
        await rm(path, { force: true });
        await fsyncDir(dirname(path));
        freed = s.size;
        this.stats.chunks--;
        this.stats.bytes -= s.size;
      })
      .finally(() => {
        if (this.removing.get(ref.chid) === done) this.removing.delete(ref.chid);
      });
    this.removing.set(ref.chid, done);
    return done.then(() => freed);
  }

  /** Resolves once no delete of this chunk is in progress (a new copy must not be renamed under one). */
  async removed(chid: Chid): Promise<void> {
    await this.removing.get(chid)?.catch(() => {});
  }

  /** rename into place, then fsync the directory so the name itself survives a crash. */
  async placeFile(tmpPath: string, finalPath: string): Promise<void> {
    const dir = dirname(finalPath);
    if (!this.fanDirs.has(dir)) {
      // A fan-out directory made just now must be recorded in its parent too.
      if ((await mkdir(dir, { recursive: true })) !== undefined) await fsyncDir(dirname(dir));
      this.fanDirs.add(dir);
    }
    await rename(tmpPath, finalPath);
    await fsyncDir(dir);
  }

  recordFsync(ms: number): void {
    this.fsyncMsTotal += ms;
    this.fsyncCount++;
    metrics.fsync.observe(ms / 1000);
  }

  /**
   * Read a stored item into frames of `kind` for `txn`. A chunk frame's payload is read from
   * disk straight behind its header, so nothing is copied before the socket. Serving does not
   * verify (`verify` false): the group hashes what it receives and reports a bad copy
   * (bad-copy), so a second hash here would only double the CPU per byte served. With `verify`,
   * a copy that fails the check is quarantined (never served, never bid as "have") and reported
   * as missing (null). A missing item is null either way.
   */
  async readFrames(ref: StoredRef, kind: number, txn: number, item: number, verify = false): Promise<FramedRead | null> {
    if (ref.kind === "chunk" && this.removing.has(ref.chid)) return null;
    const blocks: Buffer[] = [];
    const release = () => {
      for (const b of blocks.splice(0)) this.io.pool.release(b);
    };
    const hash = verify ? createHash("sha256") : null;
    const frames: Uint8Array[] = [];
    // Fills frame after frame: `fill(block, at, len, offset)` puts `len` bytes of the item from
    // `offset` at block[at..] and returns how many it put.
    const build = async (size: number, fill: (block: Buffer, at: number, len: number, offset: number) => Promise<number>): Promise<void> => {
      for (let offset = 0; offset < size || frames.length === 0; offset += FRAME_PAYLOAD_MAX) {
        const len = Math.min(FRAME_PAYLOAD_MAX, size - offset);
        const block = await this.io.pool.acquire();
        blocks.push(block);
        const got = await fill(block, ALIGN, len, offset);
        if (got !== len) throw new Error(`${ref.kind} ${ref.chid} changed while being read: ${got} of ${len} bytes at ${offset}`);
        const payload = block.subarray(ALIGN, ALIGN + len);
        hash?.update(payload);
        const frame = block.subarray(ALIGN - FRAME_HEADER, ALIGN + len);
        writeFrameHeader(frame, { kind, last: offset + len >= size, item, txn, offset, total: size });
        frames.push(frame);
      }
    };
    let size: number;
    try {
      if (ref.kind === "vm") {
        const bytes = this.vms.read(ref.nhid, ref.uvid, ref.chid);
        if (!bytes) return null;
        size = bytes.length;
        await build(size, async (block, at, len, offset) => {
          block.set(bytes.subarray(offset, offset + len), at);
          return len;
        });
      } else {
        let fh: FileHandle;
        try {
          fh = await this.io.openForRead(this.chunkPath(ref.chid));
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
          throw e;
        }
        try {
          size = (await fh.stat()).size;
          await build(size, (block, at, len, offset) => this.io.readInto(fh, block, at, len, offset));
        } finally {
          await fh.close().catch(() => {});
        }
      }
    } catch (e) {
      release();
      throw e;
    }
    const actual = hash?.digest("hex") ?? ref.chid;
    if (actual !== ref.chid) {
      release();
      await this.quarantine(ref, `stored bytes hash to ${actual}`);
      return null;
    }
    return { size, frames, release };
  }

  /**
   * A page of the items held for one group, in key order after `after` (chunks first, as
   * "c:<chid>", then manifests, as "v:<nhid>/<uvid>/<chid>"): what a group asks its members for
   * when it restores replica counts. Each page walks the chunk directories again; a group's
   * re-replication is rare, and pages are large. With `since`: only chunk files written since
   * then and manifests stamped since then (a group recovering what it knew only in memory).
   */
  async inventory(group: number, groupCount: number, after: string | null, limit: number, since: number | null = null): Promise<{ refs: StoredRef[]; next: string | null }> {
    const refs: StoredRef[] = [];
    if (after === null || after.startsWith("c:")) {
      const from = after?.slice(2) ?? "";
      const root = join(this.dir, "chunks");
      for (const fan of (await readdir(root)).sort()) {
        if (fan < from.slice(0, 2)) continue;
        for (const name of (await readdir(join(root, fan))).sort()) {
          if (name <= from || groupOf(name as Chid, groupCount) !== group) continue;
          if (since !== null && ((await stat(join(root, fan, name)).catch(() => null))?.mtimeMs ?? 0) < since) continue;
          refs.push({ kind: "chunk", chid: name as Chid });
          if (refs.length === limit) return { refs, next: storedRefKey(refs[refs.length - 1]!) };
        }
      }
    }
    if (since !== null) {
      // Manifests stamped since then, one page (the window of a crash is short).
      for (const v of this.vms.stampedSince(since, limit)) if (groupOf(v.nhid, groupCount) === group) refs.push({ kind: "vm", ...v });
      return { refs, next: null };
    }
    let cursor: { nhid: Nhid; uvid: Uvid; chid: Chid } | null = null;
    if (after?.startsWith("v:")) {
      const [nhid, uvid, chid] = after.slice(2).split("/") as [Nhid, Uvid, Chid];
      cursor = { nhid, uvid, chid };
    }
    for (;;) {
      const page = this.vms.page(cursor, 1024);
      for (const v of page) {
        if (groupOf(v.nhid, groupCount) !== group) continue;
        refs.push({ kind: "vm", ...v });
        if (refs.length === limit) return { refs, next: storedRefKey(refs[refs.length - 1]!) };
      }
      if (page.length < 1024) return { refs, next: null };
      cursor = page[page.length - 1]!;
    }
  }

  /**
   * The stored bytes, verified (a copy; for checks and tools, not the serving path). `by` says
   * who asked, for the count of copies found damaged (metrics).
   */
  async readVerified(ref: StoredRef, by: "scrub" | "read" | "check" | "start" = "scrub"): Promise<Uint8Array | null> {
    const had = this.has(ref);
    const r = await this.readFrames(ref, 0, 0, 0, true);
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

  private async quarantine(ref: StoredRef, reason: string): Promise<void> {
    if (ref.kind === "vm") {
      this.vms.quarantine(ref.nhid, ref.uvid, ref.chid, reason);
      log("error", "corrupt manifest quarantined", { nhid: ref.nhid, uvid: ref.uvid, chid: ref.chid, reason });
      return;
    }
    const path = this.chunkPath(ref.chid);
    const qdir = join(this.dir, "quarantine");
    await mkdir(qdir, { recursive: true });
    const dest = join(qdir, `${Date.now()}-${ref.chid}`);
    const s = await stat(path).catch(() => null);
    if (!s) return;
    await rename(path, dest).catch(() => rm(path, { force: true }));
    this.stats.chunks--;
    this.stats.bytes -= s.size;
    log("error", "corrupt copy quarantined", { path, reason, moved_to: dest });
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
