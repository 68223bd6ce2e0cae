// The chunk store on one data directory. A chunk file is named by its CHID and only ever
// appears under that name after its bytes were hashed and matched, written and fsynced: a
// partial or corrupt write stays in tmp/ and is swept at the next start. Version manifests
// are chunks too, filed under their name (NHID) and version (UVID) so that "newest version
// of this name" is one directory listing.

import { createHash, type Hash } from "node:crypto";
import { existsSync, statfsSync } from "node:fs";
import { mkdir, open, readdir, rename, rm, stat, type FileHandle } from "node:fs/promises";
import { dirname, join, relative, sep } from "node:path";
import type { Chid, Nhid, Uvid } from "../common/ids.ts";
import { FRAME_HEADER, FRAME_PAYLOAD_MAX, writeFrameHeader, type StoredRef } from "../common/protocol.ts";
import { ALIGN, BLOCK, BlockIo } from "./block-io.ts";
import { log } from "./log.ts";

export interface StoreStats {
  chunks: number;
  bytes: number;
}

export interface VmEntry {
  uvid: Uvid;
  chid: Chid;
  size: number;
}

/**
 * A write in progress: bytes are hashed as they arrive and staged in one aligned pool block,
 * which goes to the tmp file whenever it fills (see block-io.ts).
 */
export class PendingWrite {
  private received = 0;
  private flushed = 0;
  private stage: Buffer | null = null;
  private staged = 0;
  private hash: Hash = createHash("sha256");
  private fh: FileHandle | null = null;
  private readonly store: ChunkStore;
  readonly tmpPath: string;
  readonly chid: Chid;
  readonly size: number;
  readonly finalPath: string;
  /** The id whose group this write belongs to: the CHID, or the NHID for a version manifest. */
  readonly prefixSource: string;

  constructor(store: ChunkStore, chid: Chid, size: number, finalPath: string, tmpPath: string, prefixSource: string) {
    this.store = store;
    this.chid = chid;
    this.size = size;
    this.finalPath = finalPath;
    this.tmpPath = tmpPath;
    this.prefixSource = prefixSource;
  }

  async write(offset: number, bytes: Uint8Array): Promise<void> {
    if (offset !== this.received) throw new Error(`out-of-order frame: expected offset ${this.received}, got ${offset}`);
    if (this.received + bytes.length > this.size) throw new Error(`chunk larger than announced ${this.size} bytes`);
    const io = this.store.io;
    this.fh ??= await io.openForWrite(this.tmpPath);
    this.stage ??= await io.pool.acquire();
    this.hash.update(bytes);
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

  /** Verify, fsync, and move into place. Throws (and removes the tmp file) on any mismatch. */
  async commit(): Promise<void> {
    try {
      if (this.received !== this.size) throw new Error(`short chunk: got ${this.received} of ${this.size} bytes`);
      const actual = this.hash.digest("hex");
      if (actual !== this.chid) throw new Error(`hash mismatch: bytes hash to ${actual}`);
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
      const t0 = performance.now();
      await this.fh.sync();
      await this.fh.close();
      this.fh = null;
      await this.store.placeFile(this.tmpPath, this.finalPath);
      this.store.recordFsync(performance.now() - t0);
      this.store.stats.chunks++;
      this.store.stats.bytes += this.size;
      this.store.notePrefix(this.prefixSource);
    } catch (e) {
      await this.abort();
      throw e;
    }
  }

  async abort(): Promise<void> {
    this.releaseStage();
    if (this.fh) await this.fh.close().catch(() => {});
    this.fh = null;
    await rm(this.tmpPath, { force: true });
  }

  private releaseStage(): void {
    if (this.stage) this.store.io.pool.release(this.stage);
    this.stage = null;
  }
}

/** A stored chunk read and verified, laid out as ready-to-send frames in pool blocks. */
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

  #io: BlockIo | null = null;
  private readonly directIo: boolean;

  /** `directIo: false` forces buffered I/O (for filesystems whose O_DIRECT misbehaves). */
  constructor(dir: string, opts: { directIo?: boolean } = {}) {
    this.dir = dir;
    this.directIo = opts.directIo ?? true;
  }

  get io(): BlockIo {
    if (!this.#io) throw new Error("chunk store used before open()");
    return this.#io;
  }

  /** Sweep unfinished writes, set up direct I/O, and count what is stored. */
  async open(): Promise<void> {
    await rm(join(this.dir, "tmp"), { recursive: true, force: true });
    await mkdir(join(this.dir, "tmp"), { recursive: true });
    this.#io = await BlockIo.open(join(this.dir, "tmp"), this.directIo);
    await mkdir(join(this.dir, "chunks"), { recursive: true });
    await mkdir(join(this.dir, "vms"), { recursive: true });
    for (const fan of await readdir(join(this.dir, "chunks"))) {
      for (const name of await readdir(join(this.dir, "chunks", fan))) {
        const s = await stat(join(this.dir, "chunks", fan, name));
        this.stats.chunks++;
        this.stats.bytes += s.size;
        this.notePrefix(name);
      }
    }
    for (const fan of await readdir(join(this.dir, "vms"))) {
      for (const nhid of await readdir(join(this.dir, "vms", fan))) this.notePrefix(nhid);
    }
  }

  notePrefix(id: string): void {
    this.prefixes.add(parseInt(id.slice(0, 8), 16));
  }

  heldGroups(groupCount: number): number[] {
    const out = new Set<number>();
    for (const p of this.prefixes) out.add(p % groupCount);
    return [...out].sort((a, b) => a - b);
  }

  pathOf(ref: StoredRef): string {
    return ref.kind === "chunk" ? this.chunkPath(ref.chid) : this.vmPath(ref.nhid, ref.uvid, ref.chid);
  }

  chunkPath(chid: Chid): string {
    return join(this.dir, "chunks", chid.slice(0, 2), chid);
  }

  vmDir(nhid: Nhid): string {
    return join(this.dir, "vms", nhid.slice(0, 2), nhid);
  }

  vmPath(nhid: Nhid, uvid: Uvid, chid: Chid): string {
    return join(this.vmDir(nhid), `${uvid}-${chid}`);
  }

  async hasChunk(chid: Chid): Promise<boolean> {
    try {
      await stat(this.chunkPath(chid));
      return true;
    } catch {
      return false;
    }
  }

  hasChunkSync(chid: Chid): boolean {
    return existsSync(this.chunkPath(chid));
  }

  hasVmSync(nhid: Nhid, uvid: Uvid, chid: Chid): boolean {
    return existsSync(this.vmPath(nhid, uvid, chid));
  }

  beginWrite(chid: Chid, size: number, finalPath: string, prefixSource: string): PendingWrite {
    const tmp = join(this.dir, "tmp", `${process.pid}-${++this.tmpSeq}-${chid.slice(0, 16)}`);
    return new PendingWrite(this, chid, size, finalPath, tmp, prefixSource);
  }

  /**
   * rename into place, then fsync the directory so the name itself survives a crash. A directory
   * made just now must also be recorded in its parent, so every new level is fsynced from the
   * top down.
   */
  async placeFile(tmpPath: string, finalPath: string): Promise<void> {
    const dir = dirname(finalPath);
    if (!this.fanDirs.has(dir)) {
      const firstCreated = await mkdir(dir, { recursive: true });
      if (firstCreated !== undefined) {
        for (let d = dirname(firstCreated); ; d = join(d, relative(d, dir).split(sep)[0]!)) {
          await fsyncDir(d);
          if (d === dirname(dir)) break;
        }
      }
      // Chunk fan-out directories are few (256); per-name manifest directories are not cached.
      if (dir.startsWith(join(this.dir, "chunks"))) this.fanDirs.add(dir);
    }
    await rename(tmpPath, finalPath);
    await fsyncDir(dir);
  }

  recordFsync(ms: number): void {
    this.fsyncMsTotal += ms;
    this.fsyncCount++;
  }

  /**
   * Read a stored item into frames of `kind` for `txn`. Each frame's payload is read from disk
   * straight behind its header, so nothing is copied before the socket. Serving does not verify
   * (`verify` false): the group hashes what it receives and reports a bad copy (bad-copy), so a
   * second hash here would only double the CPU per byte served. With `verify`, a copy that fails
   * the check is moved to quarantine/ (never served, never bid as "have") and reported as
   * missing (null). Missing files are null either way.
   */
  async readFrames(path: string, chid: Chid, kind: number, txn: number, item: number, verify = false): Promise<FramedRead | null> {
    let fh: FileHandle;
    try {
      fh = await this.io.openForRead(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw e;
    }
    const blocks: Buffer[] = [];
    const release = () => {
      for (const b of blocks.splice(0)) this.io.pool.release(b);
    };
    try {
      const size = (await fh.stat()).size;
      const hash = verify ? createHash("sha256") : null;
      const frames: Uint8Array[] = [];
      for (let offset = 0; offset < size || frames.length === 0; offset += FRAME_PAYLOAD_MAX) {
        const len = Math.min(FRAME_PAYLOAD_MAX, size - offset);
        const block = await this.io.pool.acquire();
        blocks.push(block);
        const got = await this.io.readInto(fh, block, ALIGN, len, offset);
        if (got !== len) throw new Error(`${path} changed while being read: ${got} of ${len} bytes at ${offset}`);
        const payload = block.subarray(ALIGN, ALIGN + len);
        hash?.update(payload);
        const frame = block.subarray(ALIGN - FRAME_HEADER, ALIGN + len);
        writeFrameHeader(frame, { kind, last: offset + len >= size, item, txn, offset, total: size });
        frames.push(frame);
      }
      const actual = hash?.digest("hex") ?? chid;
      if (actual !== chid) {
        release();
        await this.quarantine(path, `stored bytes hash to ${actual}`);
        return null;
      }
      return { size, frames, release };
    } catch (e) {
      release();
      throw e;
    } finally {
      await fh.close().catch(() => {});
    }
  }

  /** The stored bytes, verified (a copy; for checks and tools, not the serving path). */
  async readVerified(path: string, chid: Chid): Promise<Uint8Array | null> {
    const r = await this.readFrames(path, chid, 0, 0, 0, true);
    if (!r) return null;
    const out = new Uint8Array(r.size);
    let at = 0;
    for (const f of r.frames) {
      out.set(f.subarray(FRAME_HEADER), at);
      at += f.length - FRAME_HEADER;
    }
    r.release();
    return out;
  }

  private async quarantine(path: string, reason: string): Promise<void> {
    const qdir = join(this.dir, "quarantine");
    await mkdir(qdir, { recursive: true });
    const dest = join(qdir, `${Date.now()}-${path.split("/").pop()}`);
    await rename(path, dest).catch(() => rm(path, { force: true }));
    log("error", "corrupt copy quarantined", { path, reason, moved_to: dest });
  }

  /** The newest version manifest held for a name, or the exact one asked for. */
  async findVm(nhid: Nhid, uvid: Uvid | null): Promise<VmEntry | null> {
    let names: string[];
    try {
      names = await readdir(this.vmDir(nhid));
    } catch {
      return null;
    }
    let best: VmEntry | null = null;
    for (const n of names) {
      const [u, c] = n.split("-") as [Uvid, Chid];
      if (uvid !== null && u !== uvid) continue;
      if (best === null || u > best.uvid) best = { uvid: u, chid: c, size: 0 };
    }
    if (best) best.size = (await stat(this.vmPath(nhid, best.uvid, best.chid))).size;
    return best;
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
