// How far the cluster is from balanced, for `edgestore-admin cluster rebalance`: each target's
// places in groups against its share (its part of the cluster's capacity), what it stores, and
// every group still moving data off targets that are no longer its members (a newcomer took
// their place, a target drains or was replaced), with the group's sweep progress. Copies that
// nothing references any more do not count: reclamation deletes those everywhere in its time
// (REMOVED_RETAIN_SECONDS), and nothing moves them. Groups still taking in their ids after the
// group count grew are listed too. Read from the cluster's status (status.ts),
// so it costs what the status page costs.

import type { TargetId } from "../../common/ids.ts";
import { sharesOf } from "../../common/placement.ts";
import type { ClusterStatus } from "./status.ts";

export interface RebalanceTarget {
  id: TargetId;
  location: string;
  live: boolean;
  capacity: number;
  bytes: number;
  /** Groups it is a member of, and how many its capacity would give it. */
  places: number;
  share: number;
}

export interface MovingGroup {
  group: number;
  /** Non-members still holding the group's data. */
  from: TargetId[];
  /** Items they held after the last sweep (null: not swept yet), and of those, garbage reclamation will delete. */
  left: number | null;
  unreferenced: number;
  /** The sweep copying it to the members now: items found short, looked at, copied. */
  sweep: { short: number; done: number; repaired: number } | null;
  lastSweep: { at: number; short: number; repaired: number } | null;
}

export interface RebalanceView {
  at: number;
  /** No group holds data on non-members that its members still need, and every group answered. */
  balanced: boolean;
  targets: RebalanceTarget[];
  moving: MovingGroup[];
  /** Groups that did not answer: their state is not known. */
  unknown: number[];
  /** Groups still taking in their ids after a group-count split (negotiating-group/split.ts). */
  splitting: { group: number; stepsDone: number; steps: number }[];
  /** Shards still taking in their names after a SHARD_COUNT split, or dropping rows they handed on (manifest-shard/split.ts). */
  shardsSplitting: { shard: number; from: number | null; tablesLeft: number; rowsTaken: number; dropping: number }[];
}

export function rebalanceOf(s: ClusterStatus): RebalanceView {
  // Shares as joins weigh them (placement.ts: joinPlan).
  const shares = sharesOf(s.targets, s.targets.reduce((a, t) => a + t.groups.length, 0));
  const targets = s.targets.map((t) => ({
    id: t.id,
    location: t.location,
    live: t.state === "live",
    capacity: t.capacity,
    bytes: t.bytes,
    places: t.groups.length,
    share: Math.round((shares.get(t.id) ?? 0) * 10) / 10,
  }));
  const moving: MovingGroup[] = [];
  const unknown: number[] = [];
  const splitting: RebalanceView["splitting"] = [];
  for (const g of s.groups) {
    if (!("outside" in g)) {
      unknown.push(g.group);
      continue;
    }
    if (g.split && !g.split.done) splitting.push({ group: g.group, stepsDone: g.split.stepsDone, steps: g.split.steps });
    // Copies nothing references are not moved: reclamation deletes them everywhere, in its time.
    const holding = g.outside.filter((o) => o.left === null || o.left.left > o.left.unreferenced);
    if (holding.length === 0) continue;
    const swept = g.outside.every((o) => o.left !== null);
    moving.push({
      group: g.group,
      from: holding.map((o) => o.id),
      left: swept ? g.outside.reduce((a, o) => a + o.left!.left, 0) : null,
      unreferenced: g.outside.reduce((a, o) => a + (o.left?.unreferenced ?? 0), 0),
      sweep: g.repair,
      lastSweep: g.lastSweep ? { at: g.lastSweep.at, short: g.lastSweep.short, repaired: g.lastSweep.repaired } : null,
    });
  }
  const shardsSplitting: RebalanceView["shardsSplitting"] = [];
  for (const sh of s.shards) {
    if (!("split" in sh)) continue;
    const p = sh.split;
    if (p.takingFrom !== null || p.dropping > 0) shardsSplitting.push({ shard: sh.shard, from: p.takingFrom, tablesLeft: p.tablesLeft, rowsTaken: p.rowsTaken, dropping: p.dropping });
  }
  const balanced = moving.length === 0 && unknown.length === 0 && splitting.length === 0 && shardsSplitting.length === 0;
  return { at: s.at, balanced, targets, moving, unknown, splitting, shardsSplitting };
}
