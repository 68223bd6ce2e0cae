// Issue 6's fault at full size: a target SIGKILLed in the middle of a 1 GiB PUT stream, on a
// real cluster of six targets at R = 3 (default holds, re-replication after 1 s). The body is
// generated as it is sent and hashed on both sides, so neither end holds the object in memory.
// After the kill: the PUT is either acknowledged and reads back byte-exact, or refused and not
// visible at all; and within a bounded time every chunk has three copies on the five targets
// left. The fault suite (faults.test.ts) runs the other faults at smaller sizes. About a minute.

import { HeadObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { sleep, type LocalCluster } from "../../scripts/cluster.ts";
import { chunkCopies, clusterForSuite, pseudoRandom } from "./helpers.ts";

let cluster: LocalCluster;
let s3: S3Client;
const B = "gib";
const MiB = 2 ** 20;
const SIZE = 1024 * MiB;
const KILL_AT = 300 * MiB;

clusterForSuite({ bucket: B, vars: { REREPLICATE_AFTER_SECONDS: "1" }, targetArgs: ["--scrub-rate", "0"] }, (c) => ({ cluster, s3 } = c));

/** 1 GiB of distinct chunks: sixteen random MiB blocks, each 16 KiB stamped with its place (CHUNK_MIN is 32 KiB). */
function body(onSent: (n: number) => void): { stream: Readable; sha256: () => string } {
  const blocks = Array.from({ length: 16 }, (_, i) => pseudoRandom(MiB, 9700 + i));
  const hash = createHash("sha256");
  async function* gen(): AsyncGenerator<Buffer> {
    for (let i = 0; i < SIZE / MiB; i++) {
      const b = Buffer.from(blocks[i % 16]!);
      for (let at = 0; at < MiB; at += 16 * 1024) b.writeUInt32BE(i, at);
      hash.update(b);
      onSent((i + 1) * MiB);
      yield b;
    }
  }
  let digest: string | null = null;
  return { stream: Readable.from(gen()), sha256: () => (digest ??= hash.digest("hex")) };
}

async function readHash(key: string): Promise<string> {
  const got = await s3.send(new GetObjectCommand({ Bucket: B, Key: key }));
  const hash = createHash("sha256");
  for await (const piece of got.Body as AsyncIterable<Uint8Array>) hash.update(piece);
  return hash.digest("hex");
}

describe("a target killed during a 1 GiB PUT", () => {
  it("leaves the object whole or absent, and R restored on the targets left", { timeout: 300_000 }, async () => {
    let killed: Promise<void> | null = null;
    const b = body((n) => {
      if (n >= KILL_AT && !killed) killed = cluster.killTarget(2);
    });
    let acknowledged = true;
    const t0 = Date.now();
    try {
      await s3.send(new PutObjectCommand({ Bucket: B, Key: "big", Body: b.stream, ContentLength: SIZE }));
    } catch (e) {
      acknowledged = false;
      console.log(JSON.stringify({ msg: "PUT refused", after: Date.now() - t0, error: String(e) }));
    }
    expect(killed).not.toBeNull();
    await killed;
    console.log(JSON.stringify({ msg: "1 GiB PUT with a target killed at 300 MiB", acknowledged }));
    if (acknowledged) {
      expect(await readHash("big")).toBe(b.sha256());
    } else {
      const head = await s3.send(new HeadObjectCommand({ Bucket: B, Key: "big" })).then(
        () => "visible",
        (e: { name?: string }) => e.name,
      );
      expect(head).toBe("NotFound");
    }
    // Every chunk on the five left has three copies there again (bounded: two minutes).
    const live = [0, 1, 3, 4, 5];
    let restored = false;
    const until = Date.now() + 120_000;
    for (let i = 0; i < 600 && !restored && Date.now() < until; i++) {
      await sleep(200);
      const copies = [...chunkCopies(cluster, live).values()];
      restored = copies.every((sizes) => sizes.length >= 3);
      if (i % 25 === 0 && !restored) console.log(JSON.stringify({ msg: "restoring", after: Date.now() - t0, chunks: copies.length, short: copies.filter((s) => s.length < 3).length }));
    }
    expect(restored).toBe(true);
    if (acknowledged) expect(await readHash("big")).toBe(b.sha256());
  });
});
