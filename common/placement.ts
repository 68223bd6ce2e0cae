// Where replicas go. A target's location is a path /region/zone/rack/host/device; two targets
// are as correlated as the length of the path they share (seed 004: a continuous measure, not
// discrete buckets). Membership and replica selection both pick, one at a time, the candidate
// that shares the least path with those already picked, then the least loaded.

export function pathParts(location: string): string[] {
  return location.split("/").filter((p) => p.length > 0);
}

/** Number of leading path components two locations share. */
export function sharedDepth(a: string, b: string): number {
  const pa = pathParts(a);
  const pb = pathParts(b);
  let i = 0;
  while (i < pa.length && i < pb.length && pa[i] === pb[i]) i++;
  return i;
}

/** How correlated a candidate is with a set already chosen: the deepest path it shares with any. */
export function correlation(candidate: string, chosen: readonly string[]): number {
  let worst = -1;
  for (const c of chosen) worst = Math.max(worst, sharedDepth(candidate, c));
  return worst;
}

/** Stable pseudo-random tie-break so that equal candidates spread over groups. */
function mix(g: number, id: string): number {
  let h = (0x811c9dc5 ^ g) >>> 0;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

export interface Placeable {
  id: string;
  location: string;
}

/**
 * Members of each group: for every group, `perGroup` targets chosen for least correlation,
 * then least load, so that load evens out across targets. Deterministic in its inputs.
 */
export function assignGroups(targets: readonly Placeable[], groupCount: number, perGroup: number): string[][] {
  const sorted = [...targets].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const load = new Map(sorted.map((t) => [t.id, 0]));
  const groups: string[][] = [];
  for (let g = 0; g < groupCount; g++) {
    const chosen: Placeable[] = [];
    while (chosen.length < Math.min(perGroup, sorted.length)) {
      const best = leastCorrelated(g, chosen, sorted.filter((t) => !chosen.includes(t)), load);
      chosen.push(best!);
      load.set(best!.id, load.get(best!.id)! + 1);
    }
    groups.push(chosen.map((c) => c.id));
  }
  return groups;
}

/**
 * Who takes a member's place in group `g` once it is gone for good: of `candidates` (live, not
 * in the group), the one least correlated with the members that stay, then the least loaded
 * (`load`: groups each target is a member of). Null when there is no candidate. One member
 * changes; the rest of the map stays, so only that group's data has a new home.
 */
export function replacementFor(g: number, staying: readonly Placeable[], candidates: readonly Placeable[], load: ReadonlyMap<string, number>): Placeable | null {
  return leastCorrelated(g, staying, candidates, load);
}

/** Of `candidates`, the one least correlated with `chosen`, then least loaded, then by a stable mix: null if none. */
function leastCorrelated(g: number, chosen: readonly Placeable[], candidates: readonly Placeable[], load: ReadonlyMap<string, number>): Placeable | null {
  let best: Placeable | null = null;
  let bestKey: [number, number, number] | null = null;
  const at = chosen.map((c) => c.location);
  for (const t of candidates) {
    const key: [number, number, number] = [correlation(t.location, at), load.get(t.id) ?? 0, mix(g, t.id)];
    if (bestKey === null || key[0] < bestKey[0] || (key[0] === bestKey[0] && (key[1] < bestKey[1] || (key[1] === bestKey[1] && key[2] < bestKey[2])))) {
      best = t;
      bestKey = key;
    }
  }
  return best;
}

export interface Offer {
  id: string;
  location: string;
  /** Earliest time the target said it could take the payload. */
  start: number;
}

/**
 * Pick `need` targets among offers to join `holders` (targets that already have the data):
 * least correlated with everything chosen so far first, then earliest window.
 */
export function selectReplicas(holders: readonly string[], offers: readonly Offer[], need: number): Offer[] {
  const chosenLocations = [...holders];
  const picked: Offer[] = [];
  const pool = [...offers];
  while (picked.length < need && pool.length > 0) {
    let bi = 0;
    let bc = Infinity;
    for (let i = 0; i < pool.length; i++) {
      const c = correlation(pool[i]!.location, chosenLocations);
      if (c < bc || (c === bc && pool[i]!.start < pool[bi]!.start)) {
        bi = i;
        bc = c;
      }
    }
    const [o] = pool.splice(bi, 1);
    picked.push(o!);
    chosenLocations.push(o!.location);
  }
  return picked;
}

/**
 * Replicas ordered for a reader at `near` (seed 004: "orders replicas by client distance"):
 * the longest location path shared first, keeping the given order among equals (a rotation
 * that spreads reads); as given when there is no location.
 */
export function nearestFirst<M extends { location: string }>(members: readonly M[], near: string | null | undefined): M[] {
  if (!near) return [...members];
  return members
    .map((m, i) => ({ m, i, d: sharedDepth(m.location, near) }))
    .sort((a, b) => b.d - a.d || a.i - b.i)
    .map((x) => x.m);
}
