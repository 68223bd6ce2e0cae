// `node-target status`: what a data directory is and whether a target is serving it. Read from
// the directory itself (identity, the run journal) and, when a target is running with
// --metrics-listen, from its live metrics; so it works on a stopped target too.

import { statfs } from "node:fs/promises";
import type { TargetIdentity } from "./config.ts";
import { readJournal, runningPid } from "./run-journal.ts";

export interface DataDirStatus {
  id: string;
  location: string;
  capacity: number;
  state: "running" | "stopped" | "crashed" | "never run";
  pid: number | null;
  lastStart: string | null;
  /** Chunks the journal counted (exact after a clean stop; at the last checkpoint while running). */
  chunks: number | null;
  diskFree: number;
  /** From the running target's metrics, when it serves them. */
  live: { storedBytes: number; chunks: number; freeBytes: number; groupLinks: number; queueBytes: number } | null;
}

function sample(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : NaN;
}

export async function dataDirStatus(dataDir: string, identity: TargetIdentity): Promise<DataDirStatus> {
  const journal = await readJournal(dataDir);
  const pid = runningPid(journal);
  const fs = await statfs(dataDir);
  let live: DataDirStatus["live"] = null;
  if (pid !== null && journal?.metrics) {
    const text = await fetch(journal.metrics, { signal: AbortSignal.timeout(3000) }).then((r) => r.text(), () => null);
    if (text) {
      live = {
        storedBytes: sample(text, "edgestore_target_stored_bytes"),
        chunks: sample(text, "edgestore_target_chunks"),
        freeBytes: sample(text, "edgestore_target_free_bytes"),
        groupLinks: sample(text, "edgestore_target_group_links"),
        queueBytes: sample(text, "edgestore_target_queue_bytes"),
      };
    }
  }
  return {
    id: identity.id,
    location: identity.location,
    capacity: identity.capacity,
    state: journal === null ? "never run" : pid !== null ? "running" : journal.clean ? "stopped" : "crashed",
    pid,
    lastStart: journal?.startedAt ? new Date(journal.startedAt).toISOString() : null,
    chunks: journal?.chunks ?? null,
    diskFree: fs.bavail * fs.bsize,
    live,
  };
}
