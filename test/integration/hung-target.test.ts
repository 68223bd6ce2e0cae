// Reads and writes while a target hangs (issue 6, point 6): a target frozen with SIGSTOP keeps its
// sockets open and answers nothing — the failure a timeout must catch, unlike a crash. Reads go
// to another copy (after at most a first-frame timeout per group, then skipping the hung member)
// and writes place their copies on the others. How long that takes is measured by `npm run
// bench:hung-target`, not here. Real processes, nothing mocked.

import { GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import type { LocalCluster } from "../../scripts/cluster.ts";
import { bodyBytes, clusterForSuite, pseudoRandom, sameBytes } from "./helpers.ts";

let cluster: LocalCluster;
let s3: S3Client;
const B = "hung";

clusterForSuite({ bucket: B }, (c) => ({ cluster, s3 } = c));

const get = async (key: string) => bodyBytes((await s3.send(new GetObjectCommand({ Bucket: B, Key: key }))).Body);

describe("a hung target", () => {
  it("does not stop reads or writes: every object reads back exact, and new ones are stored", { timeout: 120_000 }, async () => {
    const bodies = new Map<string, Uint8Array>();
    for (let i = 0; i < 8; i++) {
      const body = pseudoRandom(400_000, 500 + i);
      bodies.set(`before-${i}`, body);
      await s3.send(new PutObjectCommand({ Bucket: B, Key: `before-${i}`, Body: body }));
    }
    cluster.freezeTargets([0], true);
    try {
      for (let round = 0; round < 2; round++) for (const [key, body] of bodies) expect(sameBytes(await get(key), body)).toBe(true);
      for (let i = 0; i < 4; i++) {
        const body = pseudoRandom(400_000, 600 + i);
        await s3.send(new PutObjectCommand({ Bucket: B, Key: `during-${i}`, Body: body }));
        expect(sameBytes(await get(`during-${i}`), body)).toBe(true);
      }
    } finally {
      cluster.freezeTargets([0], false);
    }
  });
});
