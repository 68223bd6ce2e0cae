// Replicas are counted in failure domains, not raw copies (issue 6, point 2): two copies on two
// devices of one host are one replica. A real cluster of four targets, two of them disks of the
// same host, at R = 2: with the other hosts down a write lands on that host's two disks
// (degraded, but K = 2 live members allow it); once they are back, validation counts one
// domain where two are reachable and adds a copy on another host. Real processes, real disks.

import { GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import { EdgestoreExtensions } from "../../client/extensions.ts";
import type { LocalCluster } from "../../scripts/cluster.ts";
import { bodyBytes, chunkCopies, clusterForSuite, pseudoRandom, sameBytes } from "./helpers.ts";

let cluster: LocalCluster;
let s3: S3Client;
const B = "domains";
const SAME_HOST = [0, 1];
const OTHER_HOSTS = [2, 3];

clusterForSuite(
  {
    bucket: B,
    locations: ["/local/zone-a/rack-1/host-1/disk-0", "/local/zone-a/rack-1/host-1/disk-1", "/local/zone-b/rack-1/host-2/disk-0", "/local/zone-c/rack-1/host-3/disk-0"],
    vars: { REPLICAS: "2", GROUP_MEMBERS: "4", MIN_LIVE_TARGETS: "2" },
    targetArgs: ["--scrub-rate", "0"],
  },
  (c) => ({ cluster, s3 } = c),
);

const holdersOf = (chid: string) => cluster.targets.map((t) => t.index).filter((i) => chunkCopies(cluster, [i]).has(chid));

describe("replicas counted in failure domains", () => {
  it("adds a copy on another host to an item whose two copies share one", { timeout: 90_000 }, async () => {
    const before = new Set(chunkCopies(cluster).keys());
    for (const i of OTHER_HOSTS) await cluster.stopTarget(i);
    const body = pseudoRandom(1_500_000, 9300);
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "one-host", Body: body }));
    const chids = [...chunkCopies(cluster).keys()].filter((c) => !before.has(c));
    expect(chids.length).toBeGreaterThan(3);
    // Degraded: both copies of every chunk on host-1's two disks.
    for (const c of chids) expect(holdersOf(c)).toEqual(SAME_HOST);

    for (const i of OTHER_HOSTS) cluster.startTarget(i);
    await cluster.waitForTargets();
    const ext = new EdgestoreExtensions({ endpoint: cluster.endpoint, region: cluster.region, accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey });
    const v = await ext.validate({ bucket: B, key: "one-host" });
    expect(v.repaired).toBeGreaterThanOrEqual(chids.length);
    for (const c of chids) expect(holdersOf(c).some((i) => OTHER_HOSTS.includes(i))).toBe(true);
    const got = await bodyBytes((await s3.send(new GetObjectCommand({ Bucket: B, Key: "one-host" }))).Body);
    expect(sameBytes(got, body)).toBe(true);

    // Counted right, a second validation finds nothing to do; a write with every host up needs nothing either.
    expect((await ext.validate({ bucket: B, key: "one-host" })).repaired).toBe(0);
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "spread", Body: pseudoRandom(600_000, 9301) }));
    expect((await ext.validate({ bucket: B, key: "spread" })).repaired).toBe(0);
  });
});
