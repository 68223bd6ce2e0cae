// Reads are served by the copies nearest to the reader (issue 6, point 6): six real targets in
// two regions, each dialling the gateway through its own loopback proxy that counts the bytes
// the target sends (scripts/partition-proxy.ts), so the test sees which region's targets served
// a GET. Every chunk has copies in both regions (placement spreads R = 3 over them). Nothing is
// mocked; the proxies only count.

import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalCluster } from "../../scripts/cluster.ts";
import { PartitionProxy } from "../../scripts/partition-proxy.ts";
import { bodyBytes, clientFor, freePort, pseudoRandom, removeDir, s3Error, sameBytes, startTestCluster, withHeaders } from "./helpers.ts";

const B = "nearest";
const EU = [0, 1, 2];
const US = [3, 4, 5];
const LOCATIONS = [...["a", "b", "c"].map((z) => `/eu/zone-${z}/rack-1/host-1/disk-0`), ...["a", "b", "c"].map((z) => `/us/zone-${z}/rack-1/host-1/disk-0`)];
const SIZE = 3 * 2 ** 20;

let cluster: LocalCluster;
let dir: string;
let s3: S3Client;
const proxies: PartitionProxy[] = [];
const body = pseudoRandom(SIZE, 9100);

beforeAll(async () => {
  const port = await freePort();
  for (let i = 0; i < LOCATIONS.length; i++) proxies.push(await PartitionProxy.to(`http://127.0.0.1:${port}`));
  ({ cluster, dir } = await startTestCluster({ port, locations: LOCATIONS, gatewayFor: (i) => proxies[i]!.url }));
  s3 = clientFor(cluster);
  await s3.send(new CreateBucketCommand({ Bucket: B }));
  await s3.send(new PutObjectCommand({ Bucket: B, Key: "obj", Body: body }));
});

afterAll(async () => {
  await cluster?.stop();
  for (const p of proxies) await p.close();
  if (dir) removeDir(dir);
});

/** Bytes each region's targets sent while `read` ran. */
async function sentDuring(read: () => Promise<void>): Promise<{ eu: number; us: number }> {
  for (const p of proxies) p.sentByTarget = 0;
  await read();
  const sum = (ix: number[]) => ix.reduce((a, i) => a + proxies[i]!.sentByTarget, 0);
  return { eu: sum(EU), us: sum(US) };
}

const getFrom = async (location: string | null) => {
  const cmd = new GetObjectCommand({ Bucket: B, Key: "obj" });
  const got = await bodyBytes((await s3.send(location ? withHeaders(cmd, { "x-edgestore-location": location }) : cmd)).Body);
  expect(sameBytes(got, body)).toBe(true);
};

describe("reads go to the nearest copy", () => {
  it("serves a reader in one region from that region's targets", async () => {
    for (const [near, far] of [
      ["/eu/zone-b", "us"],
      ["/us", "eu"],
    ] as const) {
      const sent = await sentDuring(() => getFrom(near));
      const nearBytes = far === "us" ? sent.eu : sent.us;
      // The payload came from the near region; the far one sent only control messages, if anything.
      expect(nearBytes).toBeGreaterThanOrEqual(SIZE);
      expect(sent[far]).toBeLessThan(SIZE / 20);
    }
  });

  it("spreads reads over every holder when the reader gives no location", async () => {
    // Reads of a chunk take turns over its three holders, and every chunk has one in each
    // region: over three reads, each region serves every chunk at least once. (One read alone
    // depends on where earlier reads left each chunk's turn.)
    const sent = await sentDuring(async () => {
      for (let i = 0; i < 3; i++) await getFrom(null);
    });
    expect(sent.eu).toBeGreaterThan(SIZE / 10);
    expect(sent.us).toBeGreaterThan(SIZE / 10);
  });

  it("reads from farther copies when the near ones hang", { timeout: 60_000 }, async () => {
    cluster.freezeTargets(EU, true);
    try {
      const sent = await sentDuring(() => getFrom("/eu"));
      expect(sent.us).toBeGreaterThanOrEqual(SIZE);
    } finally {
      cluster.freezeTargets(EU, false);
    }
  });

  it("refuses a malformed location with InvalidArgument", async () => {
    const err = await s3Error(s3.send(withHeaders(new GetObjectCommand({ Bucket: B, Key: "obj" }), { "x-edgestore-location": "eu zone" })));
    expect(err).toEqual({ name: "InvalidArgument", status: 400 });
  });
});
