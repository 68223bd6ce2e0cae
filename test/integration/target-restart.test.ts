// Crash safety on targets, on a real cluster: a target SIGKILLed with a torn batch past its pack's
// committed end and a chunk damaged while it was down is re-checked at start (what it wrote since
// its last journal checkpoint is re-hashed), drops the torn tail, quarantines the bad copy
// instead of serving it, and says it lost data; its groups recount and restore R. A target
// stopped cleanly that comes back with a chunk gone does the same. The background
// scrub is off, so only the start-up check can find the damage, and the re-replication grace
// (300 s) is longer than the suite: only the target's report can trigger the recount.

import { GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { appendFileSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { sleep, type LocalCluster } from "../../scripts/cluster.ts";
import type { ChunkOnDisk } from "../../node-target/packs/on-disk.ts";
import { bodyBytes, chunkCopies, clusterForSuite, copyOn, eventually, damageCopy, dropCopy, goodCopies, pseudoRandom, sameBytes } from "./helpers.ts";

let cluster: LocalCluster;
let s3: S3Client;
const B = "restart";

clusterForSuite({ bucket: B, targetArgs: ["--scrub-rate", "0"], vars: { REREPLICATE_AFTER_SECONDS: "300" } }, (c) => ({ cluster, s3 } = c));

/** A target holding a chunk of `chids`, and where that chunk is on its disk. */
function holderOf(chids: readonly string[]): { index: number; chid: string; copy: ChunkOnDisk } {
  for (const t of cluster.targets) {
    for (const chid of chids) {
      const copy = copyOn(cluster, t.index, chid);
      if (copy) return { index: t.index, chid, copy };
    }
  }
  throw new Error("no holder found");
}

async function putNew(key: string, body: Uint8Array): Promise<string[]> {
  const before = new Set(chunkCopies(cluster).keys());
  await s3.send(new PutObjectCommand({ Bucket: B, Key: key, Body: body }));
  return [...chunkCopies(cluster).keys()].filter((c) => !before.has(c));
}

const logged = (index: number, msg: string) => cluster.logTail.some((l) => l.startsWith(`[target-${index}]`) && l.includes(`"msg":"${msg}"`));

describe("a target that restarts", () => {
  it("after a crash, drops a torn pack tail, quarantines what the disk did not keep, reports the loss, and R comes back", async () => {
    const body = pseudoRandom(900_000, 9101);
    const chids = await putNew("crashed.bin", body);
    expect(chids.length).toBeGreaterThan(2);
    const victim = holderOf(chids);
    const dir = cluster.targets[victim.index]!.dataDir;
    await cluster.killTarget(victim.index);
    // What a power cut can leave: a batch written past the pack's committed end (never
    // acknowledged), and a chunk whose bytes the disk did not keep.
    const committed = statSync(victim.copy.path).size;
    const torn = pseudoRandom(8192, 1);
    appendFileSync(victim.copy.path, torn);
    damageCopy(victim.copy);
    expect(goodCopies(cluster, victim.chid)).toBe(2);
    cluster.startTarget(victim.index);
    await cluster.waitForTargets();
    // The torn batch was cut at start (the pack may have grown since: R is being restored).
    expect(logged(victim.index, "pack torn tail dropped")).toBe(true);
    expect(statSync(victim.copy.path).size === committed || !readFileSync(victim.copy.path).subarray(committed, committed + 8192).equals(Buffer.from(torn))).toBe(true);
    expect(readdirSync(join(dir, "quarantine")).some((f) => f.endsWith(victim.chid))).toBe(true);
    expect(logged(victim.index, "data directory lost data: groups will recount and restore copies")).toBe(true);
    expect(await eventually(() => goodCopies(cluster, victim.chid) === 3)).toBe(true);
    // No copy with wrong bytes is left under the chunk's name anywhere.
    expect(chunkCopies(cluster).get(victim.chid)?.length).toBe(3);
    expect(sameBytes(await bodyBytes((await s3.send(new GetObjectCommand({ Bucket: B, Key: "crashed.bin" }))).Body), body)).toBe(true);
  });

  it("stopped cleanly, then missing a chunk, reports the loss and R comes back", async () => {
    const body = pseudoRandom(700_000, 9102);
    const chids = await putNew("stopped.bin", body);
    const victim = holderOf(chids);
    await cluster.stopTarget(victim.index);
    const journal = JSON.parse(readFileSync(join(cluster.targets[victim.index]!.dataDir, "run.json"), "utf8")) as { clean: boolean };
    expect(journal.clean).toBe(true);
    dropCopy(cluster, victim.index, victim.chid);
    expect(goodCopies(cluster, victim.chid)).toBe(2);
    cluster.startTarget(victim.index);
    await cluster.waitForTargets();
    expect(await eventually(() => goodCopies(cluster, victim.chid) === 3)).toBe(true);
    expect(sameBytes(await bodyBytes((await s3.send(new GetObjectCommand({ Bucket: B, Key: "stopped.bin" }))).Body), body)).toBe(true);
  });

  it("stopped cleanly with nothing lost, reports nothing and serves as before", async () => {
    const body = pseudoRandom(300_000, 9103);
    const chids = await putNew("fine.bin", body);
    const victim = holderOf(chids);
    const lostBefore = cluster.logTail.filter((l) => l.startsWith(`[target-${victim.index}]`) && l.includes("lost data")).length;
    await cluster.stopTarget(victim.index);
    cluster.startTarget(victim.index);
    await cluster.waitForTargets();
    expect(cluster.logTail.filter((l) => l.startsWith(`[target-${victim.index}]`) && l.includes("lost data")).length).toBe(lostBefore);
    expect(goodCopies(cluster, victim.chid)).toBe(3);
    expect(sameBytes(await bodyBytes((await s3.send(new GetObjectCommand({ Bucket: B, Key: "fine.bin" }))).Body), body)).toBe(true);
  });
});
