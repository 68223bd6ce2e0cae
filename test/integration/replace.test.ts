// Replacing a dead member (issue 6, point 2) on a real local cluster: with K = 4 = GROUP_MEMBERS
// and R = 3, a target killed for good leaves every group it served refusing writes (fewer than
// K live members) until the Cluster object replaces it there, REPLACE_AFTER_SECONDS later (2 s
// here, 900 by default), with a live target from outside the group. Then writes are taken
// again, at R, and everything written before reads back. When the dead target returns, it
// serves what it still holds, its surplus copies are trimmed, and nothing is lost. Nothing is
// mocked.

import { GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import type { LocalCluster } from "../../scripts/cluster.ts";
import { bodyBytes, chunkCopies, clusterForSuite, pseudoRandom, putOutcome, sameBytes, withHeaders, eventually } from "./helpers.ts";

let cluster: LocalCluster;
let s3: S3Client;
const B = "replace";

clusterForSuite({ bucket: B, vars: { MIN_LIVE_TARGETS: "4", REPLACE_AFTER_SECONDS: "2", REREPLICATE_AFTER_SECONDS: "1" } }, (c) => ({ cluster, s3 } = c));

async function readsBack(key: string, body: Uint8Array): Promise<boolean> {
  return sameBytes(await bodyBytes((await s3.send(new GetObjectCommand({ Bucket: B, Key: key }))).Body), body);
}

describe("a target gone for good", () => {
  it("is replaced in its groups, which take writes at R again; everything written before reads back", async () => {
    const before = Array.from({ length: 4 }, (_, i) => pseudoRandom(500_000, 9200 + i));
    for (let i = 0; i < before.length; i++) expect(await putOutcome(s3, B, `before-${i}`, before[i]!)).toBe("ok");
    // A version that asked for four copies: one on every member of each of its chunks' groups.
    const fourBody = pseudoRandom(400_000, 9290);
    const known = new Set(chunkCopies(cluster).keys());
    await s3.send(withHeaders(new PutObjectCommand({ Bucket: B, Key: "four", Body: fourBody }), { "x-edgestore-replicas": "4" }));
    const fourChunks = [...chunkCopies(cluster).keys()].filter((c) => !known.has(c));
    expect(fourChunks.every((c) => chunkCopies(cluster).get(c)!.length === 4)).toBe(true);
    await cluster.killTarget(0);
    const live = [1, 2, 3, 4, 5];
    // Refused while its groups have three of four members live; bounded: the replacement comes 2 s after the loss.
    expect((await putOutcome(s3, B, "refused", pseudoRandom(2_000_000, 9210))).startsWith("503 ServiceUnavailable")).toBe(true);
    expect(await eventually(async () => (await putOutcome(s3, B, "after-0", pseudoRandom(2_000_000, 9211))) === "ok")).toBe(true);
    // Every group has four live members again: a run of writes touching all of them is taken.
    const after = Array.from({ length: 6 }, (_, i) => pseudoRandom(1_000_000, 9220 + i));
    for (let i = 0; i < after.length; i++) expect(await putOutcome(s3, B, `after-${i + 1}`, after[i]!)).toBe("ok");
    // At R on the live targets: what was written before (re-replicated) and after.
    const copies = chunkCopies(cluster, live);
    expect([...copies.values()].every((sizes) => sizes.length >= 3)).toBe(true);
    for (let i = 0; i < before.length; i++) expect(await readsBack(`before-${i}`, before[i]!)).toBe(true);
    for (let i = 0; i < after.length; i++) expect(await readsBack(`after-${i + 1}`, after[i]!)).toBe(true);
    // It returns: it serves what it still holds, and writes go on.
    cluster.startTarget(0);
    await cluster.waitForTargets();
    for (let i = 0; i < before.length; i++) expect(await readsBack(`before-${i}`, before[i]!)).toBe(true);
    expect(await putOutcome(s3, B, "returned", pseudoRandom(1_000_000, 9230))).toBe("ok");
    // Its copies are surplus now where the members hold all a chunk's users asked for: the
    // sweeps restored each chunk to that count on the members (four for the four-copy version),
    // so every copy it holds is trimmed, and nothing drops below it on the members meanwhile.
    const wanted = (c: string) => (fourChunks.includes(c) ? 4 : 3);
    const stillWanted = (c: string) => (chunkCopies(cluster, live).get(c)?.length ?? 0) < wanted(c);
    const surplus = () => [...chunkCopies(cluster, [0]).keys()].filter((c) => !stillWanted(c));
    expect(surplus().length).toBeGreaterThan(0);
    expect(await eventually(() => surplus().length === 0)).toBe(true);
    expect(fourChunks.every((c) => chunkCopies(cluster, live).get(c)!.length === 4)).toBe(true);
    expect([...chunkCopies(cluster, [0]).keys()].every((c) => stillWanted(c))).toBe(true);
    expect(await readsBack("four", fourBody)).toBe(true);
    expect([...chunkCopies(cluster, live).values()].every((sizes) => sizes.length >= 3)).toBe(true);
    for (let i = 0; i < before.length; i++) expect(await readsBack(`before-${i}`, before[i]!)).toBe(true);
    for (let i = 0; i < after.length; i++) expect(await readsBack(`after-${i + 1}`, after[i]!)).toBe(true);
  });

  it("is drained first when decommissioned on purpose: its items reach R on the members while it still serves them", async () => {
    const bodies = Array.from({ length: 4 }, (_, i) => pseudoRandom(600_000, 9300 + i));
    for (let i = 0; i < bodies.length; i++) expect(await putOutcome(s3, B, `drained-${i}`, bodies[i]!)).toBe("ok");
    await cluster.stopTarget(1);
    cluster.startTarget(1, { command: "drain" });
    await cluster.waitForTargets();
    const others = [0, 2, 3, 4, 5];
    const itsChunks = [...chunkCopies(cluster, [1]).keys()];
    expect(itsChunks.length).toBeGreaterThan(0);
    // Writes meanwhile go to the members (K = 4 of them live in every group).
    expect(await putOutcome(s3, B, "while-draining", pseudoRandom(1_000_000, 9310))).toBe("ok");
    // Each group copies what the draining target holds to its members (at R without it), and
    // tells it so; `node-target drain` shows each on stderr and, once every group has, says the
    // drain is complete, stops cleanly and exits 0 — and it is complete.
    expect(await cluster.waitForExit(1, 30_000)).toBe(0);
    expect(cluster.targets[1]!.said).toContain("drain complete");
    const progress = cluster.targets[1]!.stderr.map((l) => /^drain: (\d+) of (\d+) groups hold this target's data at R elsewhere(: complete, stopping)?$/.exec(l));
    expect(progress.every((m) => m !== null), cluster.targets[1]!.stderr.join("\n")).toBe(true);
    const counts = progress.map((m) => Number(m![1]));
    expect(counts).toEqual([...counts].sort((a, b) => a - b));
    const last = progress[progress.length - 1]!;
    expect(last[3]).toBeDefined();
    expect(last[1]).toBe(last[2]);
    expect(Number(last[2])).toBeGreaterThan(0);
    const elsewhere = chunkCopies(cluster, others);
    expect(itsChunks.filter((c) => (elsewhere.get(c)?.length ?? 0) < 3)).toEqual([]);
    for (let i = 0; i < bodies.length; i++) expect(await readsBack(`drained-${i}`, bodies[i]!)).toBe(true);
    expect(await putOutcome(s3, B, "after-drain", pseudoRandom(1_000_000, 9311))).toBe("ok");
  });
});
