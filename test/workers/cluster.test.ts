import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Cluster } from "../../workers/cluster/cluster.ts";
import type { HeartbeatMsg } from "../../common/protocol.ts";

let n = 0;
// A fresh cluster per test: storage is not assumed to be reset between tests.
const freshCluster = () => env.CLUSTER.get(env.CLUSTER.idFromName(`cluster-test-${n++}`));

const loc = (zone: string, host: number) => `/local/zone-${zone}/rack-1/host-${host}/disk-0`;
const TARGETS = [
  { id: "t-a1", location: loc("a", 1) },
  { id: "t-a2", location: loc("a", 2) },
  { id: "t-b1", location: loc("b", 1) },
  { id: "t-b2", location: loc("b", 2) },
  { id: "t-c1", location: loc("c", 1) },
  { id: "t-c2", location: loc("c", 2) },
];

/** Store targets as a first registration would, then recompute membership. */
function register(stub: DurableObjectStub<Cluster>, held: Record<string, number[]> = {}, targets = TARGETS): Promise<void> {
  return runInDurableObject(stub, (instance, state) => {
    const now = Date.now();
    for (const t of targets) {
      state.storage.sql.exec(
        `INSERT INTO targets (id, location, capacity, free, chunks, bytes, held, registered, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        t.id, t.location, 1 << 30, 1 << 30, 0, 0, JSON.stringify(held[t.id] ?? []), now, now,
      );
    }
    // Private: registration is a WebSocket message; call what it calls.
    (instance as unknown as { recomputeMembership(): void }).recomputeMembership();
  });
}

describe("Cluster.groupView", () => {
  it("has no writers or readers on an empty cluster", async () => {
    const cluster = freshCluster();
    expect(await cluster.groupView(0)).toEqual({ epoch: 0, writers: [], readers: [], revoked: [], layout: [Number(env.GROUP_COUNT)] });
    expect(await cluster.groupView(7)).toEqual({ epoch: 0, writers: [], readers: [], revoked: [], layout: [Number(env.GROUP_COUNT)] });
  });

  it("returns the assigned members as writers, with their locations", async () => {
    const cluster = freshCluster();
    await register(cluster);
    const locationOf = new Map(TARGETS.map((t) => [t.id, t.location]));
    const membership = await runInDurableObject(cluster, (_i, state) =>
      new Map(state.storage.sql.exec("SELECT grp, members FROM membership").toArray().map((r) => [Number(r.grp), JSON.parse(String(r.members)) as string[]])),
    );
    // GROUP_COUNT and GROUP_MEMBERS in wrangler.toml.
    expect(membership.size).toBe(8);
    for (let g = 0; g < 8; g++) {
      const view = await cluster.groupView(g);
      expect(view.epoch).toBe(1);
      expect(view.writers.map((w) => w.id)).toEqual(membership.get(g));
      expect(view.writers).toHaveLength(4);
      for (const w of view.writers) expect(w.location).toBe(locationOf.get(w.id));
      expect(new Set(view.writers.map((w) => w.location.split("/")[2])).size).toBe(3);
      // Nobody holds older data yet: readers are exactly the writers.
      expect(view.readers).toEqual(view.writers);
    }
  });

  it("adds targets that hold data for the group from an earlier membership to its readers only", async () => {
    const cluster = freshCluster();
    await register(cluster);
    const before = await cluster.groupView(5);
    const outsider = TARGETS.find((t) => !before.writers.some((w) => w.id === t.id))!;
    const insider = before.writers[0]!;
    // As a heartbeat would report it.
    await runInDurableObject(cluster, (_i, state) => {
      state.storage.sql.exec("UPDATE targets SET held = ? WHERE id = ?", JSON.stringify([5, 6]), outsider.id);
      state.storage.sql.exec("UPDATE targets SET held = ? WHERE id = ?", JSON.stringify([5]), insider.id);
    });
    const view = await cluster.groupView(5);
    expect(view.writers).toEqual(before.writers);
    expect(view.readers.map((r) => r.id).sort()).toEqual([...before.writers.map((w) => w.id), outsider.id].sort());
    expect(view.readers.find((r) => r.id === outsider.id)?.location).toBe(outsider.location);
    // A group the outsider does not hold is unaffected.
    const other = await cluster.groupView(4);
    expect(other.readers.map((r) => r.id).sort()).toEqual(other.writers.map((w) => w.id).sort());
  });

  it("reports held data even for a group with no members", async () => {
    const cluster = freshCluster();
    await register(cluster, { "t-a1": [3] });
    await runInDurableObject(cluster, (_i, state) => state.storage.sql.exec("DELETE FROM membership WHERE grp = 3"));
    const view = await cluster.groupView(3);
    expect(view.writers).toEqual([]);
    expect(view.readers).toEqual([{ id: "t-a1", location: loc("a", 1) }]);
  });
});

const membershipOf = (stub: DurableObjectStub<Cluster>) =>
  runInDurableObject(stub, (_i, state) =>
    new Map(state.storage.sql.exec("SELECT grp, members FROM membership").toArray().map((r) => [Number(r.grp), JSON.parse(String(r.members)) as string[]])),
  );

describe("Cluster placement", () => {
  it("reports few copysets and no warning when every group spans three zones", async () => {
    const cluster = freshCluster();
    await register(cluster);
    const status = await cluster.status();
    expect(status.warnings).toEqual([]);
    // Eight groups of four reuse member sets: at most 3 distinct sets of four, 4 sets of three each.
    expect(status.copysets).toBeGreaterThan(0);
    expect(status.copysets).toBeLessThanOrEqual(12);
  });

  it("warns, group by group, when the targets are on too few hosts for R copies on distinct ones", async () => {
    const cluster = freshCluster();
    const twoHosts = [1, 2].flatMap((h) => [0, 1, 2].map((d) => ({ id: `t-h${h}d${d}`, location: `/local/zone-a/rack-1/host-${h}/disk-${d}` })));
    await register(cluster, {}, twoHosts);
    const status = await cluster.status();
    expect(status.warnings.map((w) => w.group).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    for (const w of status.warnings) expect(w.pair[0]!.split("/")[4]).toBe(w.pair[1]!.split("/")[4]);
  });

  it("gives groups that shared their members the same replacement for a dead one, so they still share them", async () => {
    const cluster = freshCluster();
    // Two spares equally good: spreading by load alone would give each group a different one.
    const spares = [{ id: "t-d1", location: loc("d", 1) }, { id: "t-e1", location: loc("e", 1) }];
    await register(cluster);
    const before = await membershipOf(cluster);
    const dead = "t-a1";
    await runInDurableObject(cluster, (instance) => {
      const live = [...TARGETS.filter((t) => t.id !== dead), ...spares];
      (instance as unknown as { replace(dead: string[], live: { id: string; location: string }[]): void }).replace([dead], live);
    });
    const after = await membershipOf(cluster);
    const key = (m: string[]) => [...m].sort().join();
    const shared = [...before.values()].filter((m) => m.includes(dead) && [...before.values()].filter((n) => key(n) === key(m)).length > 1);
    expect(shared.length).toBeGreaterThan(0);
    for (const [g, m] of before) {
      expect(after.get(g)).not.toContain(dead);
      for (const [h, n] of before) if (h !== g && key(m) === key(n)) expect(key(after.get(g)!)).toBe(key(after.get(h)!));
    }
  });
});

describe("Cluster heartbeats", () => {
  /** What the hibernation API hands the object: only the attachment is read. */
  const socketOf = (id: string, location: string) => ({ deserializeAttachment: () => ({ id, location }), close() {}, send() {} }) as unknown as WebSocket;

  it("applies a heartbeat's increments to the registered report: counters, and held groups added and dropped", async () => {
    const probe = freshCluster();
    await register(probe);
    // Two groups t-a1 is not a member of, so it is a reader of them only through what it holds.
    const [x, y] = [...(await membershipOf(probe))].filter(([, m]) => !m.includes("t-a1")).map(([g]) => g);
    const cluster = freshCluster();
    await register(cluster, { "t-a1": [x!] });
    const beat = async (msg: HeartbeatMsg) => runInDurableObject(cluster, (instance: Cluster) => instance.webSocketMessage(socketOf("t-a1", loc("a", 1)), JSON.stringify(msg)));
    const row = () => runInDurableObject(cluster, (_i, state) => state.storage.sql.exec("SELECT chunks, bytes, held FROM targets WHERE id = 't-a1'").one());
    const readsFor = async (g: number) => (await cluster.groupView(g)).readers.some((r) => r.id === "t-a1");
    await beat({ t: "heartbeat", free: 1, chunks: 7, bytes: 700, queue: 0 });
    expect(await row()).toEqual({ chunks: 7, bytes: 700, held: JSON.stringify([x]) });
    expect([await readsFor(x!), await readsFor(y!)]).toEqual([true, false]);
    await beat({ t: "heartbeat", free: 1, chunks: 8, bytes: 800, queue: 0, held: { added: [y!], dropped: [x!] } });
    expect(await row()).toEqual({ chunks: 8, bytes: 800, held: JSON.stringify([y]) });
    expect([await readsFor(x!), await readsFor(y!)]).toEqual([false, true]);
  });

  it("takes the moment a socket closes as the target's last sighting", async () => {
    const cluster = freshCluster();
    await register(cluster);
    await runInDurableObject(cluster, (_i, state) => state.storage.sql.exec("UPDATE targets SET last_seen = 1000 WHERE id = 't-b1'"));
    const before = Date.now();
    await runInDurableObject(cluster, (instance: Cluster) => instance.webSocketClose(socketOf("t-b1", loc("b", 1))));
    const seen = await runInDurableObject(cluster, (_i, state) => Number(state.storage.sql.exec("SELECT last_seen FROM targets WHERE id = 't-b1'").one().last_seen));
    expect(seen).toBeGreaterThanOrEqual(before);
  });
});
