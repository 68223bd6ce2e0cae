// Scrub and repair (issue 6, point 3) on a real local cluster: node-target processes re-verify
// what they store in the background, and a copy damaged on disk is quarantined by its target,
// reported to its group, and replaced from a good copy — before any client reads it. The
// scrub runs fast and often here (flags on the targets) so the test is short; nothing is mocked.

import { GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { EdgestoreExtensions } from "../../client/extensions.ts";
import type { LocalCluster } from "../../scripts/cluster.ts";
import { bodyBytes, chunksOnDisk, clusterForSuite, damageCopy, dropCopy, flipByte, goodCopies, pseudoRandom, readOnDisk, sameBytes, type ChunkOnDisk, eventually } from "./helpers.ts";

let cluster: LocalCluster;
let s3: S3Client;
const B = "scrubbed";

/** A cluster per describe: one scrubs fast, the other never does (so only reads can find damage). */
function clusterWith(targetArgs: string[]): void {
  clusterForSuite({ bucket: B, targetArgs }, (c) => ({ cluster, s3 } = c));
}

/** Every copy of every chunk on the targets' disks. */
function copies(): (ChunkOnDisk & { dataDir: string })[] {
  return cluster.targets.flatMap((t) => chunksOnDisk(t.dataDir).map((c) => ({ ...c, dataDir: t.dataDir })));
}

describe("background scrub", () => {
  clusterWith(["--scrub-rate", String(256 * 1024 * 1024), "--scrub-pause", "300"]);

  it("finds a byte flipped in a stored chunk, quarantines that copy and restores R from a good one", async () => {
    const body = pseudoRandom(600_000, 71);
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "kept.bin", Body: body }));
    const victim = copies()[0]!;
    const victimDir = victim.dataDir;
    expect(goodCopies(cluster, victim.chid)).toBe(3);
    damageCopy(victim);
    expect(goodCopies(cluster, victim.chid)).toBe(2);
    // The scrub passes every 0.3 s; repair is one check and one copy.
    expect(await eventually(() => goodCopies(cluster, victim.chid) === 3)).toBe(true);
    // The damaged copy was moved aside by its own target, not served or overwritten in place.
    const quarantined = readdirSync(join(victimDir, "quarantine")).filter((f) => f.endsWith(victim.chid));
    expect(quarantined.length).toBe(1);
    expect(createHash("sha256").update(readFileSync(join(victimDir, "quarantine", quarantined[0]!))).digest("hex")).not.toBe(victim.chid);
    // No copy with wrong bytes is left under the chunk's name anywhere.
    for (const c of copies().filter((c) => c.chid === victim.chid)) expect(createHash("sha256").update(readOnDisk(c)).digest("hex")).toBe(victim.chid);
    expect(sameBytes(await bodyBytes((await s3.send(new GetObjectCommand({ Bucket: B, Key: "kept.bin" }))).Body), body)).toBe(true);
    // And validation, asked afterwards, finds every item intact.
    const ext = new EdgestoreExtensions({ endpoint: cluster.endpoint, region: cluster.region, accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey });
    expect((await ext.validate({ bucket: B, key: "kept.bin" })).state).toBe("intact");
  });
});

describe("a read that meets a damaged copy", () => {
  clusterWith(["--scrub-rate", "0"]);

  it("is served from a good copy, and has the group restore R", async () => {
    const body = pseudoRandom(300_000, 72);
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "read.bin", Body: body }));
    const victim = copies()[0]!;
    damageCopy(victim);
    expect(goodCopies(cluster, victim.chid)).toBe(2);
    // Reads start from a different holder each time, so one soon meets the bad copy; every read is whole meanwhile.
    const readAndCount = async () => {
      expect(sameBytes(await bodyBytes((await s3.send(new GetObjectCommand({ Bucket: B, Key: "read.bin" }))).Body), body)).toBe(true);
      return goodCopies(cluster, victim.chid) === 3;
    };
    expect(await eventually(readAndCount, { ms: 6_000, every: 100 })).toBe(true);
  });

  it("restores a copy deleted from a target's disk once a read misses it", async () => {
    const body = pseudoRandom(300_000, 73);
    const before = new Set(copies().map((c) => c.chid));
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "deleted.bin", Body: body }));
    const victim = copies().find((c) => !before.has(c.chid))!;
    dropCopy(cluster, cluster.targets.findIndex((t) => t.dataDir === victim.dataDir), victim.chid);
    expect(goodCopies(cluster, victim.chid)).toBe(2);
    const readAndCount = async () => {
      expect(sameBytes(await bodyBytes((await s3.send(new GetObjectCommand({ Bucket: B, Key: "deleted.bin" }))).Body), body)).toBe(true);
      return goodCopies(cluster, victim.chid) === 3;
    };
    expect(await eventually(readAndCount, { ms: 6_000, every: 100 })).toBe(true);
  });
});
