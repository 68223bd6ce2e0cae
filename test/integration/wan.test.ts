// Storage hosts across a real network, made on this machine: targets run in their own network
// namespaces (scripts/netns.ts), joined to the host by veth pairs limited with `tc tbf`, and
// reach the gateway through a relay that adds the round trip (scripts/delay-relay.ts; this
// kernel has no netem). What the cluster must do over such links:
// - a site of three targets 20 ms and 100 Mbit/s away serves PUT, GET and ranged GET, and
//   replicates down chains inside the site (the chunks cross the link once);
// - targets in three sites that cannot reach each other (the host does not forward between
//   namespaces) still store every chunk R times: chains fail and the group sends copies itself;
// - a target behind NAT (a masquerading router namespace) works with outbound connections only:
//   nothing on the host can connect to it, and it stores and serves like any other.
// Skipped, with the reason, where the machine lacks root, `ip`, `tc` or `nft`.

import { GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DelayRelay } from "../../scripts/delay-relay.ts";
import { Site, sitesUnavailable } from "../../scripts/netns.ts";
import { LOCAL_LOCATIONS, type LocalCluster } from "../../scripts/cluster.ts";
import { bodyBytes, chunkCopies, clientFor, pseudoRandom, removeDir, sameBytes, startTestCluster } from "./helpers.ts";
import { CreateBucketCommand } from "@aws-sdk/client-s3";

const unavailable = sitesUnavailable({ nat: true });
if (unavailable) console.log(`wan.test.ts skipped: ${unavailable}`);

interface Setup {
  cluster: LocalCluster;
  dir: string;
  s3: S3Client;
  sites: Site[];
  relays: DelayRelay[];
}

/** A cluster with no local targets, then target i started in `siteOf(i)`, through a relay adding `rttMs`. */
async function clusterInSites(o: { sites: { mbit: number | null; nat?: boolean }[]; siteOf: (i: number) => number; rttMs: number; bucket: string; first: number }): Promise<Setup> {
  const sites: Site[] = [];
  const relays: DelayRelay[] = [];
  const { cluster, dir } = await startTestCluster({ locations: LOCAL_LOCATIONS.slice(0, 3), initialTargets: 0, vars: { REPLICAS: "3", GROUP_MEMBERS: "3" } });
  try {
    o.sites.forEach((s, k) => sites.push(Site.create({ index: o.first + k, mbit: s.mbit, nat: s.nat ?? false })));
    for (const s of sites) relays.push(await DelayRelay.to(cluster.endpoint, { host: s.hostAddress, rttMs: o.rttMs }));
    for (let i = 0; i < 3; i++) {
      const k = o.siteOf(i);
      cluster.startTarget(i, { site: sites[k]!, gateway: relays[k]!.url });
    }
    await cluster.waitForTargets(90_000);
    const s3 = clientFor(cluster);
    await s3.send(new CreateBucketCommand({ Bucket: o.bucket }));
    return { cluster, dir, s3, sites, relays };
  } catch (e) {
    await cluster.stop();
    for (const r of relays) await r.close();
    for (const s of sites) s.remove();
    removeDir(dir);
    throw e;
  }
}

async function tearDown(s: Setup | null): Promise<void> {
  if (!s) return;
  await s.cluster.stop();
  for (const r of s.relays) await r.close();
  for (const site of s.sites) site.remove();
  removeDir(s.dir);
}

const get = async (s3: S3Client, bucket: string, key: string, range?: string) => bodyBytes((await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: range }))).Body);

/** Every chunk the targets hold, with how many copies: all at R = 3. */
function allAtR(cluster: LocalCluster): void {
  const copies = chunkCopies(cluster);
  expect(copies.size).toBeGreaterThan(3);
  for (const [, at] of copies) expect(at.length).toBe(3);
}

describe.skipIf(unavailable !== null)("targets across a real network", () => {
  describe("one site, 20 ms and 100 Mbit/s away", () => {
    let s: Setup | null = null;
    beforeAll(async () => {
      s = await clusterInSites({ sites: [{ mbit: 100 }], siteOf: () => 0, rttMs: 20, bucket: "far", first: 10 });
    }, 180_000);
    afterAll(() => tearDown(s), 60_000);

    it("stores and serves objects, whole and ranged, and the site's targets replicate down chains", { timeout: 120_000 }, async () => {
      const { s3, cluster, relays } = s!;
      const body = pseudoRandom(3_000_000, 4401);
      const before = relays[0]!.sentToSite;
      await s3.send(new PutObjectCommand({ Bucket: "far", Key: "big", Body: body }));
      // Peers in one namespace reach each other: the chunks crossed the link once, not R times.
      expect(relays[0]!.sentToSite - before).toBeLessThan(1.5 * body.length);
      expect(sameBytes(await get(s3, "far", "big"), body)).toBe(true);
      expect(sameBytes(await get(s3, "far", "big", "bytes=1000000-1099999"), body.subarray(1_000_000, 1_100_000))).toBe(true);
      const small = pseudoRandom(4096, 4402);
      await s3.send(new PutObjectCommand({ Bucket: "far", Key: "small", Body: small }));
      expect(sameBytes(await get(s3, "far", "small"), small)).toBe(true);
      allAtR(cluster);
    });
  });

  describe("three sites whose targets cannot reach each other", () => {
    let s: Setup | null = null;
    beforeAll(async () => {
      s = await clusterInSites({ sites: [{ mbit: null }, { mbit: null }, { mbit: null }], siteOf: (i) => i, rttMs: 10, bucket: "apart", first: 20 });
    }, 180_000);
    afterAll(() => tearDown(s), 60_000);

    it("keeps every chunk at R: the chain fails and the group sends the copies itself", { timeout: 120_000 }, async () => {
      const { s3, cluster } = s!;
      const body = pseudoRandom(2_000_000, 4403);
      await s3.send(new PutObjectCommand({ Bucket: "apart", Key: "spread", Body: body }));
      expect(cluster.logTail.some((l) => l.includes("chain fell back to sending directly"))).toBe(true);
      expect(sameBytes(await get(s3, "apart", "spread"), body)).toBe(true);
      allAtR(cluster);
    });
  });

  describe("a target behind NAT", () => {
    let s: Setup | null = null;
    beforeAll(async () => {
      // Target 0 behind its router; the other two in a plain site.
      s = await clusterInSites({ sites: [{ mbit: null, nat: true }, { mbit: null }], siteOf: (i) => (i === 0 ? 0 : 1), rttMs: 10, bucket: "natted", first: 30 });
    }, 180_000);
    afterAll(() => tearDown(s), 60_000);

    it("takes part with outbound connections only: nothing reaches it from the host, and it stores and serves", { timeout: 120_000 }, async () => {
      const { s3, cluster, sites } = s!;
      const natted = cluster.targets[0]!;
      const port = Number(new URL(natted.metrics!).port);
      expect(await sites[0]!.reachableFromHost(port)).toBe(false);
      expect(await sites[1]!.reachableFromHost(Number(new URL(cluster.targets[1]!.metrics!).port))).toBe(true);
      const body = pseudoRandom(2_000_000, 4404);
      await s3.send(new PutObjectCommand({ Bucket: "natted", Key: "through-nat", Body: body }));
      allAtR(cluster);
      // With R = 3 of 3 targets it holds a copy of everything; with the others stopped it serves alone.
      await cluster.stopTarget(1);
      await cluster.stopTarget(2);
      expect(sameBytes(await get(s3, "natted", "through-nat"), body)).toBe(true);
    });
  });
});
