// Evening out how many of a group's copies each member holds, after the sweep found nothing
// short: a member that joined holds few (a join moves only what the members lacked), one that
// was there long holds many. An item the fullest member holds and the emptiest does not gets one
// copy more (check() places it on the emptiest), and only once that copy is made does the
// fullest member's copy go (a `reclaim` to it alone, owed in `trims` until it confirms), so the
// item never has fewer copies on members than its users asked for. Paced like every sweep step,
// and bounded per sweep: the next sweep goes on while the spread is still wide.

import { distinctDomains } from "../../common/correlation.ts";
import type { TargetId } from "../../common/ids.ts";
import { storedRefKey, type StoredRef } from "../../common/protocol.ts";
import type { Correlation } from "../../common/correlation.ts";
import type { RefBook } from "./backrefs.ts";
import type { Member } from "./member.ts";
import type { Holding } from "./rereplicate.ts";
import type { ItemVerdict } from "./rpc.ts";

/** Copies moved per sweep at most: the rest waits for the next. */
const MOVES_PER_SWEEP = 512;

/** How far apart the fullest and the emptiest member may be: a few copies, or a tenth of the mean. */
export function balanced(fill: ReadonlyMap<TargetId, number>): boolean {
  const counts = [...fill.values()];
  if (counts.length < 2) return true;
  const mean = counts.reduce((a, n) => a + n, 0) / counts.length;
  return Math.max(...counts) - Math.min(...counts) <= Math.max(8, mean / 10);
}

export interface BalanceContext {
  readonly refs: RefBook;
  readonly correlation: Correlation;
  /** The most copies any user of the item asked for; null: nothing references it. */
  wanted(ref: StoredRef): number | null;
  /** How many failure domains `want` copies can span on these members. */
  domainReach(members: readonly Member[], want: number): number;
  /** check() of a batch at `want` copies, placing new ones on the emptiest members by `fill`. */
  check(refs: StoredRef[], want: number, fill: Map<TargetId, number>): Promise<ItemVerdict[]>;
  /** The item is no longer on this member (its copy was trimmed). */
  notOn(ref: StoredRef, id: TargetId): void;
  /** A client's put or a repair is writing copies of it now: a copy counted there must not be deleted under it. */
  busy(ref: StoredRef): boolean;
  /** Between batches: give way to clients. */
  paced(): Promise<void>;
  readonly batch: number;
}

/**
 * Move copies from the fullest live writer to the emptiest until they are within `balanced`,
 * or MOVES_PER_SWEEP. `holdings`: the sweep's inventories; `fill`: copies per writer (updated).
 * How many copies moved.
 */
export async function balanceCopies(c: BalanceContext, o: { holdings: readonly Holding[]; writers: readonly Member[]; fill: Map<TargetId, number> }): Promise<number> {
  const { fill, writers } = o;
  const byId = new Map(writers.map((w) => [w.id, w]));
  const held = new Map(o.holdings.filter((h) => h.counts && byId.has(h.id)).map((h) => [h.id, new Set(h.refs.map(storedRefKey))]));
  const location = new Map(o.holdings.map((h) => [h.id, h.location]));
  // Where each item's copies on writers are, by target.
  const at = new Map<string, { ref: StoredRef; ids: TargetId[] }>();
  for (const h of o.holdings) {
    if (!h.counts || !byId.has(h.id)) continue;
    for (const ref of h.refs) {
      const k = storedRefKey(ref);
      const e = at.get(k) ?? { ref, ids: [] };
      e.ids.push(h.id);
      at.set(k, e);
    }
  }
  let moved = 0;
  const tried = new Set<string>();
  while (moved < MOVES_PER_SWEEP && !balanced(fill)) {
    const order = [...fill].filter(([id]) => byId.has(id)).sort((a, b) => a[1] - b[1]);
    const [under, underCount] = order[0]!;
    const [over, overCount] = order[order.length - 1]!;
    const room = Math.floor((overCount - underCount) / 2);
    const batch: { ref: StoredRef; want: number }[] = [];
    for (const k of held.get(over) ?? []) {
      if (batch.length >= Math.min(c.batch, room, MOVES_PER_SWEEP - moved)) break;
      if (tried.has(k) || held.get(under)?.has(k)) continue;
      const e = at.get(k);
      if (!e || c.refs.reclaiming(e.ref) || c.busy(e.ref)) continue;
      const want = c.wanted(e.ref);
      // Only items exactly at their count: a short one is the sweep's, a surplus one the trim's.
      if (want === null || e.ids.length !== want) continue;
      // The copies after the move must span as many failure domains as before.
      const after = e.ids.filter((id) => id !== over).concat(under).map((id) => location.get(id) ?? "");
      if (distinctDomains(after, c.correlation) < Math.min(want, c.domainReach(writers, want))) continue;
      tried.add(k);
      batch.push({ ref: e.ref, want });
    }
    if (batch.length === 0) break;
    for (const want of new Set(batch.map((b) => b.want))) {
      const refs = batch.filter((b) => b.want === want).map((b) => b.ref);
      const verdicts = await c.check(refs, want + 1, fill);
      const trims: StoredRef[] = [];
      verdicts.forEach((v, i) => {
        // One copy more is on the members now: the fullest one's can go, unless a put counts it right now.
        if (v.repaired >= 1 && !v.short && !c.busy(refs[i]!)) trims.push(refs[i]!);
      });
      if (trims.length > 0) {
        c.refs.trim(trims, over);
        byId.get(over)!.send({ t: "reclaim", refs: trims });
        for (const ref of trims) {
          c.notOn(ref, over);
          held.get(over)?.delete(storedRefKey(ref));
        }
        fill.set(over, (fill.get(over) ?? 0) - trims.length);
        moved += trims.length;
      }
    }
    await c.paced();
  }
  return moved;
}
