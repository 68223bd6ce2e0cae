// What a target holds for one group, a page at a time, in key order: chunks first ("c:<chid>"),
// then manifests ("v:<nhid>/<uvid>/<chid>"). A group asks its members for this when it counts
// copies to restore replica counts; with `since`, only what was written or stamped since then
// (a group recovering what it knew only in memory).

import { groupOf } from "../common/ids.ts";
import { storedRefKey, type StoredRef } from "../common/protocol.ts";
import type { PackIndex } from "./packs/pack-index.ts";
import type { VmLog } from "./vm-log.ts";

/** Which page of a group's items to return. */
export interface InventoryPage {
  /** The key of the last item of the page before ("c:<chid>" or "v:<nhid>/<uvid>/<chid>"); null for the first. */
  after: string | null;
  limit: number;
  /** Only what was written or stamped since then (ms); then one page, `after` unused. */
  since?: number | null;
}

/** Rows are read this many at a time while the page fills. */
const SCAN = 1024;

export function inventoryPage(held: { index: PackIndex; vms: VmLog }, of: { group: number; groupCount: number }, page: InventoryPage): { refs: StoredRef[]; next: string | null } {
  const { index, vms } = held;
  const { group, groupCount } = of;
  const { after, limit, since = null } = page;
  const refs: StoredRef[] = [];
  const full = () => ({ refs, next: storedRefKey(refs[refs.length - 1]!) });
  if (since !== null) {
    // One page: the window of a crash is short.
    for (const r of index.writtenSince(since, limit)) if (groupOf(r.chid, groupCount) === group) refs.push({ kind: "chunk", chid: r.chid });
    for (const v of vms.stampedSince(since, limit)) if (groupOf(v.nhid, groupCount) === group) refs.push({ kind: "vm", ...v });
    return { refs, next: null };
  }
  if (after === null || after.startsWith("c:")) {
    // The cursor is a position in CHID order, taken as sent: it is compared, never used as an id.
    let cursor: string | null = after?.slice(2) ?? null;
    for (;;) {
      const rows = index.page(cursor, SCAN);
      for (const r of rows) {
        if (groupOf(r.chid, groupCount) !== group) continue;
        refs.push({ kind: "chunk", chid: r.chid });
        if (refs.length === limit) return full();
      }
      if (rows.length < SCAN) break;
      cursor = rows[rows.length - 1]!.chid;
    }
  }
  let cursor: { nhid: string; uvid: string; chid: string } | null = null;
  if (after?.startsWith("v:")) {
    const [nhid = "", uvid = "", chid = ""] = after.slice(2).split("/");
    cursor = { nhid, uvid, chid };
  }
  for (;;) {
    const rows = vms.page(cursor, SCAN);
    for (const v of rows) {
      if (groupOf(v.nhid, groupCount) !== group) continue;
      refs.push({ kind: "vm", ...v });
      if (refs.length === limit) return full();
    }
    if (rows.length < SCAN) return { refs, next: null };
    cursor = rows[rows.length - 1]!;
  }
}
