// What a group says about itself for the status page and cluster metrics: its members and
// which are live, and whether its items are at R. A member that went down leaves the group
// under-replicated until the re-replication sweep for it has run (rereplicate.ts): only the
// sweep counts copies, so before it the group says "under-replicated" with no count rather
// than guess; during it, how far it got; after it, what it found and restored.

import type { TargetId } from "../../common/ids.ts";
import type { StorageUse } from "../shared/storage-budget.ts";
import type { SplitProgress } from "./split.ts";
import type { OutsideCopies } from "./rereplicate.ts";

export type GroupState = "healthy" | "under-replicated" | "repairing";

export interface SweepReport {
  at: number;
  short: number;
  repaired: number;
  lost: number;
  ms: number;
}

export interface GroupHealth {
  group: number;
  state: GroupState;
  members: { id: TargetId; location: string; live: boolean }[];
  /** Targets outside the membership still serving data they hold for the group (replaced, draining, moved out for a newcomer). */
  readers: number;
  /**
   * ...which they are, while the group copies what they hold to its members and trims it, and
   * what the last sweep left on each (null: not swept since it left the membership).
   */
  outside: { id: TargetId; left: OutsideCopies | null }[];
  /**
   * A split's progress here: which of the walk's steps over its old groups' tables are done
   * (split.ts), null when no split gives this group anything. Set by the object, not the repair part.
   */
  split?: SplitProgress | null;
  /** Down members not yet swept, with since when. */
  pending: { id: TargetId; since: number }[];
  /** The sweep running now: items found short and how many of them it has been through. */
  repair: { short: number; done: number; repaired: number } | null;
  lastSweep: SweepReport | null;
  /** Its SQLite storage against its budget (shared/storage-budget.ts); absent from the repair part, added by the group. */
  storage?: StorageUse;
}

export function stateOf(h: Pick<GroupHealth, "pending" | "repair">): GroupState {
  if (h.repair) return "repairing";
  return h.pending.length > 0 ? "under-replicated" : "healthy";
}
