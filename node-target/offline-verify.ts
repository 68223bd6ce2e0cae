// `node-target verify`: re-hash every chunk and version manifest of a stopped target's data
// directory, with progress on stderr. What fails is quarantined (never served again), and the
// journal is marked so that the next run reports the loss to its groups, which restore R from
// other copies: the same path as a damaged directory found at start (run-journal.ts). A running
// target is refused: it re-verifies in the background already (the scrub).

import type { StoredRef } from "../common/protocol.ts";
import { markLost, readJournal, runningPid } from "./run-journal.ts";
import { ChunkStore } from "./store.ts";

export interface VerifyReport {
  items: number;
  bytes: number;
  damaged: { kind: string; chid: string }[];
  ms: number;
}

const PROGRESS_MS = 1000;

export async function verifyDataDir(dataDir: string, progress: (line: string, done: boolean) => void): Promise<VerifyReport> {
  const pid = runningPid(await readJournal(dataDir));
  if (pid !== null) throw new Error(`a target (pid ${pid}) is serving ${dataDir}: stop it first (a running target scrubs itself: --scrub-rate)`);
  const t0 = Date.now();
  const store = new ChunkStore(dataDir, { directIo: false });
  await store.open();
  try {
    // Listed first, so that progress can say "of how many".
    const refs: StoredRef[] = [];
    for await (const ref of store.storedRefs()) refs.push(ref);
    const report: VerifyReport = { items: 0, bytes: 0, damaged: [], ms: 0 };
    let shown = 0;
    const line = () => `verified ${report.items} of ${refs.length} items (${(report.bytes / 2 ** 20).toFixed(1)} MiB), ${report.damaged.length} damaged`;
    for (const ref of refs) {
      // A copy that cannot be read or does not hash to its name is quarantined by readVerified and counted here as damaged.
      const bytes = await store.readVerified(ref, "check").catch(() => null);
      report.items++;
      if (bytes) report.bytes += bytes.length;
      else report.damaged.push({ kind: ref.kind, chid: ref.chid });
      if (Date.now() - shown >= PROGRESS_MS) {
        shown = Date.now();
        progress(line(), false);
      }
    }
    progress(line(), true);
    if (report.damaged.length > 0) await markLost(dataDir);
    report.ms = Date.now() - t0;
    return report;
  } finally {
    await store.close();
  }
}
