// Membership and liveness (issue 6, point 1) on a real local cluster: with K (MIN_LIVE_TARGETS)
// above R, a group refuses client writes with S3's 503 as soon as fewer than K of its members
// are live — here K = 4 = GROUP_MEMBERS, R = 3, so killing one target (SIGKILL, a real process)
// makes every group it served refuse — while reads go on; when the target is back, writes are
// taken again. Nothing is mocked.

import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import type { LocalCluster } from "../../scripts/cluster.ts";
import { bodyBytes, clusterForSuite, pseudoRandom, putOutcome, sameBytes } from "./helpers.ts";

let cluster: LocalCluster;
let s3: S3Client;
const B = "quorum";

clusterForSuite({ bucket: B, vars: { MIN_LIVE_TARGETS: "4" } }, (c) => ({ cluster, s3 } = c));

describe("writes need K live members", () => {
  it("refuses writes below K with a 503 that names K, keeps reads, and takes writes again when the target is back", async () => {
    const before = pseudoRandom(400_000, 1);
    expect(await putOutcome(s3, B, "before.bin", before)).toBe("ok");
    await cluster.killTarget(0);
    // Objects of a few chunks each: almost every one meets a group target 0 was a member of.
    const outcomes = [];
    for (let i = 0; i < 6; i++) outcomes.push(await putOutcome(s3, B, `during-${i}.bin`, pseudoRandom(400_000, 10 + i)));
    const refused = outcomes.filter((o) => o !== "ok");
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) expect(r).toMatch(/^503 ServiceUnavailable: .*only 3 targets of group \d+ are live; it takes writes while at least 4 are \(MIN_LIVE_TARGETS\)/);
    // Reads need one live copy, not K.
    expect(sameBytes(await bodyBytes((await s3.send(new GetObjectCommand({ Bucket: B, Key: "before.bin" }))).Body), before)).toBe(true);
    cluster.startTarget(0);
    await cluster.waitForTargets();
    for (let i = 0; i < 6; i++) expect(await putOutcome(s3, B, `after-${i}.bin`, pseudoRandom(400_000, 20 + i))).toBe("ok");
  });
});
