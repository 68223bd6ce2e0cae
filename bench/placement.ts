#!/usr/bin/env node
// npm run bench:placement [-- --replicas 3] [--members 4] [--zones 3]
//
// What group membership (common/placement.ts: assignGroups) makes of clusters of several sizes:
// the distinct sets of R targets that hold data together (copysets), the chance that R targets
// failing at once hold every copy of something (copysets / C(N, R)), against the same figure
// if every group had members of its own (groups × C(M, R), capped at C(N, R)), and how evenly
// the groups spread over the targets. Pure computation, no cluster: it runs in a moment.

import { parseArgs } from "node:util";
import { assignGroups, copysetCount, placementWarnings, type Placeable } from "../common/placement.ts";

const { values } = parseArgs({
  options: {
    replicas: { type: "string", default: "3" },
    members: { type: "string", default: "4" },
    zones: { type: "string", default: "3" },
  },
});
const R = Number(values.replicas);
const M = Number(values.members);
const Z = Number(values.zones);

function choose(n: number, k: number): number {
  let c = 1;
  for (let i = 0; i < k; i++) c = (c * (n - i)) / (i + 1);
  return c;
}

const pct = (x: number) => `${(100 * x).toFixed(2)} %`;

console.log(`R = ${R}, ${M} members per group, targets spread over ${Z} zones, 4 racks per zone, one host each`);
console.log(["targets", "groups", "copysets", "P(loss | R fail)", "one set per group", "load min..max", "warnings"].join("\t"));
for (const [n, groups] of [
  [6, 8],
  [12, 16],
  [24, 32],
  [48, 64],
  [96, 128],
] as const) {
  const targets: Placeable[] = Array.from({ length: n }, (_, i) => ({
    id: `t${String(i).padStart(3, "0")}`,
    location: `/region/zone-${i % Z}/rack-${Math.floor(i / Z) % 4}/host-${i}/disk-0`,
  }));
  const map = assignGroups(targets, groups, M);
  const sets = copysetCount(map, R);
  const all = choose(n, R);
  const apart = Math.min(all, groups * choose(M, R));
  const load = new Map<string, number>();
  for (const g of map) for (const id of g) load.set(id, (load.get(id) ?? 0) + 1);
  const loc = new Map(targets.map((t) => [t.id, t.location]));
  const warnings = placementWarnings(map.map((g) => g.map((id) => ({ id, location: loc.get(id)! }))), R).length;
  console.log([n, groups, sets, pct(sets / all), pct(apart / all), `${Math.min(...load.values())}..${Math.max(...load.values())}`, warnings].join("\t"));
}
