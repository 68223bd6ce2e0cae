// Pack compaction: deleted chunks leave dead records in their packs; once a pack's dead share
// passes a threshold, its live records are copied (re-hashed on the way: a compaction is also a
// scrub of what it moves) to the active pack through the ordinary batched append, a run of them
// at a time so that they share batches, each row moved only if it still names the old place,
// and the old file is deleted. Paced at a byte rate, in the background, so client writes keep
// the disk; a pack with nothing live goes at once.

import type { Chid } from "../../common/ids.ts";
import { log } from "../log.ts";
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

const COMPACTION_DEFAULTS: CompactionOptions = { deadShare: 0.5, rate: 8 * 1024 * 1024, intervalMs: 30_000 };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());
/** Payload bytes read ahead and handed to the packs at once: enough to fill batches, little memory. */
const MOVE_RUN_BYTES = 4 * 1024 * 1024;

/** What the store lends compaction. */
export interface CompactionHost {
  packs: PackFiles;
  index: PackIndex;
  /**
   * A chunk's payload, verified, in pool blocks to release once appended; null if it is not
   * held (deleted meanwhile, or it failed its hash and was quarantined).
   */
  read(chid: Chid): Promise<{ parts: Uint8Array[]; release(): void } | null>;
}

export class Compactor {
  private readonly host: CompactionHost;
  private readonly opts: CompactionOptions;
  private stopped = false;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

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
      .filter((p) => p.id !== active && p.size > 0 && p.dead >= this.opts.deadShare * p.size)
      .sort((a, b) => b.dead - a.dead);
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
      for (let i = 0; i < rows.length; ) {
        if (this.stopped) return;
        const run: ChunkRow[] = [];
        let runBytes = 0;
        while (i < rows.length && (run.length === 0 || runBytes + rows[i]!.length <= MOVE_RUN_BYTES)) {
          runBytes += rows[i]!.length;
          run.push(rows[i++]!);
        }
        await Promise.all(run.map((row) => this.move(row)));
        bytes += runBytes;
        // Never faster than the rate: wait until the bytes moved so far are due.
        const due = t0 + (bytes / this.opts.rate) * 1000;
        if (due > Date.now()) await sleep(due - Date.now());
      }
      after = rows[rows.length - 1]!.pos;
    }
    await this.host.packs.retire(pack);
    log("info", "pack compacted", { pack, moved_bytes: bytes, ms: Date.now() - t0 });
  }

  /** Copy one live record to the active pack, checking its hash on the way. */
  private async move(row: ChunkRow): Promise<void> {
    const read = await this.host.read(row.chid);
    if (!read) return;
    try {
      await this.host.packs.append({ chid: row.chid, parts: read.parts, length: row.length, from: row });
    } finally {
      read.release();
    }
  }
}
