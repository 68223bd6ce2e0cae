// Pack compaction: deleted chunks leave dead records in their packs; once a pack's dead share
// passes a threshold, its live records are copied (re-hashed on the way: a compaction is also a
// scrub of what it moves) to the active pack through the ordinary batched append, each row moved
// only if it still names the old place, and the old file is deleted. Paced at a byte rate, in
// the background, so client writes keep the disk; a pack with nothing live goes at once.

import { createHash } from "node:crypto";
import { BLOCK, ALIGN } from "../block-io.ts";
import { log } from "../log.ts";
import type { CommitQueue } from "../index-db.ts";
import type { PackFiles } from "./pack-files.ts";
import type { ChunkRow, PackIndex } from "./pack-index.ts";

export interface CompactionOptions {
  /** A pack whose dead bytes are at least this share of it is compacted. */
  deadShare: number;
  /** Bytes copied per second, at most. */
  rate: number;
  /** How often packs are looked at. */
  intervalMs: number;
}

export const COMPACTION_DEFAULTS: CompactionOptions = { deadShare: 0.5, rate: 8 * 1024 * 1024, intervalMs: 30_000 };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

/** What the store lends compaction: reading a record into a block, and quarantining a bad one. */
export interface CompactionHost {
  packs: PackFiles;
  index: PackIndex;
  commits: CommitQueue;
  pool: { acquire(): Promise<Buffer>; release(b: Buffer): void };
  /** A record that failed its hash on the way: out of the index, and reported as damaged. */
  damaged(row: ChunkRow, bytes: Uint8Array): Promise<void>;
}

export class Compactor {
  private readonly host: CompactionHost;
  private readonly opts: CompactionOptions;
  private stopped = false;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  /** Packs compacted and bytes moved, for metrics and tests. */
  compacted = 0;
  moved = 0;

  constructor(host: CompactionHost, opts: Partial<CompactionOptions> = {}) {
    this.host = host;
    this.opts = { ...COMPACTION_DEFAULTS, ...opts };
  }

  start(): void {
    this.timer = setInterval(() => void this.runOnce(), this.opts.intervalMs);
    this.timer.unref();
  }

  /** One look at every pack (what the timer does); resolves once the packs due are compacted. */
  runOnce(): Promise<void> {
    this.running ??= this.pass()
      .catch((e) => log("error", "compaction failed", { error: String(e) }))
      .finally(() => (this.running = null));
    return this.running;
  }

  stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    return this.running ?? Promise.resolve();
  }

  private async pass(): Promise<void> {
    const active = this.host.packs.activeId;
    const due = this.host.index
      .packs()
      .filter((p) => p.id !== active && p.size > 0 && p.size - p.live >= this.opts.deadShare * p.size)
      .sort((a, b) => b.size - b.live - (a.size - a.live));
    for (const p of due) {
      if (this.stopped) return;
      await this.compact(p.id);
    }
  }

  private async compact(pack: number): Promise<void> {
    const t0 = Date.now();
    let bytes = 0;
    let after = -1;
    for (;;) {
      const rows = this.host.index.inPack(pack, after, 256);
      if (rows.length === 0) break;
      for (const row of rows) {
        if (this.stopped) return;
        await this.move(row);
        bytes += row.length;
        // Never faster than the rate: wait until the bytes moved so far are due.
        const due = t0 + (bytes / this.opts.rate) * 1000;
        if (due > Date.now()) await sleep(due - Date.now());
      }
      after = rows[rows.length - 1]!.pos;
    }
    await this.host.commits.run(() => this.host.index.dropPack(pack));
    this.host.packs.retire(pack);
    this.compacted++;
    this.moved += bytes;
    log("info", "pack compacted", { pack, moved_bytes: bytes, ms: Date.now() - t0 });
  }

  /** Copy one live record to the active pack, checking its hash on the way. */
  private async move(row: ChunkRow): Promise<void> {
    const blocks: Buffer[] = [];
    try {
      const parts: Uint8Array[] = [];
      const hash = createHash("sha256");
      const span = BLOCK - 2 * ALIGN;
      for (let off = 0; off < row.length || parts.length === 0; off += span) {
        const len = Math.min(span, row.length - off);
        const block = await this.host.pool.acquire();
        blocks.push(block);
        const at = await this.host.packs.readPayload(row, off, len, block, ALIGN);
        const part = block.subarray(at, at + len);
        hash.update(part);
        parts.push(part);
        if (len === 0) break;
      }
      if (hash.digest("hex") !== row.chid) {
        await this.host.damaged(row, Buffer.concat(parts));
        return;
      }
      await this.host.packs.append({ chid: row.chid, parts, length: row.length, from: row });
    } finally {
      for (const b of blocks) this.host.pool.release(b);
    }
  }
}
