// Where replicas go. A target's location is a path /region/zone/rack/host/device; how likely two
// targets are to fail together is a continuous measure (correlation.ts: by shared path, or the
// operator's table), not discrete buckets (seed 004). Membership and replica selection both
// pick, one at a time, the candidate least correlated with those already picked, then the
// least loaded. Membership also keeps the number of distinct member sets small (copysets): a
// group reuses an earlier group's members where that is as safe and keeps the load even, so
// that fewer sets of R targets hold data together, and fewer simultaneous failures lose any.

import { depthCorrelation, pathParts, SAME_DOMAIN, sharedDepth, type Correlation } from "./correlation.ts";

export { pathParts, sharedDepth };

/** How correlated a candidate is with a set already chosen: its most correlated pair with any of them, -1 against none. */
export function correlation(candidate: string, chosen: readonly string[], model: Correlation = depthCorrelation): number {
  let worst = -1;
  for (const c of chosen) worst = Math.max(worst, model(candidate, c));
  return worst;
}

function correlationSum(candidate: string, chosen: readonly string[], model: Correlation): number {
  let sum = 0;
  for (const c of chosen) sum += model(candidate, c);
  return sum;
}

/** A replica set's risk, to compare sets: its most correlated pair, then the sum over all pairs. */
export function setRisk(locations: readonly string[], model: Correlation = depthCorrelation): [number, number] {
  let worst = 0;
  let sum = 0;
  for (let i = 0; i < locations.length; i++) {
    for (let j = i + 1; j < locations.length; j++) {
      const p = model(locations[i]!, locations[j]!);
      worst = Math.max(worst, p);
      sum += p;
    }
  }
  return [worst, sum];
}

const EPSILON = 1e-9;

/** Lexicographic order of keys, equal within EPSILON. */
function less(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < a.length; i++) {
    if (a[i]! < b[i]! - EPSILON) return true;
    if (a[i]! > b[i]! + EPSILON) return false;
  }
  return false;
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
 * then least load. Copysets (Cidon et al.): before a group takes a new set of members, it takes
 * an earlier group's set if that set is no riskier than the new one would be and none of its
 * members is more than one group above the least loaded target; so load stays even and the
 * number of distinct member sets stays near targets / perGroup instead of one per group.
 * Deterministic in its inputs.
 */
export function assignGroups(targets: readonly Placeable[], groupCount: number, perGroup: number, model: Correlation = depthCorrelation): string[][] {
  const sorted = [...targets].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const load = new Map(sorted.map((t) => [t.id, 0]));
  const sets: { members: Placeable[]; risk: [number, number] }[] = [];
  const groups: string[][] = [];
  for (let g = 0; g < groupCount; g++) {
    const fresh: Placeable[] = [];
    const ranking = { g, load, model };
    while (fresh.length < Math.min(perGroup, sorted.length)) {
      fresh.push(leastCorrelated(fresh, sorted.filter((t) => !fresh.includes(t)), ranking)!);
    }
    const freshRisk = setRisk(fresh.map((t) => t.location), model);
    const least = Math.min(...load.values());
    const loadKey = (m: readonly Placeable[]) => [Math.max(...m.map((t) => load.get(t.id)!)), m.reduce((a, t) => a + load.get(t.id)!, 0)];
    let chosen = fresh;
    let chosenKey: number[] | null = null;
    for (const set of sets) {
      const key = loadKey(set.members);
      if (less(freshRisk, set.risk) || key[0]! > least + 1) continue;
      if (chosenKey === null || less(key, chosenKey)) {
        chosen = set.members;
        chosenKey = key;
      }
    }
    if (chosen === fresh && !sets.some((s) => sameMembers(s.members, fresh))) sets.push({ members: fresh, risk: freshRisk });
    for (const t of chosen) load.set(t.id, load.get(t.id)! + 1);
    groups.push(chosen.map((c) => c.id));
  }
  return groups;
}

function sameMembers(a: readonly Placeable[], b: readonly Placeable[]): boolean {
  return a.length === b.length && a.every((t) => b.includes(t));
}

/**
 * Who takes a member's place in group `g` once it is gone for good: of `candidates` (live, not
 * in the group), the one least correlated with the members that stay, then the least loaded
 * (`load`: groups each target is a member of). Null when there is no candidate. One member
 * changes; the rest of the map stays, so only that group's data has a new home.
 */
export function replacementFor(g: number, staying: readonly Placeable[], candidates: readonly Placeable[], by: { load: ReadonlyMap<string, number>; model?: Correlation }): Placeable | null {
  return leastCorrelated(staying, candidates, { g, load: by.load, model: by.model ?? depthCorrelation });
}

/** A target as a join plans it: its capacity sets its share of the groups' places. */
export interface Sized extends Placeable {
  capacity: number;
}

/** One change a join makes: `into` takes a place in `group`, in place of `out` (null: a free place). */
export interface JoinMove {
  group: number;
  out: string | null;
  into: string;
}

/** Each target's share of `places` by capacity; a target that does not say its capacity counts as the average one. */
export function sharesOf(targets: readonly { id: string; capacity: number }[], places: number): Map<string, number> {
  const said = targets.filter((t) => t.capacity > 0);
  const average = said.length > 0 ? said.reduce((a, t) => a + t.capacity, 0) / said.length : 1;
  const weight = (c: number) => (c > 0 ? c : average);
  const total = targets.reduce((a, t) => a + weight(t.capacity), 0);
  return new Map(targets.map((t) => [t.id, total > 0 ? (places * weight(t.capacity)) / total : 0]));
}

/**
 * Where a target new to a cluster that holds data takes its places: only the groups it enters
 * change, and data moves only for them. It fills groups short of `perGroup` members first (no
 * one leaves those), then takes places from the members furthest above their share until it
 * has its own; a target's share of all places is its share of the cluster's capacity, so
 * groups fill by free space rather than by count. It takes no place that would leave a group's
 * members more correlated than they were (safety before balance), and of the rest the most
 * loaded giver's, then one whose resulting set the map already has (copysets stay few). Only
 * `givers` (the live targets) give up places, so a member down for a restart keeps its own;
 * every target in `targets` counts towards the shares. Deterministic in its inputs.
 */
export function joinPlan(o: { groups: ReadonlyMap<number, readonly string[]>; targets: readonly Sized[]; newcomer: string; perGroup: number; givers?: ReadonlySet<string>; model?: Correlation }): JoinMove[] {
  const model = o.model ?? depthCorrelation;
  const loc = new Map(o.targets.map((t) => [t.id, t.location]));
  const members = new Map([...o.groups].map(([g, m]) => [g, [...m]]));
  const load = new Map(o.targets.map((t) => [t.id, 0]));
  for (const m of members.values()) for (const id of m) load.set(id, (load.get(id) ?? 0) + 1);
  const moves: JoinMove[] = [];
  const want = Math.min(o.perGroup, o.targets.length);
  for (const [g, m] of [...members].sort(([a], [b]) => a - b)) {
    if (m.length >= want || m.includes(o.newcomer)) continue;
    m.push(o.newcomer);
    load.set(o.newcomer, (load.get(o.newcomer) ?? 0) + 1);
    moves.push({ group: g, out: null, into: o.newcomer });
  }
  const places = [...members.values()].reduce((a, m) => a + m.length, 0);
  const share = sharesOf(o.targets, places);
  const excess = (id: string) => (load.get(id) ?? 0) - (share.get(id) ?? 0);
  const risk = (ids: readonly string[]) => setRisk(ids.map((id) => loc.get(id) ?? ""), model);
  const sets = () => new Set([...members.values()].map((m) => [...m].sort().join(",")));
  // Each round takes one place: at most one per group.
  for (let round = 0; round < members.size && excess(o.newcomer) < -0.5; round++) {
    const known = sets();
    let best: { g: number; at: number; key: number[] } | null = null;
    for (const [g, m] of members) {
      if (m.includes(o.newcomer)) continue;
      const before = risk(m);
      for (let at = 0; at < m.length; at++) {
        const id = m[at]!;
        // A member that is down keeps its places: a restart moves nothing.
        if (o.givers && !o.givers.has(id)) continue;
        // Only a place whose move evens the load: the giver ends no further below its share than the taker was.
        if (excess(id) - excess(o.newcomer) <= 1 + 1e-9) continue;
        const after = m.map((x, i) => (i === at ? o.newcomer : x));
        // Never a place that leaves the group's members more correlated: safety before balance.
        if (less(before, risk(after))) continue;
        const key = [-excess(id), known.has([...after].sort().join(",")) ? 0 : 1, mix(g, id)];
        if (best === null || less(key, best.key)) best = { g, at, key };
      }
    }
    if (best === null) break;
    const m = members.get(best.g)!;
    const out = m[best.at]!;
    m[best.at] = o.newcomer;
    load.set(out, load.get(out)! - 1);
    load.set(o.newcomer, (load.get(o.newcomer) ?? 0) + 1);
    moves.push({ group: best.g, out, into: o.newcomer });
  }
  return moves;
}

/** How candidates for one group are ranked past their correlation: the same for every pick the group makes. */
interface Ranking {
  /** The group: its number breaks ties (`mix`), so equal candidates spread over groups. */
  g: number;
  /** Groups each target is a member of so far. */
  load: ReadonlyMap<string, number>;
  model: Correlation;
}

/** Of `candidates`, the one least correlated with `chosen`, then least loaded, then least correlated in sum, then by a stable mix: null if none. */
function leastCorrelated(chosen: readonly Placeable[], candidates: readonly Placeable[], { g, load, model }: Ranking): Placeable | null {
  let best: Placeable | null = null;
  let bestKey: number[] | null = null;
  const at = chosen.map((c) => c.location);
  for (const t of candidates) {
    const key = [correlation(t.location, at, model), load.get(t.id) ?? 0, correlationSum(t.location, at, model), mix(g, t.id)];
    if (bestKey === null || less(key, bestKey)) {
      best = t;
      bestKey = key;
    }
  }
  return best;
}

/** Distinct sets of `replicas` targets that may hold a chunk together: every R-subset of every group's members. */
export function copysetCount(groups: readonly (readonly string[])[], replicas: number): number {
  const seen = new Set<string>();
  const pick = (from: readonly string[], k: number, start: number, acc: string[]) => {
    if (acc.length === k) {
      seen.add(acc.join(","));
      return;
    }
    for (let i = start; i < from.length; i++) pick(from, k, i + 1, [...acc, from[i]!]);
  };
  for (const m of groups) {
    const sorted = [...new Set(m)].sort();
    pick(sorted, Math.min(replicas, sorted.length), 0, []);
  }
  return seen.size;
}

export interface PlacementWarning {
  group: number;
  /** The two members of the least correlated replica set the group can form that fail most together. */
  pair: [string, string];
  p: number;
}

/**
 * Groups whose members cannot hold R copies in distinct failure domains (two of any R of them
 * correlate at SAME_DOMAIN or more: too few hosts, say). Writes go on there, degraded: the
 * replicas are still spread as far as the members allow. Empty when every group is whole.
 */
export function placementWarnings(groups: readonly (readonly Placeable[])[], replicas: number, model: Correlation = depthCorrelation): PlacementWarning[] {
  const out: PlacementWarning[] = [];
  groups.forEach((members, g) => {
    const best = selectReplicas([], members.map((m, i) => ({ id: m.id, location: m.location, start: i })), replicas, model);
    let worst: PlacementWarning | null = null;
    for (let i = 0; i < best.length; i++) {
      for (let j = i + 1; j < best.length; j++) {
        const p = model(best[i]!.location, best[j]!.location);
        if (p >= SAME_DOMAIN && (worst === null || p > worst.p)) worst = { group: g, pair: [best[i]!.location, best[j]!.location], p };
      }
    }
    if (worst) out.push(worst);
  });
  return out;
}

export interface Offer {
  id: string;
  location: string;
  /** Earliest time the target said it could take the payload. */
  start: number;
}

/**
 * Pick `need` targets among offers to join `holders` (the locations of targets that already
 * have the data): least correlated with everything chosen so far first (its worst pair, then
 * the sum), then earliest window.
 */
export function selectReplicas<O extends Offer>(holders: readonly string[], offers: readonly O[], need: number, model: Correlation = depthCorrelation): O[] {
  const chosenLocations = [...holders];
  const picked: O[] = [];
  const pool = [...offers];
  while (picked.length < need && pool.length > 0) {
    let bi = 0;
    let bk: number[] | null = null;
    for (let i = 0; i < pool.length; i++) {
      const o = pool[i]!;
      const key = [correlation(o.location, chosenLocations, model), correlationSum(o.location, chosenLocations, model), o.start];
      if (bk === null || less(key, bk)) {
        bi = i;
        bk = key;
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
