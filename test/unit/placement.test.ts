import { describe, expect, it } from "vitest";
import { correlationFrom, DEFAULT_BY_DEPTH, depthCorrelation, distinctDomains } from "../../common/correlation.ts";
import { underReplicated } from "../../workers/negotiating-group/rereplicate.ts";
import { assignGroups, copysetCount, correlation, joinPlan, nearestFirst, placementWarnings, replacementFor, selectReplicas, setRisk, sharedDepth, type Offer, type Placeable } from "../../common/placement.ts";

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

  it("is the most correlated pair against anything chosen (by shared depth by default), and -1 against nothing", () => {
    expect(correlation(loc("a", 1), [])).toBe(-1);
    expect(correlation(loc("a", 1), [loc("b", 1), loc("a", 2)])).toBe(DEFAULT_BY_DEPTH[3]);
    expect(correlation(loc("a", 1), [loc("b", 1), loc("c", 2)])).toBe(DEFAULT_BY_DEPTH[1]);
    expect(depthCorrelation(loc("a", 1, 0), loc("a", 1, 1))).toBe(DEFAULT_BY_DEPTH[4]);
    expect(depthCorrelation(loc("a", 1), loc("a", 1))).toBe(1);
    expect(depthCorrelation("/x/y", "/z/y")).toBe(0);
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
    expect(replacementFor(0, staying, candidates, { load: new Map() })?.id).toBe("f");
  });

  it("breaks a tie in correlation by load", () => {
    const candidates = [at("e", "/r/z4/k1/h1/d0"), at("f", "/r/z5/k1/h1/d0")];
    expect(replacementFor(0, staying, candidates, { load: new Map([["e", 5], ["f", 1]]) })?.id).toBe("f");
    expect(replacementFor(0, staying, candidates, { load: new Map([["e", 1], ["f", 5]]) })?.id).toBe("e");
  });

  it("answers null when no target is left to take the place", () => {
    expect(replacementFor(0, staying, [], { load: new Map() })).toBeNull();
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

describe("the operator's correlation table", () => {
  const model = correlationFrom(
    JSON.stringify({
      pairs: [
        { a: "/us/zone-a/spot", p: 0.6 },
        { a: "/us/zone-a", b: "/us/zone-b", p: 0.3 },
        { a: "/us/zone-a/spot/host-9", b: "/us/zone-b", p: 0.1 },
      ],
    }),
  );

  it("overrides pairs under its prefixes, either way round, the most specific winning", () => {
    expect(model("/us/zone-a/spot/host-1/d0", "/us/zone-a/spot/host-2/d0")).toBe(0.6);
    expect(model("/us/zone-a/r1/h1/d0", "/us/zone-b/r1/h1/d0")).toBe(0.3);
    expect(model("/us/zone-b/r1/h1/d0", "/us/zone-a/r1/h1/d0")).toBe(0.3);
    expect(model("/us/zone-a/spot/host-9/d0", "/us/zone-b/r1/h1/d0")).toBe(0.1);
  });

  it("falls back to the shared depth elsewhere, with its own depth figures if given", () => {
    expect(model("/us/zone-a/r1/h1/d0", "/us/zone-c/r1/h1/d0")).toBe(DEFAULT_BY_DEPTH[1]);
    const flat = correlationFrom(JSON.stringify({ byDepth: [0, 0.5] }));
    expect(flat("/a/b", "/a/c")).toBe(0.5);
    expect(flat("/a/b/c/d", "/a/b/c/d")).toBe(0.5);
    expect(correlationFrom("")).toBe(depthCorrelation);
  });

  it("says what is wrong with a malformed table", () => {
    expect(() => correlationFrom("{")).toThrow(/not JSON/);
    expect(() => correlationFrom(JSON.stringify({ pairs: [{ a: "/x", p: 2 }] }))).toThrow(/pairs\[0\]\.p must be a number from 0 to 1/);
    expect(() => correlationFrom(JSON.stringify({ pairs: [{ p: 0.1 }] }))).toThrow(/pairs\[0\] needs "a"/);
    expect(() => correlationFrom("[]")).toThrow(/JSON object/);
  });

  it("steers replica selection: a pair the table calls correlated is avoided", () => {
    const offers = [
      { id: "spot2", location: "/us/zone-a/spot/host-2/d0", start: 0 },
      { id: "b1", location: "/us/zone-b/r1/h1/d0", start: 5 },
    ];
    // By depth the other zone (region shared) beats the same zone's spot rack; the first table
    // agrees, more strongly; a table that calls the two zones one risk reverses the choice.
    expect(selectReplicas(["/us/zone-a/spot/host-1/d0"], offers, 1, depthCorrelation)[0]!.id).toBe("b1");
    expect(selectReplicas(["/us/zone-a/spot/host-1/d0"], offers, 1, model)[0]!.id).toBe("b1");
    const trusting = correlationFrom(JSON.stringify({ pairs: [{ a: "/us/zone-a", b: "/us/zone-b", p: 0.9 }] }));
    expect(selectReplicas(["/us/zone-a/spot/host-1/d0"], offers, 1, trusting)[0]!.id).toBe("spot2");
  });
});

describe("copysets", () => {
  // Twelve hosts over three zones and four racks.
  const many: Placeable[] = Array.from({ length: 12 }, (_, i) => ({ id: `t${String(i).padStart(2, "0")}`, location: `/r/zone-${i % 3}/rack-${Math.floor(i / 3) % 4}/host-${i}/d0` }));
  const groups = assignGroups(many, 16, 4);

  it("reuses member sets: few distinct sets of members, and so few sets of R targets holding data together", () => {
    expect(new Set(groups.map((g) => [...g].sort().join())).size).toBeLessThanOrEqual(4);
    // Sixteen groups of four, each with its own members, could make 64 sets of three.
    expect(copysetCount(groups, 3)).toBeLessThanOrEqual(16);
  });

  it("keeps every target in use and the load even", () => {
    const load = new Map<string, number>();
    for (const g of groups) for (const id of g) load.set(id, (load.get(id) ?? 0) + 1);
    expect(load.size).toBe(12);
    expect(Math.max(...load.values()) - Math.min(...load.values())).toBeLessThanOrEqual(2);
  });

  it("never trades safety for reuse: every group is as spread as a fresh pick (three zones)", () => {
    const zone = new Map(many.map((t) => [t.id, t.location.split("/")[2]]));
    for (const g of groups) expect(new Set(g.map((id) => zone.get(id))).size).toBe(3);
  });

  it("counts the distinct R-subsets of all groups' members", () => {
    expect(copysetCount([["a", "b", "c", "d"]], 3)).toBe(4);
    expect(copysetCount([["a", "b", "c", "d"], ["d", "c", "b", "a"]], 3)).toBe(4);
    expect(copysetCount([["a", "b", "c", "d"], ["a", "b", "c", "e"]], 3)).toBe(7);
    expect(copysetCount([["a", "b"]], 3)).toBe(1);
  });
});

describe("failure domains", () => {
  const host = (h: number, d: number) => `/r/zone-a/rack-1/host-${h}/disk-${d}`;

  it("counts copies on one host's devices as one domain", () => {
    expect(distinctDomains([host(1, 0), host(1, 1), host(2, 0)], depthCorrelation)).toBe(2);
    expect(distinctDomains([host(1, 0), host(2, 0), host(3, 0)], depthCorrelation)).toBe(3);
    expect(distinctDomains([], depthCorrelation)).toBe(0);
    expect(setRisk([host(1, 0), host(1, 1)])[0]).toBe(DEFAULT_BY_DEPTH[4]);
  });

  it("finds items short in domains as well as in copies, counting only members' copies", () => {
    const ref = (c: string) => ({ kind: "chunk" as const, chid: c as never });
    const holdings = [
      { refs: [ref("x"), ref("y"), ref("z")], id: "m0" as never, location: host(1, 0), counts: true },
      { refs: [ref("x"), ref("y")], id: "m1" as never, location: host(1, 1), counts: true },
      { refs: [ref("y"), ref("z")], id: "m2" as never, location: host(2, 0), counts: true },
      { refs: [ref("x"), ref("z")], id: "m3" as never, location: host(3, 0), counts: false },
    ];
    // x: two copies, one host (the third is on a draining target); y: two hosts; z: two hosts.
    expect(underReplicated(holdings, 2, 2, depthCorrelation).map((s) => s.ref.chid)).toEqual(["x"]);
    // With the members on one host only, one domain is all that can be reached: raw copies count.
    expect(underReplicated(holdings, 2, 1, depthCorrelation)).toEqual([]);
    expect(underReplicated(holdings, 3, 3, depthCorrelation).map((s) => [s.ref.chid, s.holders])).toEqual([["x", 2], ["y", 3], ["z", 2]]);
  });

  it("warns about groups whose members cannot keep R copies on distinct hosts, and only those", () => {
    const at = (id: string, location: string): Placeable => ({ id, location });
    const whole = [at("a", host(1, 0)), at("b", host(2, 0)), at("c", host(3, 0)), at("d", host(3, 1))];
    const twoHosts = [at("a", host(1, 0)), at("b", host(1, 1)), at("c", host(2, 0)), at("d", host(2, 1))];
    const w = placementWarnings([whole, twoHosts], 3);
    expect(w).toHaveLength(1);
    expect(w[0]!.group).toBe(1);
    expect(w[0]!.p).toBe(DEFAULT_BY_DEPTH[4]);
  });
});

describe("joinPlan", () => {
  const sized = (id: string, location: string, capacity = 100) => ({ id, location, capacity });
  const three = [sized("a", "/z/r1/h1/d0"), sized("b", "/z/r2/h1/d0"), sized("c", "/z/r3/h1/d0")];
  const full = new Map(Array.from({ length: 8 }, (_, g) => [g, ["a", "b", "c"]] as const));
  const apply = (groups: ReadonlyMap<number, readonly string[]>, moves: ReturnType<typeof joinPlan>) => {
    const out = new Map([...groups].map(([g, m]) => [g, [...m]]));
    for (const mv of moves) {
      const m = out.get(mv.group)!;
      if (mv.out === null) m.push(mv.into);
      else m[m.indexOf(mv.out)] = mv.into;
    }
    return out;
  };
  const loads = (groups: ReadonlyMap<number, readonly string[]>) => {
    const l = new Map<string, number>();
    for (const m of groups.values()) for (const id of m) l.set(id, (l.get(id) ?? 0) + 1);
    return l;
  };

  it("takes its share of places from the members above theirs, one place per group, and changes no other group", () => {
    const targets = [...three, sized("d", "/z/r4/h1/d0")];
    const moves = joinPlan({ groups: full, targets, newcomer: "d", perGroup: 3 });
    expect(moves).toHaveLength(6);
    expect(new Set(moves.map((m) => m.group)).size).toBe(6);
    const after = apply(full, moves);
    expect([...loads(after).values()]).toEqual([6, 6, 6, 6]);
    for (const [g, m] of after) if (!moves.some((mv) => mv.group === g)) expect(m).toEqual(["a", "b", "c"]);
    for (const m of after.values()) expect(new Set(m).size).toBe(3);
  });

  it("fills groups short of members before taking anyone's place", () => {
    const two = new Map(Array.from({ length: 4 }, (_, g) => [g, ["a", "b"]] as const));
    const moves = joinPlan({ groups: two, targets: three, newcomer: "c", perGroup: 3 });
    expect(moves).toEqual([0, 1, 2, 3].map((g) => ({ group: g, out: null, into: "c" })));
  });

  it("weighs shares by capacity: a target twice as large takes twice the places", () => {
    const targets = [...three, sized("d", "/z/r4/h1/d0", 200)];
    const after = apply(full, joinPlan({ groups: full, targets, newcomer: "d", perGroup: 3 }));
    // 24 places, d's share 24 × 200/500 = 9.6: at most one per group, so all 8.
    expect(loads(after).get("d")).toBe(8);
    const small = [...three, sized("d", "/z/r4/h1/d0", 20)];
    expect(loads(apply(full, joinPlan({ groups: full, targets: small, newcomer: "d", perGroup: 3 }))).get("d")).toBe(1);
  });

  it("takes no place that leaves a group more correlated, even below its share", () => {
    // d shares a host with a: it may take only a's places (a group with both would have two copies on one host).
    const targets = [...three, sized("d", "/z/r1/h1/d1")];
    const moves = joinPlan({ groups: full, targets, newcomer: "d", perGroup: 3 });
    expect(moves).toHaveLength(4);
    for (const mv of moves) expect(mv.out).toBe("a");
  });

  it("takes nothing from a cluster already at its share", () => {
    const targets = [...three, sized("d", "/z/r4/h1/d0", 1)];
    expect(joinPlan({ groups: full, targets, newcomer: "d", perGroup: 3 })).toEqual([]);
  });
});

describe("joinPlan with members down", () => {
  it("takes no place from a member that is down: a restart moves nothing", () => {
    const targets = [
      { id: "a", location: "/z/r1/h1/d0", capacity: 100 },
      { id: "b", location: "/z/r2/h1/d0", capacity: 100 },
      { id: "c", location: "/z/r3/h1/d0", capacity: 100 },
      { id: "d", location: "/z/r4/h1/d0", capacity: 100 },
    ];
    const groups = new Map(Array.from({ length: 8 }, (_, g) => [g, ["a", "b", "c"]] as const));
    const moves = joinPlan({ groups, targets, newcomer: "d", perGroup: 3, givers: new Set(["b", "c", "d"]) });
    expect(moves.length).toBeGreaterThan(0);
    for (const mv of moves) expect(mv.out).not.toBe("a");
  });
});
