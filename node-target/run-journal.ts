// Crash safety at start. Chunk writes are safe by construction (bytes hashed, then written to a
// pack and fdatasynced before their index row is committed; a torn pack tail is cut at start:
// packs/pack-files.ts), so what a power cut can still damage is what the disk or filesystem did
// not keep as promised, and a data directory can lose files while the target is down. Neither can be named from the
// inside afterwards, so the target keeps a journal, `run.json`: a run under way and, every
// CHECKPOINT_MS, how many chunks it held then; a clean stop writes the final count.
//
// A start after a run that did not stop cleanly re-hashes what was written since the last
// checkpoint (quarantining what fails) and checks the manifest log's integrity; any start finds
// fewer chunks than the journal knew of is a loss. Either way the target reports it instead of
// serving as if whole: it says `lost` in its hello to every group, and each group counts its
// copies across members and restores R (the same sweep as for a member gone for good).

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { writeFileDurably } from "./durable-file.ts";
import { log } from "./log.ts";
import type { ChunkStore } from "./store.ts";

const FILE = "run.json";
/** How often a running target records its chunk count (and so how far back a crash check re-hashes). */
export const CHECKPOINT_MS = 30_000;
/** Writes finishing around a checkpoint, and clock steps: re-hash this much more. */
const MARGIN_MS = 60_000;

export interface JournalState {
  startedAt: number;
  checkpointAt: number;
  chunks: number;
  clean: boolean;
  /** The running process, and where it serves metrics: what `node-target status` reads. */
  pid?: number;
  metrics?: string | null;
  /** Damage found while stopped (markLost): the next start reports a loss. */
  lost?: boolean;
}

/** The journal as the last run left it (null: never run). */
export async function readJournal(dataDir: string): Promise<JournalState | null> {
  try {
    return JSON.parse(await readFile(join(dataDir, FILE), "utf8")) as JournalState;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    // A journal torn by the crash itself says only that the run did not end cleanly.
    return { startedAt: 0, checkpointAt: 0, chunks: 0, clean: false };
  }
}

/**
 * Record that copies were found damaged while the target was stopped (`node-target verify`
 * quarantined them): the next run reports the loss to its groups as a damaged start would.
 */
export async function markLost(dataDir: string): Promise<void> {
  const j = (await readJournal(dataDir)) ?? { startedAt: 0, checkpointAt: 0, chunks: 0, clean: true };
  await writeDurably(join(dataDir, FILE), { ...j, lost: true });
}

/** Whether the run the journal names is still going (its process alive). */
export function runningPid(j: JournalState | null): number | null {
  if (!j || j.clean || !j.pid) return null;
  try {
    process.kill(j.pid, 0);
    return j.pid;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM" ? j.pid : null;
  }
}

export interface StartReport {
  /** The previous run was not stopped cleanly (a crash, a kill, a power cut). */
  unclean: boolean;
  /** Items re-hashed because they were written since the last checkpoint before the crash. */
  rechecked: number;
  /** Of those, the ones that failed and were quarantined. */
  damaged: number;
  /** Chunks the journal knew of, and chunks found. */
  expected: number | null;
  found: number;
  /** The manifest log failed its integrity check. */
  manifestsDamaged: boolean;
  /** Something was lost that the target cannot name: its groups must recount their copies. */
  lost: boolean;
}

export class RunJournal {
  private readonly path: string;
  private readonly store: ChunkStore;
  private readonly dataDir: string;
  private timer: NodeJS.Timeout | null = null;
  private startedAt = Date.now();
  private metrics: string | null = null;

  constructor(dataDir: string, store: ChunkStore) {
    this.dataDir = dataDir;
    this.path = join(dataDir, FILE);
    this.store = store;
  }

  /** Check the store against the journal (after store.open), then start journaling this run. */
  async begin(metrics: string | null = null): Promise<StartReport> {
    this.metrics = metrics;
    const prev = await readJournal(this.dataDir);
    const report: StartReport = { unclean: prev !== null && !prev.clean, rechecked: 0, damaged: 0, expected: prev?.chunks ?? null, found: 0, manifestsDamaged: false, lost: false };
    if (report.unclean) {
      const since = prev!.checkpointAt - MARGIN_MS;
      await this.recheckSince(since, report);
      report.manifestsDamaged = !this.store.vms.intact();
    }
    // Chunks whose pack was found shorter than its index promised: lost, whatever the journal says.
    report.damaged += this.store.lostAtOpen;
    report.found = this.store.stats.chunks;
    // A clean stop's count is exact; after a crash, deletions since the checkpoint may explain a
    // shortfall, but a recount by the groups is cheap next to a copy silently missing.
    const short = report.expected !== null && report.found < report.expected;
    report.lost = report.damaged > 0 || report.manifestsDamaged || short || prev?.lost === true;
    if (report.unclean || report.lost) {
      log(report.lost ? "error" : "warn", report.lost ? "data directory lost data: groups will recount and restore copies" : "previous run did not stop cleanly; data rechecked", { ...report });
    }
    this.startedAt = Date.now();
    await this.checkpoint();
    this.timer = setInterval(() => void this.checkpoint().catch((e) => log("warn", "journal checkpoint failed", { error: String(e) })), CHECKPOINT_MS);
    this.timer.unref();
    return report;
  }

  /** A clean stop: the count now is exact. */
  async end(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await writeDurably(this.path, { startedAt: this.startedAt, checkpointAt: Date.now(), chunks: this.store.stats.chunks, clean: true });
  }

  private async checkpoint(): Promise<void> {
    await writeDurably(this.path, { startedAt: this.startedAt, checkpointAt: Date.now(), chunks: this.store.stats.chunks, clean: false, pid: process.pid, metrics: this.metrics });
  }

  /** Re-hash chunks written, and manifests stamped, since `since`; failures are quarantined by the store. */
  private async recheckSince(since: number, report: StartReport): Promise<void> {
    // A copy that fails to read or to hash is quarantined by readVerified; here it is only counted.
    for (const chid of this.store.chunksWrittenSince(since)) {
      report.rechecked++;
      if (!(await this.store.readVerified({ kind: "chunk", chid }, "start").catch(() => null))) report.damaged++;
    }
    for (const v of this.store.vms.stampedSince(since, Number.MAX_SAFE_INTEGER)) {
      report.rechecked++;
      // As for chunks: quarantined by readVerified, counted here.
      if (!(await this.store.readVerified({ kind: "vm", ...v }, "start").catch(() => null))) report.damaged++;
    }
  }
}

async function writeDurably(path: string, state: JournalState): Promise<void> {
  await writeFileDurably(path, JSON.stringify(state) + "\n");
}
