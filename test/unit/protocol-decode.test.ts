// Control messages as each side takes them (common/wire-decode.ts): what a receiver computes
// with, looks up by, walks or files under a name is checked where the message arrives, and no
// message at all, however mangled, makes a decoder throw.

import { describe, expect, it } from "vitest";
import { decodeFromCluster, decodeToCluster, decodeToGroup, decodeToTarget } from "../../common/wire-decode.ts";

const decode = (v: unknown) => decodeToGroup(typeof v === "string" ? v : JSON.stringify(v));

describe("decodeToGroup", () => {
  it("takes well-formed messages as they are", () => {
    for (const m of [
      { t: "saved", txn: 3, items: [0, 2], credit: 4096 },
      { t: "saved", txn: 3, item: 1 },
      { t: "credit", bytes: 0 },
      { t: "save-failed", txn: 1, item: 0, reason: "disk full" },
      { t: "get-failed", txn: 1, reason: "missing" },
      { t: "bid-get", txn: 1, have: true, size: 5, queue: 0 },
      { t: "hello", id: "t1", location: "dc/r" },
    ]) {
      expect(decode(m)).toEqual(m);
    }
  });

  it("refuses amounts that would poison credit or a backlog", () => {
    // JSON has no NaN: a target's NaN arrives as null, an overflow as Infinity.
    for (const credit of [-1, null, "5", "1e999"]) {
      const text = `{"t":"saved","txn":1,"items":[0],"credit":${credit === "1e999" ? credit : JSON.stringify(credit)}}`;
      expect(decode(text)).toEqual({ malformed: '"saved": bad credit' });
    }
    expect(decode({ t: "credit", bytes: -4096 })).toHaveProperty("malformed");
    expect(decode({ t: "bid-get", txn: 1, have: true, size: 5, queue: null })).toHaveProperty("malformed");
  });

  it("refuses item lists and numbers that are not indexes", () => {
    for (const items of ["0", [0, -1], [0.5], { 0: 1 }, null]) expect(decode({ t: "saved", txn: 1, items })).toEqual({ malformed: '"saved": bad items' });
    expect(decode({ t: "save-failed", txn: 1, reason: "x" })).toHaveProperty("malformed");
    expect(decode({ t: "chain-broken", txn: 1, item: "0", to: "p", reason: "x" })).toHaveProperty("malformed");
    expect(decode({ t: "saved", items: [0] })).toEqual({ malformed: '"saved": bad txn' });
    // A proof of possession is a digest or nothing: anything else would be compared as if it were one.
    expect(decode({ t: "bid-put", txn: 1, bids: [{ item: 0, bid: "have", proof: 7 }] })).toEqual({ malformed: '"bid-put": bad bids' });
  });

  it("refuses what is not a message at all", () => {
    for (const text of ["", "{", "[]", "null", "7", '{"t":"nonsense","txn":1}']) expect(decode(text)).toHaveProperty("malformed");
  });
});

const CHID = "a".repeat(64);
const NHID = "b".repeat(64);
const UVID = "0192a3b4c5d6000001000a";

const toTarget = (v: unknown) => decodeToTarget(JSON.stringify(v));
const VALID_TO_TARGET: Record<string, unknown>[] = [
  { t: "propose-put", txn: 1, items: [{ kind: "chunk", chid: CHID, size: 10 }], nonce: "0f".repeat(16), repair: true },
  { t: "put-eager", txn: 2, items: [{ kind: "chunk", chid: CHID, size: 10 }, { kind: "vm", chid: CHID, size: 5, nhid: NHID, uvid: UVID }], at: [3, 5], chains: [{ forward: ["127.0.0.1:9"], chain: "c1" }, null] },
  { t: "select-put", txn: 1, items: [0], forward: ["127.0.0.1:9"], chain: "c1" },
  { t: "release", txn: 1 },
  { t: "propose-get", txn: 1, chid: CHID },
  { t: "propose-get-vm", txn: 1, nhid: NHID, uvid: null },
  { t: "select-get", txn: 1, credit: 1024 },
  { t: "fetch", txn: 1, ref: { kind: "chunk", chid: CHID }, credit: 1024 },
  { t: "fetch-many", txn: 1, refs: [{ kind: "vm", chid: CHID, nhid: NHID, uvid: UVID }], credit: 1024 },
  { t: "bad-copy", ref: { kind: "chunk", chid: CHID } },
  { t: "verify", txn: 1, refs: [] },
  { t: "inventory", txn: 1, group: 3, groupCount: 8, after: null, limit: 100, since: 5 },
  { t: "reclaim", refs: [{ kind: "chunk", chid: CHID }] },
  { t: "drained" },
  { t: "peers", peers: [{ address: "127.0.0.1:9", cert: "c".repeat(64) }] },
];

describe("decodeToTarget", () => {
  it("takes the well-formed message of every kind as it is", () => {
    for (const m of VALID_TO_TARGET) expect(toTarget(m), String(m.t)).toEqual(m);
  });

  it("refuses names that are not names, and lists that do not line up", () => {
    expect(toTarget({ t: "propose-get", txn: 1, chid: "../../etc/passwd" })).toEqual({ malformed: '"propose-get": bad chid' });
    expect(toTarget({ t: "fetch", txn: 1, ref: { kind: "vm", chid: CHID }, credit: 1 })).toEqual({ malformed: '"fetch": bad ref' });
    expect(toTarget({ t: "propose-put", txn: 1, items: [{ kind: "chunk", chid: CHID, size: -1 }] })).toEqual({ malformed: '"propose-put": bad items' });
    const eager = VALID_TO_TARGET[1]!;
    expect(toTarget({ ...eager, at: [3] })).toEqual({ malformed: '"put-eager": bad at' });
    expect(toTarget({ ...eager, at: [3, 3] })).toEqual({ malformed: '"put-eager": bad at' });
    expect(toTarget({ ...eager, chains: [null] })).toEqual({ malformed: '"put-eager": bad chains' });
    expect(toTarget({ t: "inventory", txn: 1, group: 8, groupCount: 8, after: null, limit: 1 })).toEqual({ malformed: '"inventory": bad group' });
    expect(toTarget({ t: "select-get", txn: 1, credit: -5 })).toEqual({ malformed: '"select-get": bad credit' });
    expect(toTarget({ t: "release" })).toEqual({ malformed: '"release": bad txn' });
    expect(toTarget({ ...VALID_TO_TARGET[0]!, nonce: "short" })).toEqual({ malformed: '"propose-put": bad nonce' });
    // A roster names dialable peers by certificate fingerprints: nothing else, and not without end.
    expect(toTarget({ t: "peers", peers: [{ address: "127.0.0.1:9", cert: "not-a-fingerprint" }] })).toEqual({ malformed: '"peers": bad peers' });
    expect(toTarget({ t: "peers", peers: [{ address: "h:99999", cert: "c".repeat(64) }] })).toEqual({ malformed: '"peers": bad peers' });
    expect(toTarget({ t: "peers", peers: Array.from({ length: 257 }, (_, i) => ({ address: `10.0.${i >> 8}.${i & 255}:1`, cert: "c".repeat(64) })) })).toEqual({ malformed: '"peers": bad peers' });
  });
});

describe("decodeFromCluster", () => {
  it("takes a membership, with groups held under an older count, and refuses groups that are no numbers", () => {
    expect(decodeFromCluster(JSON.stringify({ t: "membership", epoch: 3, groupCount: 8, groups: [0, 7] }))).toEqual({ t: "membership", epoch: 3, groupCount: 8, groups: [0, 7] });
    // A target that held data for group 11 under 16 groups is still told of it after a change to 8.
    expect(decodeFromCluster(JSON.stringify({ t: "membership", epoch: 3, groupCount: 8, groups: [2, 11] }))).not.toHaveProperty("malformed");
    expect(decodeFromCluster(JSON.stringify({ t: "membership", epoch: 3, groupCount: 8, groups: [-1] }))).toEqual({ malformed: '"membership": bad groups' });
    expect(decodeFromCluster(JSON.stringify({ t: "membership", epoch: 3, groupCount: 0, groups: [] }))).toHaveProperty("malformed");
  });
});

describe("decodeToCluster", () => {
  const register = { t: "register", id: "t-1", location: "/eu/zone-a/rack-1/host-1/disk-0", capacity: 100, free: 50, chunks: 3, bytes: 40, held: [0, 3] };
  const heartbeat = { t: "heartbeat", free: 50, chunks: 3, bytes: 40, queue: 0, held: { added: [1], dropped: [] } };
  it("takes a register and a heartbeat as they are", () => {
    expect(decodeToCluster(JSON.stringify(register))).toEqual(register);
    expect(decodeToCluster(JSON.stringify({ ...register, draining: true }))).toEqual({ ...register, draining: true });
    expect(decodeToCluster(JSON.stringify(heartbeat))).toEqual(heartbeat);
    const { held: _none, ...plain } = heartbeat;
    expect(decodeToCluster(JSON.stringify(plain))).toEqual(plain);
  });
  it("refuses what would be stored and then break every group's view: held null, odd locations, poisoned amounts", () => {
    expect(decodeToCluster(JSON.stringify({ ...register, held: null }))).toEqual({ malformed: '"register": bad held' });
    expect(decodeToCluster(JSON.stringify({ ...register, held: ["x"] }))).toHaveProperty("malformed");
    expect(decodeToCluster(JSON.stringify({ ...register, location: "eu/zone a" }))).toEqual({ malformed: '"register": bad location' });
    expect(decodeToCluster(JSON.stringify({ ...register, location: "/a/../b" }))).not.toHaveProperty("malformed");
    expect(decodeToCluster(JSON.stringify({ ...register, free: -1 }))).toEqual({ malformed: '"register": bad free' });
    expect(decodeToCluster(JSON.stringify({ ...register, draining: "yes" }))).toHaveProperty("malformed");
    expect(decodeToCluster(JSON.stringify({ ...heartbeat, held: { added: [1] } }))).toEqual({ malformed: '"heartbeat": bad held' });
    expect(decodeToCluster(JSON.stringify({ ...heartbeat, t: "membership" }))).toHaveProperty("malformed");
  });
});

describe("every decoder, fuzzed", () => {
  // xorshift32: the same mutations every run, so a failure reproduces.
  let s = 0x9e3779b9;
  const next = (n: number) => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) % n;
  };
  const WEIRD: unknown[] = [null, -1, 0.5, 1e308, "x", "", [], {}, [null], [-1], { kind: "vm" }, true, CHID, 2 ** 53];
  function mutate(v: unknown, depth: number): unknown {
    if (depth > 0 && Array.isArray(v) && v.length > 0) {
      const c = [...v];
      const i = next(c.length);
      c[i] = mutate(c[i], depth - 1);
      return c;
    }
    if (depth > 0 && typeof v === "object" && v !== null) {
      const c: Record<string, unknown> = { ...(v as Record<string, unknown>) };
      const keys = Object.keys(c);
      const k = keys[next(keys.length)]!;
      if (next(5) === 0) delete c[k];
      else c[k] = mutate(c[k], depth - 1);
      return c;
    }
    return WEIRD[next(WEIRD.length)];
  }
  const SAMPLES_TO_GROUP: Record<string, unknown>[] = [
    { t: "saved", txn: 3, items: [0, 2], credit: 4096 },
    { t: "bid-put", txn: 1, bids: [{ item: 0, bid: "accept", window: [1, 2] }, { item: 1, bid: "refuse", reason: "full" }, { item: 2, bid: "have", proof: "e".repeat(64) }] },
    { t: "inventory-page", txn: 1, refs: [{ kind: "chunk", chid: CHID }], next: null },
    { t: "reclaimed", refs: [{ kind: "chunk", chid: CHID }], bytes: 10 },
    { t: "bid-get-vm", txn: 1, uvid: UVID, chid: CHID, size: 3 },
  ];

  it("returns a message or a reason for 20,000 mangled messages, never throws", () => {
    const decoders: [(text: string) => object, Record<string, unknown>[]][] = [
      [decodeToTarget, VALID_TO_TARGET],
      [decodeToGroup, SAMPLES_TO_GROUP],
      [decodeFromCluster, [{ t: "membership", epoch: 1, groupCount: 8, groups: [1, 2] }]],
      [decodeToCluster, [
        { t: "register", id: "t-1", location: "/a/b", capacity: 1, free: 1, chunks: 0, bytes: 0, held: [1] },
        { t: "heartbeat", free: 1, chunks: 0, bytes: 0, queue: 0, held: { added: [1], dropped: [2] } },
      ]],
    ];
    let refused = 0;
    for (let i = 0; i < 20_000; i++) {
      const [decode, samples] = decoders[i % decoders.length]!;
      const m = mutate(samples[next(samples.length)], 1 + next(4));
      const text = next(50) === 0 ? JSON.stringify(m).slice(0, next(40)) : JSON.stringify(m);
      const got = decode(text);
      expect(typeof got).toBe("object");
      if ("malformed" in got) refused++;
    }
    // Most mutations break something a receiver relies on; a decoder that took them all checks nothing.
    expect(refused).toBeGreaterThan(10_000);
  });
});
