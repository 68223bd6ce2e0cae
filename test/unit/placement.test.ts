import { describe, expect, it } from "vitest";
import { assignGroups, correlation, nearestFirst, replacementFor, selectReplicas, sharedDepth, type Offer, type Placeable } from "../../common/placement.ts";

const loc = (zone: string, host: number, disk = 0) => `/local/zone-${zone}/rack-1/host-${host}/disk-${disk}`;

// 3 zones x 2 hosts, ids deliberately not in zone order.
const TARGETS: Placeable[] = [
  { id: "t5", location: loc("a", 1) },
  { id: "t2", location: loc("a", 2) },
  { id: "t4", location: loc("b", 1) },
  { id: "t0", location: loc("b", 2) },
  { id: "t3", location: loc("c", 1) },
  { id: "t1", location: loc("c", 2) },
];
const zoneOf = new Map(TARGETS.map((t) => [t.id, t.location.split("/")[2]]));

describe("sharedDepth and correlation", () => {
  it("counts shared leading path components, ignoring empty ones", () => {
    expect(sharedDepth(loc("a", 1), loc("a", 1))).toBe(5);
    expect(sharedDepth(loc("a", 1, 0), loc("a", 1, 1))).toBe(4);
    expect(sharedDepth(loc("a", 1), loc("a", 2))).toBe(3);
    expect(sharedDepth(loc("a", 1), loc("b", 1))).toBe(1);
    expect(sharedDepth("/x/y", "/z/y")).toBe(0);
    expect(sharedDepth("/local/zone-a/", "local//zone-a")).toBe(2);
    expect(sharedDepth("", loc("a", 1))).toBe(0);
  });

  it("is the deepest match against anything chosen, and -1 against nothing", () => {
    expect(correlation(loc("a", 1), [])).toBe(-1);
    expect(correlation(loc("a", 1), [loc("b", 1), loc("a", 2)])).toBe(3);
    expect(correlation(loc("a", 1), [loc("b", 1), loc("c", 2)])).toBe(1);
  });
});

describe("assignGroups", () => {
  const groups = assignGroups(TARGETS, 8, 4);

  it("fills every group with distinct members from all three zones", () => {
    expect(groups).toHaveLength(8);
    for (const g of groups) {
      expect(g).toHaveLength(4);
      expect(new Set(g).size).toBe(4);
      expect(new Set(g.map((id) => zoneOf.get(id)))).toEqual(new Set(["zone-a", "zone-b", "zone-c"]));
    }
  });

  it("balances load: each of 6 targets serves 5 or 6 of the 32 slots", () => {
    const load = new Map<string, number>();
    for (const g of groups) for (const id of g) load.set(id, (load.get(id) ?? 0) + 1);
    expect([...load.keys()].sort()).toEqual(TARGETS.map((t) => t.id).sort());
    for (const n of load.values()) expect(n === 5 || n === 6).toBe(true);
  });

  it("is deterministic whatever the input order", () => {
    expect(assignGroups([...TARGETS].reverse(), 8, 4)).toEqual(groups);
    const shuffled = [TARGETS[3]!, TARGETS[0]!, TARGETS[5]!, TARGETS[1]!, TARGETS[4]!, TARGETS[2]!];
    expect(assignGroups(shuffled, 8, 4)).toEqual(groups);
  });

  it("uses every target once per group when there are fewer targets than members", () => {
    const two = TARGETS.slice(0, 2);
    const out = assignGroups(two, 3, 4);
    expect(out).toHaveLength(3);
    for (const g of out) expect([...g].sort()).toEqual(["t2", "t5"]);
    expect(assignGroups([], 2, 4)).toEqual([[], []]);
  });
});

describe("selectReplicas", () => {
  const offer = (id: string, location: string, start: number): Offer => ({ id, location, start });

  it("prefers distinct zones over an earlier window", () => {
    const offers = [offer("a1", loc("a", 1), 0), offer("a2", loc("a", 2), 1), offer("b1", loc("b", 1), 50), offer("c1", loc("c", 1), 90)];
    expect(selectReplicas([], offers, 3).map((o) => o.id)).toEqual(["a1", "b1", "c1"]);
  });

  it("breaks ties between equally correlated offers by earliest window", () => {
    const offers = [offer("b-late", loc("b", 1), 30), offer("b-early", loc("b", 2), 10), offer("c", loc("c", 1), 20)];
    expect(selectReplicas([loc("a", 1)], offers, 1).map((o) => o.id)).toEqual(["b-early"]);
  });

  it("counts holders as already chosen: avoids their zones", () => {
    // a-disk1 shares a host with a holder; b1 only a zone.
    const offers = [offer("a-disk1", loc("a", 1, 1), 0), offer("b1", loc("b", 1), 5), offer("c1", loc("c", 1), 9)];
    expect(selectReplicas([loc("a", 1), loc("b", 2)], offers, 1).map((o) => o.id)).toEqual(["c1"]);
    expect(selectReplicas([loc("a", 1), loc("b", 2)], offers, 2).map((o) => o.id)).toEqual(["c1", "b1"]);
  });

  it("returns what is available when fewer offers than needed, and nothing for need 0", () => {
    const offers = [offer("a1", loc("a", 1), 0)];
    expect(selectReplicas([], offers, 3).map((o) => o.id)).toEqual(["a1"]);
    expect(selectReplicas([], offers, 0)).toEqual([]);
    expect(offers).toHaveLength(1);
  });
});

describe("replacementFor", () => {
  const at = (id: string, location: string): Placeable => ({ id, location });
  const staying = [at("b", "/r/z1/k1/h1/d0"), at("c", "/r/z2/k1/h1/d0"), at("d", "/r/z3/k1/h1/d0")];

  it("takes the candidate least correlated with the members that stay", () => {
    const candidates = [at("e", "/r/z1/k1/h2/d0"), at("f", "/r/z4/k1/h1/d0")];
    expect(replacementFor(0, staying, candidates, new Map())?.id).toBe("f");
  });

  it("breaks a tie in correlation by load", () => {
    const candidates = [at("e", "/r/z4/k1/h1/d0"), at("f", "/r/z5/k1/h1/d0")];
    expect(replacementFor(0, staying, candidates, new Map([["e", 5], ["f", 1]]))?.id).toBe("f");
    expect(replacementFor(0, staying, candidates, new Map([["e", 1], ["f", 5]]))?.id).toBe("e");
  });

  it("answers null when no target is left to take the place", () => {
    expect(replacementFor(0, staying, [], new Map())).toBeNull();
  });
});

describe("nearestFirst", () => {
  const at = (id: string, location: string) => ({ id, location });
  const replicas = [at("us1", "/us/z1/r1/h1/d0"), at("eu1", "/eu/z1/r1/h1/d0"), at("us2", "/us/z2/r1/h1/d0"), at("eu2", "/eu/z2/r1/h1/d0")];

  it("puts the replicas sharing the longest path with the reader first, keeping the given order among equals", () => {
    expect(nearestFirst(replicas, "/eu").map((r) => r.id)).toEqual(["eu1", "eu2", "us1", "us2"]);
    expect(nearestFirst(replicas, "/eu/z2/r9").map((r) => r.id)).toEqual(["eu2", "eu1", "us1", "us2"]);
    expect(nearestFirst(replicas, "/ap").map((r) => r.id)).toEqual(["us1", "eu1", "us2", "eu2"]);
  });

  it("leaves the order alone without a reader location", () => {
    expect(nearestFirst(replicas, null)).toEqual(replicas);
  });
});
