// Pack I/O that bypasses the page cache where the filesystem allows (O_DIRECT), through a
// pool of reusable, block-aligned 1 MiB buffers.
//
// Why: a chunk store gains nothing from caching what it just wrote (reads of a chunk are rare
// and spread over replicas), and on the dev VM buffered writes of new files cost 0.3–3 ms of
// kernel CPU per MB (page-cache allocation and copy, varying with memory reclaim) against
// ~0.15 ms/MB with O_DIRECT plus fsync (docs/performance.md). Reused buffers also spare every
// read and write a fresh 1 MiB allocation.
//
// O_DIRECT needs buffer addresses, file offsets and lengths aligned to the device's logical
// block. JavaScript cannot see an address, so each slab's alignment is found once by probing
// with O_DIRECT writes to a scratch file. Filesystems without O_DIRECT (tmpfs, some network
// filesystems) get the same code with buffered I/O.

import { constants } from "node:fs";
import { open, rm, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { FRAME_PAYLOAD_MAX } from "../common/protocol.ts";

/** Alignment used for every direct transfer: covers 512-byte and 4 KiB logical sectors. */
export const ALIGN = 4096;
/** One pool block. Reads lay a frame out in it: header just before ALIGN, payload from ALIGN. */
export const BLOCK = 1024 * 1024;
const BLOCKS_PER_SLAB = 16;
if (ALIGN + FRAME_PAYLOAD_MAX > BLOCK) throw new Error("a frame's payload must fit a block behind one aligned header slot");

export function roundUp(n: number, to = ALIGN): number {
  return Math.ceil(n / to) * to;
}

export class BlockPool {
  private readonly free: Buffer[] = [];
  /** Null when I/O is buffered: then any address will do. */
  private readonly probePath: string | null;
  /** Blocks handed out and not yet returned; for tests and metrics. */
  outstanding = 0;
  allocated = 0;

  constructor(probePath: string | null) {
    this.probePath = probePath;
  }

  async acquire(): Promise<Buffer> {
    if (this.free.length === 0) await this.grow();
    this.outstanding++;
    return this.free.pop()!;
  }

  release(b: Buffer): void {
    this.outstanding--;
    this.free.push(b);
  }

  private async grow(): Promise<void> {
    const raw = Buffer.allocUnsafeSlow(BLOCKS_PER_SLAB * BLOCK + ALIGN);
    const offset = this.probePath ? await alignedOffset(this.probePath, raw) : 0;
    for (let i = 0; i < BLOCKS_PER_SLAB; i++) this.free.push(raw.subarray(offset + i * BLOCK, offset + (i + 1) * BLOCK));
    this.allocated += BLOCKS_PER_SLAB;
  }
}

function openDirect(path: string): Promise<FileHandle> {
  return open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_DIRECT, 0o600);
}

/** The first offset in `raw` at which an O_DIRECT write is accepted: the kernel checks alignment. */
async function alignedOffset(probePath: string, raw: Buffer): Promise<number> {
  const fh = await openDirect(probePath);
  try {
    for (let off = 0; off < ALIGN; off += 16) {
      try {
        await fh.write(raw, off, ALIGN, 0);
        return off;
      } catch {
        // misaligned: EINVAL
      }
    }
  } finally {
    await fh.close();
    await rm(probePath, { force: true });
  }
  throw new Error(`no ${ALIGN}-byte aligned offset found in a fresh buffer for direct I/O`);
}

export class BlockIo {
  readonly direct: boolean;
  readonly pool: BlockPool;

  private constructor(direct: boolean, pool: BlockPool) {
    this.direct = direct;
    this.pool = pool;
  }

  /**
   * Direct I/O if asked for and `scratchDir`'s filesystem takes it (an aligned write is tried);
   * buffered otherwise. Slabs are probed in `scratchDir`.
   */
  static async open(scratchDir: string, wantDirect = true): Promise<BlockIo> {
    if (wantDirect) {
      const probePath = join(scratchDir, `.align-probe-${process.pid}`);
      const pool = new BlockPool(probePath);
      try {
        pool.release(await pool.acquire());
        return new BlockIo(true, pool);
      } catch {
        await rm(probePath, { force: true });
      }
    }
    return new BlockIo(false, new BlockPool(null));
  }

  private flags(base: number): number {
    return this.direct ? base | constants.O_DIRECT : base;
  }

  async openForRead(path: string): Promise<BlockReader> {
    return new BlockReader(await open(path, this.flags(constants.O_RDONLY)), this.direct);
  }

  /**
   * Write aligned blocks (lengths multiples of ALIGN) back to back from `position`, in as few
   * vectored writes as the kernel takes.
   */
  async writeAll(fh: FileHandle, parts: Buffer[], position: number): Promise<void> {
    let at = position;
    let rest = parts;
    while (rest.length > 0) {
      const { bytesWritten } = await fh.writev(rest, at);
      if (bytesWritten === 0) throw new Error(`wrote 0 bytes at ${at}`);
      at += bytesWritten;
      // Drop what was written; a part written in part goes on from where it stopped.
      let skip = bytesWritten;
      const left: Buffer[] = [];
      for (const p of rest) {
        if (skip >= p.length) {
          skip -= p.length;
          continue;
        }
        left.push(skip > 0 ? p.subarray(skip) : p);
        skip = 0;
      }
      rest = left;
    }
  }
}

/**
 * A file opened for reading through pool blocks, kept open and shared by every read of it. The
 * handle and its I/O mode live here, not in each call: a read is made per frame served, and
 * its arguments then stay positional, with no object made for them.
 */
export class BlockReader {
  readonly fh: FileHandle;
  private readonly direct: boolean;

  constructor(fh: FileHandle, direct: boolean) {
    this.fh = fh;
    this.direct = direct;
  }

  /** Read up to `length` bytes at `position` into `block` at `at` (both aligned); returns bytes read. */
  async readInto(block: Buffer, at: number, length: number, position: number): Promise<number> {
    const n = this.direct ? roundUp(length) : length;
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fh.read(block, at + done, n - done, position + done);
      if (bytesRead === 0) break;
      done += bytesRead;
      // O_DIRECT continues only from aligned positions; a short read there means end of file.
      if (this.direct && done % ALIGN !== 0) break;
    }
    return Math.min(done, length);
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}
