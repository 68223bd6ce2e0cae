// Re-replication (issue 6, point 2) on a real local cluster: a target is killed (SIGKILL) and
// stays away past the grace period (1 s here, REREPLICATE_AFTER_SECONDS); every group it served
// lists what its live members hold, and copies each chunk and version manifest the dead target
// had back up to R = 3 on the live ones. Checked on the targets' disks; nothing is mocked.

import { GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, expect, it } from "vitest";
import type { LocalCluster } from "../../scripts/cluster.ts";
import { bodyBytes, chunksOnDisk, clusterForSuite, copyOn, pseudoRandom, readOnDisk, sameBytes, eventually } from "./helpers.ts";

let cluster: LocalCluster;
let s3: S3Client;
const B = "rerep";

clusterForSuite({ bucket: B, vars: { REREPLICATE_AFTER_SECONDS: "1" } }, (c) => ({ cluster, s3 } = c));

function chunksOf(t: number): string[] {
  return chunksOnDisk(cluster.targets[t]!.dataDir).map((c) => c.chid);
}

function goodChunk(t: number, chid: string): boolean {
  const c = copyOn(cluster, t, chid);
  return c !== null && createHash("sha256").update(readOnDisk(c)).digest("hex") === chid;
}

function manifestsOf(t: number): string[] {
  const db = new DatabaseSync(join(cluster.targets[t]!.dataDir, "index.sqlite"), { readOnly: true });
  try {
    return db.prepare("SELECT lower(hex(nhid)) AS nhid, lower(hex(uvid)) AS uvid, lower(hex(chid)) AS chid FROM vm").all().map((r) => `${String(r.nhid)}/${String(r.uvid)}/${String(r.chid)}`);
  } finally {
    db.close();
  }
}

describe("re-replication", () => {
  it("restores R for every chunk and manifest a target held, once it has been gone past the grace period", async () => {
    const bodies = new Map<string, Uint8Array>();
    for (let i = 0; i < 5; i++) {
      const body = pseudoRandom(500_000, 90 + i);
      bodies.set(`obj-${i}.bin`, body);
      await s3.send(new PutObjectCommand({ Bucket: B, Key: `obj-${i}.bin`, Body: body }));
    }
    const lostChunks = chunksOf(0);
    const lostManifests = manifestsOf(0);
    expect(lostChunks.length).toBeGreaterThan(0);
    await cluster.killTarget(0);
    const others = [1, 2, 3, 4, 5];
    const chunkCopies = (chid: string) => others.filter((t) => goodChunk(t, chid)).length;
    const vmCopies = (key: string) => others.filter((t) => manifestsOf(t).includes(key)).length;
    // Before: each of them has R - 1 = 2 copies left on live targets.
    expect(lostChunks.every((c) => chunkCopies(c) === 2)).toBe(true);
    // 1 s of grace, then one inventory and one copy per item.
    expect(await eventually(() => lostChunks.every((c) => chunkCopies(c) >= 3) && lostManifests.every((k) => vmCopies(k) >= 3))).toBe(true);
    for (const [key, body] of bodies) expect(sameBytes(await bodyBytes((await s3.send(new GetObjectCommand({ Bucket: B, Key: key }))).Body), body)).toBe(true);
  });
});
