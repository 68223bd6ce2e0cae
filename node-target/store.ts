// The chunk store on one data directory. A chunk file is named by its CHID and only ever
// appears under that name after its bytes were hashed and matched, written and fsynced: a
// partial or corrupt write stays in tmp/ and is swept at the next start. Version manifests
// are chunks too, filed under their name (NHID) and version (UVID) so that "newest version
// of this name" is one directory listing.

import { createHash, type Hash } from "node:crypto";
import { existsSync, statfsSync } from "node:fs";
import { mkdir, open, readdir, readFile, rename, rm, stat, type FileHandle } from "node:fs/promises";
import { dirname, join, relative, sep } from "node:path";
import type { Chid, Nhid, Uvid } from "../common/ids.ts";
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

/** A write in progress: bytes go to a tmp file as they arrive and are hashed on the way. */
export class PendingWrite {
  private offset = 0;
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
    if (offset !== this.offset) throw new Error(`out-of-order frame: expected offset ${this.offset}, got ${offset}`);
    if (this.offset + bytes.length > this.size) throw new Error(`chunk larger than announced ${this.size} bytes`);
    this.fh ??= await open(this.tmpPath, "w");
    this.hash.update(bytes);
    let done = 0;
    while (done < bytes.length) {
      const { bytesWritten } = await this.fh.write(bytes, done, bytes.length - done, this.offset + done);
      done += bytesWritten;
    }
    this.offset += bytes.length;
  }

  /** Verify, fsync, and move into place. Throws (and removes the tmp file) on any mismatch. */
  async commit(): Promise<void> {
    try {
      if (this.offset !== this.size) throw new Error(`short chunk: got ${this.offset} of ${this.size} bytes`);
      const actual = this.hash.digest("hex");
      if (actual !== this.chid) throw new Error(`hash mismatch: bytes hash to ${actual}`);
      this.fh ??= await open(this.tmpPath, "w");
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
    if (this.fh) await this.fh.close().catch(() => {});
    this.fh = null;
    await rm(this.tmpPath, { force: true });
  }
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

  constructor(dir: string) {
    this.dir = dir;
  }

  /** Sweep unfinished writes and count what is stored. */
  async open(): Promise<void> {
    await rm(join(this.dir, "tmp"), { recursive: true, force: true });
    await mkdir(join(this.dir, "tmp"), { recursive: true });
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
   * Read a stored chunk and check it against its name. A copy that fails the check is moved
   * to quarantine/ (never served, never bid as "have") and reported as missing.
   */
  async readVerified(path: string, chid: Chid): Promise<Uint8Array | null> {
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw e;
    }
    const actual = createHash("sha256").update(bytes).digest("hex");
    if (actual !== chid) {
      await this.quarantine(path, `stored bytes hash to ${actual}`);
      return null;
    }
    return bytes;
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
