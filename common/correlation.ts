// How likely two targets are to fail together (seed 004: a pairwise correlation, continuous,
// not discrete fault domains). By default it follows the location paths: the longer the path
// two targets share (/region/zone/rack/host/device), the more correlated they are. An operator
// who knows better (spot hosts in one zone that go together, a rack on one power feed, two
// zones on one flood plain) overrides pairs of location prefixes with a table (CORRELATION).
//
// The figures are weights for comparing replica sets, not measured probabilities: placement
// only ever asks which of two sets is less correlated, and whether two copies are so correlated
// that they count as one replica (SAME_DOMAIN).

export function pathParts(location: string): string[] {
  return location.split("/").filter((p) => p.length > 0);
}

/** Number of leading path components two locations share: seed 004's distance, for reads too. */
export function sharedDepth(a: string, b: string): number {
  return sharedDepthOf(pathParts(a), pathParts(b));
}

/** Pairwise correlation of two locations, 0 (independent) .. 1 (they fail as one). */
export type Correlation = (a: string, b: string) => number;

/** By shared depth: nothing, region, zone, rack, host, device (and deeper: the same device). */
export const DEFAULT_BY_DEPTH: readonly number[] = [0, 0.01, 0.05, 0.2, 0.5, 1];

/**
 * Copies on targets at least this correlated count as one replica (by default: two devices of
 * one host). Replica counts (R) are counted in such failure domains, where the members allow.
 */
export const SAME_DOMAIN = 0.5;

function sharedDepthOf(pa: readonly string[], pb: readonly string[]): number {
  let i = 0;
  while (i < pa.length && i < pb.length && pa[i] === pb[i]) i++;
  return i;
}

function byDepth(table: readonly number[], depth: number): number {
  return table[Math.min(depth, table.length - 1)]!;
}

export const depthCorrelation: Correlation = (a, b) => byDepth(DEFAULT_BY_DEPTH, sharedDepthOf(pathParts(a), pathParts(b)));

/**
 * The operator's table, JSON:
 *   { "byDepth": [0, 0.01, 0.05, 0.2, 0.5, 1],
 *     "pairs": [ { "a": "/us/zone-a/spot", "p": 0.4 },
 *                { "a": "/eu/zone-a", "b": "/eu/zone-b", "p": 0.3 } ] }
 * `byDepth` replaces the default by shared depth. A pair applies to two targets one under `a`
 * and the other under `b` (both under `a` when `b` is left out); where several apply, the most
 * specific (longest prefixes) wins, and the later of equals. Both keys are optional.
 */
export interface CorrelationTable {
  byDepth?: number[];
  pairs?: { a: string; b?: string; p: number }[];
}

function isPrefix(prefix: readonly string[], of: readonly string[]): boolean {
  return prefix.length <= of.length && prefix.every((p, i) => of[i] === p);
}

function probability(v: unknown, what: string): number {
  if (typeof v !== "number" || !(v >= 0 && v <= 1)) throw new Error(`CORRELATION: ${what} must be a number from 0 to 1, got ${JSON.stringify(v)}`);
  return v;
}

/** The model a table describes; the default when `json` is empty. Throws, naming the fault, on a malformed table. */
export function correlationFrom(json: string | undefined): Correlation {
  if (!json || json.trim() === "") return depthCorrelation;
  let table: CorrelationTable;
  try {
    table = JSON.parse(json) as CorrelationTable;
  } catch (e) {
    throw new Error(`CORRELATION is not JSON: ${String(e)}`);
  }
  if (typeof table !== "object" || table === null || Array.isArray(table)) throw new Error('CORRELATION must be a JSON object with "byDepth" and/or "pairs"');
  const depths = table.byDepth ?? DEFAULT_BY_DEPTH;
  if (!Array.isArray(depths) || depths.length === 0) throw new Error("CORRELATION: byDepth must be a non-empty array");
  depths.forEach((p, i) => probability(p, `byDepth[${i}]`));
  const pairs = (table.pairs ?? []).map((e, i) => {
    if (typeof e?.a !== "string" || (e.b !== undefined && typeof e.b !== "string")) throw new Error(`CORRELATION: pairs[${i}] needs "a" (and optionally "b") location prefixes`);
    const a = pathParts(e.a);
    const b = pathParts(e.b ?? e.a);
    return { a, b, p: probability(e.p, `pairs[${i}].p`), specificity: a.length + b.length };
  });
  return (x, y) => {
    const px = pathParts(x);
    const py = pathParts(y);
    let best: { p: number; specificity: number } | null = null;
    for (const e of pairs) {
      const applies = (isPrefix(e.a, px) && isPrefix(e.b, py)) || (isPrefix(e.a, py) && isPrefix(e.b, px));
      if (applies && (best === null || e.specificity >= best.specificity)) best = e;
    }
    return best ? best.p : byDepth(depths, sharedDepthOf(px, py));
  };
}

let cachedFor: string | undefined;
let cached: Correlation = depthCorrelation;

/** correlationFrom, parsed once per distinct table (configuration is read on every request). */
export function correlationOf(json: string | undefined): Correlation {
  if (json !== cachedFor) {
    cached = correlationFrom(json);
    cachedFor = json;
  }
  return cached;
}

/**
 * How many failure domains a set of copies spans: the size of a largest-found set of them whose
 * every pair is below SAME_DOMAIN (greedy; copies are few).
 */
export function distinctDomains(locations: readonly string[], model: Correlation): number {
  const picked: string[] = [];
  // Fewest conflicts first, so that one copy correlated with many does not crowd the others out.
  const conflicts = locations.map((l, i) => locations.filter((o, j) => j !== i && model(l, o) >= SAME_DOMAIN).length);
  const order = locations.map((l, i) => ({ l, c: conflicts[i]! })).sort((a, b) => a.c - b.c);
  for (const { l } of order) if (picked.every((p) => model(l, p) < SAME_DOMAIN)) picked.push(l);
  return picked.length;
}
