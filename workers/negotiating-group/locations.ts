// Where this group's chunks were last seen: CHID -> targets that confirmed holding it (saved on
// put, "have" in a bid, delivered on get). A read then goes straight to a known holder with one
// `fetch` message instead of a proposal to every member and a bid from each; on a miss or a
// failure the group falls back to the full bid round, which also refreshes this map. A cache in
// memory only: losing it (eviction, restart) costs one bid round per chunk, never correctness.

import type { Chid, TargetId } from "../../common/ids.ts";

const DEFAULT_ENTRIES = 50_000;

interface Entry {
  ids: TargetId[];
  /** Where the next read starts, so reads of one chunk take turns over its holders. */
  turn: number;
}

export class LocationCache {
  private readonly map = new Map<Chid, Entry>();
  private readonly max: number;

  constructor(max = DEFAULT_ENTRIES) {
    this.max = max;
  }

  /** Known holders in the order to try them; each call starts one further along. */
  holders(chid: Chid): TargetId[] {
    const e = this.map.get(chid);
    if (!e) return [];
    // Refresh its place in the LRU order.
    this.map.delete(chid);
    this.map.set(chid, e);
    const start = e.turn++ % e.ids.length;
    return [...e.ids.slice(start), ...e.ids.slice(0, start)];
  }

  add(chid: Chid, ids: Iterable<TargetId>): void {
    const e = this.map.get(chid) ?? { ids: [], turn: 0 };
    e.ids = [...new Set([...e.ids, ...ids])];
    this.map.delete(chid);
    this.map.set(chid, e);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value!);
  }

  remove(chid: Chid, id: TargetId): void {
    const e = this.map.get(chid);
    if (!e) return;
    e.ids = e.ids.filter((x) => x !== id);
    if (e.ids.length === 0) this.map.delete(chid);
  }

  /** The chunk is being deleted everywhere. */
  forget(chid: Chid): void {
    this.map.delete(chid);
  }

  get size(): number {
    return this.map.size;
  }
}
