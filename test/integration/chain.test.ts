// Chain replication (issue 6, point 7): six real targets started with --peer-listen, each
// dialling the gateway through a loopback proxy that counts what the gateway sends it. A PUT's
// chunks leave the edge once, to the head of each chain, and the targets pass them on over
// their own TCP links; every copy is verified and on disk. A target whose advertised peer
// address leads nowhere breaks the chains it is in, and the group sends it the frames itself.
// Throughput and edge bytes against fan-out are `npm run bench:chain`, not timed here.

import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalCluster } from "../../scripts/cluster.ts";
import { PartitionProxy } from "../../scripts/partition-proxy.ts";
import { bodyBytes, chunkCopies, clientFor, freePort, pseudoRandom, removeDir, sameBytes, startTestCluster } from "./helpers.ts";

const B = "chained";
const SIZE = 4 * 2 ** 20;

let cluster: LocalCluster;
let dir: string;
let s3: S3Client;
const proxies: PartitionProxy[] = [];

beforeAll(async () => {
  const port = await freePort();
  for (let i = 0; i < 6; i++) proxies.push(await PartitionProxy.to(`http://127.0.0.1:${port}`));
  ({ cluster, dir } = await startTestCluster({ port, gatewayFor: (i) => proxies[i]!.url, peers: true, targetArgs: ["--scrub-rate", "0"] }));
  s3 = clientFor(cluster);
  await s3.send(new CreateBucketCommand({ Bucket: B }));
});

afterAll(async () => {
  await cluster?.stop();
  for (const p of proxies) await p.close();
  if (dir) removeDir(dir);
});

const edgeBytes = () => proxies.reduce((a, p) => a + p.sentToTarget, 0);

/** PUT a body, and return the bytes the edge sent the targets for it, and its new chunks. */
async function put(key: string, body: Uint8Array): Promise<{ edge: number; chids: string[] }> {
  const before = new Set(chunkCopies(cluster).keys());
  const e0 = edgeBytes();
  await s3.send(new PutObjectCommand({ Bucket: B, Key: key, Body: body }));
  return { edge: edgeBytes() - e0, chids: [...chunkCopies(cluster).keys()].filter((c) => !before.has(c)) };
}

const copies = (chid: string) => cluster.targets.filter((t) => chunkCopies(cluster, [t.index]).has(chid)).length;

const readsBack = async (key: string, body: Uint8Array) => sameBytes(await bodyBytes((await s3.send(new GetObjectCommand({ Bucket: B, Key: key }))).Body), body);

describe("chain replication", () => {
  it("sends each chunk over the edge once, and every target of the chain stores it", async () => {
    const body = pseudoRandom(SIZE, 9500);
    const { edge, chids } = await put("chained-1", body);
    expect(chids.length).toBeGreaterThan(10);
    for (const c of chids) expect(copies(c)).toBe(3);
    // Fan-out would send three copies (over 12 MiB); one copy plus control messages is sent.
    expect(edge).toBeGreaterThan(SIZE);
    expect(edge).toBeLessThan(1.5 * SIZE);
    expect(await readsBack("chained-1", body)).toBe(true);
  });

  it("falls back to sending directly to a target its chain cannot reach, and loses nothing", { timeout: 90_000 }, async () => {
    // Target 5 advertises an address nothing listens on: every chain through it breaks there.
    await cluster.stopTarget(5);
    cluster.startTarget(5, { gateway: proxies[5]!.url, args: ["--peer-address", "127.0.0.1:9"] });
    await cluster.waitForTargets();
    // Placement takes turns among equal members (all groups share a turn for 50 ms), so a few
    // objects may all miss target 5, or reach it only as the head of their chains (sent to
    // directly, no chain through it to break): write until a chain broke at it and it holds a
    // copy (bounded), three objects at least.
    const bodies: Uint8Array[] = [];
    let edge = 0;
    const all: string[] = [];
    const fellBack = () => cluster.logTail.some((l) => l.includes("chain fell back to sending directly"));
    for (let i = 0; i < 12 && (i < 3 || !all.some((c) => chunkCopies(cluster, [5]).has(c)) || !fellBack()); i++) {
      bodies.push(pseudoRandom(1_500_000, 9510 + i));
      const r = await put(`broken-${i}`, bodies[i]!);
      edge += r.edge;
      all.push(...r.chids);
    }
    for (const c of all) expect(copies(c)).toBe(3);
    for (let i = 0; i < bodies.length; i++) expect(await readsBack(`broken-${i}`, bodies[i]!)).toBe(true);
    // Target 5 held copies too: they came to it directly (its chains broke before it).
    expect(all.some((c) => chunkCopies(cluster, [5]).has(c))).toBe(true);
    expect(fellBack()).toBe(true);
    expect(edge).toBeLessThan(3 * bodies.reduce((a, b) => a + b.length, 0));
  });
});
