// Adding a storage host while serving: a real cluster of four targets holding data is joined by
// a fifth it has never seen. Only the groups the newcomer enters change (one member each, the
// rest of the map stays), every such group copies what it holds to the newcomer in the
// background and trims the copies on the member that left, and `cluster rebalance` says when
// that is done. Clients write and read throughout, and read what they just wrote. Afterwards
// every chunk has exactly R copies, the newcomer holds its share, and every object reads back
// whole. Real processes, real files, the real admin CLI.

import { GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import type { LocalCluster } from "../../scripts/cluster.ts";
import { LOCAL_LOCATIONS } from "../../scripts/cluster.ts";
import { adminCli, adminJson, bodyBytes, chunkCopies, clusterForSuite, eventually, pseudoRandom, sameBytes } from "./helpers.ts";

let cluster: LocalCluster;
let s3: S3Client;
const B = "growing";
const NEWCOMER = 4;

clusterForSuite({ bucket: B, locations: LOCAL_LOCATIONS.slice(0, 5), initialTargets: 4, targetArgs: ["--scrub-rate", "0"] }, (c) => ({ cluster, s3 } = c));

interface Status {
  targets: { id: string; location: string; groups: number[] }[];
}
interface Rebalance {
  balanced: boolean;
  targets: { location: string; places: number; share: number }[];
  moving: { group: number; from: string[] }[];
}

const admin = <T,>(path: string): Promise<T> => adminJson<T>(cluster, path);

/** Members of every group, by target location, from the admin status. */
async function membership(): Promise<Map<number, string[]>> {
  const s = await admin<Status>("status.json");
  const out = new Map<number, string[]>();
  for (const t of s.targets) for (const g of t.groups) out.set(g, [...(out.get(g) ?? []), t.location].sort());
  return out;
}

const get = async (key: string) => bodyBytes((await s3.send(new GetObjectCommand({ Bucket: B, Key: key }))).Body);

describe("a target joins a cluster that holds data", () => {
  it("enters only some groups, receives their data in the background while clients read and write, and leaves every item at R", { timeout: 240_000 }, async () => {
    const bodies = new Map<string, Uint8Array>();
    for (let i = 0; i < 24; i++) {
      const body = pseudoRandom(300_000 + i * 1_000, 7000 + i);
      await s3.send(new PutObjectCommand({ Bucket: B, Key: `before-${i}`, Body: body }));
      bodies.set(`before-${i}`, body);
    }
    // The cluster knows they hold data once their heartbeats say so (every 2 s at most).
    expect(await eventually(async () => (await admin<{ targets: { bytes: number }[] }>("status.json")).targets.every((t) => t.bytes > 0))).toBe(true);
    const before = await membership();
    const newcomer = LOCAL_LOCATIONS[NEWCOMER]!;
    expect([...before.values()].every((m) => !m.includes(newcomer))).toBe(true);

    cluster.startTarget(NEWCOMER);
    // Clients go on while the data moves: each write is read back at once.
    let n = 0;
    let last: Rebalance | null = null;
    const balanced = await eventually(
      async () => {
        const key = `during-${n}`;
        const body = pseudoRandom(200_000, 8000 + n++);
        await s3.send(new PutObjectCommand({ Bucket: B, Key: key, Body: body }));
        expect(sameBytes(await get(key), body)).toBe(true);
        bodies.set(key, body);
        const old = `before-${n % 24}`;
        expect(sameBytes(await get(old), bodies.get(old)!)).toBe(true);
        const r = (last = await admin<Rebalance>("rebalance"));
        return r.balanced && r.targets.some((t) => t.location === newcomer && t.places > 0);
      },
      { ms: 150_000, every: 500 },
    );
    expect(balanced, JSON.stringify(last)).toBe(true);
    expect(n).toBeGreaterThan(3);

    // Incremental: a group either kept its members or swapped exactly one of them for the newcomer.
    const after = await membership();
    let entered = 0;
    for (const [g, m] of before) {
      const now = after.get(g)!;
      if (!now.includes(newcomer)) {
        expect(now).toEqual(m);
        continue;
      }
      entered++;
      expect(now.filter((l) => !m.includes(l))).toEqual([newcomer]);
      expect(m.filter((l) => !now.includes(l))).toHaveLength(1);
    }
    // 8 groups × 4 places over 5 equal targets: a share of 6.4.
    expect(entered).toBe(6);

    // Every chunk at exactly R: copied to the newcomer, trimmed off the member it replaced.
    const copies = chunkCopies(cluster);
    const onNewcomer = chunkCopies(cluster, [NEWCOMER]);
    expect(onNewcomer.size).toBeGreaterThan(10);
    for (const [, at] of copies) expect(at.length).toBe(3);

    for (const [key, body] of bodies) expect(sameBytes(await get(key), body)).toBe(true);

    const cli = adminCli(cluster, "cluster", "rebalance");
    expect(cli.status).toBe(0);
    expect(cli.out).toMatch(/^balanced/);
    expect(cli.out).toContain(`${newcomer}  6 / 6.4`);
  });
});
