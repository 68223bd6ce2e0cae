// What lifecycle rules make due for one key, from its live versions newest first: the first is
// current, each other one noncurrent since its successor's creation, ranked 1 (the newest
// noncurrent) onwards. A key with many versions is judged a window at a time, the window saying
// where in the key it starts.

import type { Uvid } from "../../common/ids.ts";
import type { LifecycleAction } from "../negotiating-group/rpc.ts";
import { currentExpired, filterTakes, noncurrentExpired, type LifecycleRule } from "../shared/lifecycle-rules.ts";
import { tagsOfJson } from "../shared/tags.ts";

export interface VersionRow {
  uvid: Uvid;
  deleteMarker: boolean;
  size: number;
  created: number;
  /** As stored (tagsToJson), parsed only when a rule filters by tags. */
  tags: SqlStorageValue;
}

/** An action before its name's NHID is known. */
export type Due = DistributiveOmit<LifecycleAction, "nhid">;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** Where a window of a key's versions starts: the rank of its first version (0: the current one) and its successor's creation. */
export interface WindowStart {
  rank: number;
  since: number | null;
}

/** What the rules make due among `versions` (newest first), a window of the key's versions starting at `from`. */
export function dueOf(rules: readonly LifecycleRule[], key: string, versions: readonly VersionRow[], at: { now: number; dayMs: number }, from: WindowStart = { rank: 0, since: null }): Due[] {
  const applicable = rules.filter((r) => key.startsWith(r.filter.prefix));
  if (applicable.length === 0 || versions.length === 0) return [];
  const out: Due[] = [];
  const candidate = (v: VersionRow) => ({ key, size: v.deleteMarker ? 0 : v.size, tags: v.deleteMarker ? [] : tagsOfJson(v.tags) });
  for (let i = 0; i < versions.length; i++) {
    const v = versions[i]!;
    const rank = from.rank + i;
    if (rank === 0) {
      if (v.deleteMarker) {
        if (versions.length === 1 && applicable.some((r) => r.expiredObjectDeleteMarker && filterTakes(r.filter, candidate(v)))) out.push({ kind: "remove-marker", key, uvid: v.uvid });
      } else {
        const rule = applicable.find((r) => filterTakes(r.filter, candidate(v)) && currentExpired(r, v.created, at));
        if (rule) out.push({ kind: "expire-current", key, uvid: v.uvid, tags: rule.filter.tags });
      }
      continue;
    }
    const since = i > 0 ? versions[i - 1]!.created : from.since;
    if (since === null) continue;
    const rule = applicable.find((r) => filterTakes(r.filter, candidate(v)) && noncurrentExpired(r, { since, rank }, at));
    if (rule) out.push({ kind: "remove-noncurrent", key, uvid: v.uvid, tags: rule.filter.tags, days: rule.noncurrentExpiration!.days, newer: rule.noncurrentExpiration!.newer });
  }
  return out;
}
