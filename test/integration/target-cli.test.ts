// The node-target command line (issue 7, point 4), run as an operator runs it, against the data
// directories of a real local cluster's targets: every command has --help; init makes an
// identity and keeps its id; status tells a running, stopped, crashed and never-run directory
// apart (with live figures from the running target's metrics); verify re-hashes a stopped
// target's directory with progress, finds a byte flipped on disk, quarantines the copy, and the
// target's next run reports the loss so that its groups restore R. The scrub is off and the
// re-replication grace (300 s) outlasts the suite: only verify can find the damage, and only the
// target's report can start the repair. `drain` is shown in replace.test.ts (it needs K = 4).

import { GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { sleep, type LocalCluster } from "../../scripts/cluster.ts";
import { bodyBytes, chunkCopies, clusterForSuite, copyOn, eventually, damageCopy, flipByte, goodCopies, pseudoRandom, removeDir, sameBytes } from "./helpers.ts";

let cluster: LocalCluster;
let s3: S3Client;
const B = "cli";
clusterForSuite({ bucket: B, targetArgs: ["--scrub-rate", "0"], vars: { REREPLICATE_AFTER_SECONDS: "300" } }, (c) => ({ cluster, s3 } = c));

const MAIN = join(import.meta.dirname, "..", "..", "node-target", "main.ts");

/** Run `node-target …` to its end (bounded): its exit code and what it printed. */
function nodeTarget(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [MAIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      p.kill("SIGKILL");
      reject(new Error(`node-target ${args.join(" ")} did not finish in 60 s:\n${stdout}\n${stderr}`));
    }, 60_000);
    p.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const COMMANDS = ["init", "run", "drain", "status", "verify"];

describe("node-target's command line", () => {
  it("describes every command and each command's options with --help, and refuses a wrong call clearly", async () => {
    const top = await nodeTarget("--help");
    expect(top.code).toBe(0);
    for (const c of COMMANDS) expect(top.stdout).toMatch(new RegExp(`^  ${c} +\\S`, "m"));
    for (const c of COMMANDS) {
      const h = await nodeTarget(c, "--help");
      expect(h.code, c).toBe(0);
      expect(h.stdout).toMatch(new RegExp(`^usage: node-target ${c} --data-dir <path>`));
      expect(h.stdout).toContain("  --data-dir <path>");
      expect(h.stdout).toContain("  --help");
      expect((await nodeTarget("help", c)).stdout).toBe(h.stdout);
    }
    const none = await nodeTarget();
    expect(none.code).toBe(2);
    expect(none.stdout).toContain("commands:");
    const unknown = await nodeTarget("serve");
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "serve"');
    const noDir = await nodeTarget("status");
    expect(noDir.code).toBe(2);
    expect(noDir.stderr).toContain("--data-dir is required");
    const badOption = await nodeTarget("verify", "--data-dir", "/nonexistent", "--scrub-rate", "1");
    expect(badOption.code).toBe(2);
    expect(badOption.stderr).toContain("--scrub-rate");
  });

  it("init makes a data directory's identity and keeps its id when its capacity changes; status says it never ran", async () => {
    const dir = mkdtempSync(join(tmpdir(), "edgestore-cli-"));
    try {
      const first = await nodeTarget("init", "--data-dir", dir, "--location", "/eu/zone-a/rack-1/host-9/disk-0", "--capacity", "1000000000");
      expect(first.code).toBe(0);
      const id1 = JSON.parse(first.stdout) as { id: string; location: string; capacity: number };
      expect(id1).toMatchObject({ location: "/eu/zone-a/rack-1/host-9/disk-0", capacity: 1e9 });
      const again = JSON.parse((await nodeTarget("init", "--data-dir", dir, "--location", "/eu/zone-a/rack-1/host-9/disk-0", "--capacity", "2000000000")).stdout) as typeof id1;
      expect(again.id).toBe(id1.id);
      expect(again.capacity).toBe(2e9);
      const bad = await nodeTarget("init", "--data-dir", dir, "--location", "not a path");
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toContain("location must look like /region/zone/rack/host/device");
      const st = JSON.parse((await nodeTarget("status", "--data-dir", dir, "--json")).stdout) as { id: string; state: string; pid: number | null };
      expect(st).toMatchObject({ id: id1.id, state: "never run", pid: null });
    } finally {
      removeDir(dir);
    }
  });

  it("status tells running, stopped and crashed apart, with a running target's live figures", async () => {
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "status.bin", Body: pseudoRandom(800_000, 7401) }));
    const t = cluster.targets[0]!;
    const running = JSON.parse((await nodeTarget("status", "--data-dir", t.dataDir, "--json")).stdout) as {
      state: string;
      pid: number;
      location: string;
      live: { chunks: number; groupLinks: number } | null;
    };
    expect(running.state).toBe("running");
    expect(running.pid).toBe(t.proc!.pid);
    expect(running.location).toBe(t.location);
    expect(running.live?.chunks).toBe(chunkCopies(cluster, [0]).size);
    expect(running.live?.groupLinks).toBe(t.assigned.size);
    const text = await nodeTarget("status", "--data-dir", t.dataDir);
    expect(text.stdout).toMatch(/^state +running \(pid \d+\)/m);
    expect(text.stdout).toMatch(/^stored +\d/m);

    await cluster.stopTarget(0);
    expect((await nodeTarget("status", "--data-dir", t.dataDir)).stdout).toMatch(/^state +stopped, last started /m);
    cluster.startTarget(0);
    await cluster.waitForTargets();
    await cluster.killTarget(0);
    expect((await nodeTarget("status", "--data-dir", t.dataDir)).stdout).toMatch(/^state +crashed, last started /m);
    cluster.startTarget(0);
    await cluster.waitForTargets();
  });

  it("verify re-hashes a stopped target with progress, finds a flipped byte, and the next run gets the copy restored", async () => {
    const body = pseudoRandom(900_000, 7402);
    const before = new Set(chunkCopies(cluster).keys());
    await s3.send(new PutObjectCommand({ Bucket: B, Key: "verify.bin", Body: body }));
    const fresh = [...chunkCopies(cluster).keys()].filter((c) => !before.has(c));
    const victim = cluster.targets.find((t) => fresh.some((c) => copyOn(cluster, t.index, c)))!;
    const chid = fresh.find((c) => copyOn(cluster, victim.index, c))!;

    // A running target is not verified offline: it scrubs itself.
    const refused = await nodeTarget("verify", "--data-dir", victim.dataDir);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`a target (pid ${victim.proc!.pid}) is serving`);

    await cluster.stopTarget(victim.index);
    const sound = await nodeTarget("verify", "--data-dir", victim.dataDir, "--json");
    expect(sound.code).toBe(0);
    const report = JSON.parse(sound.stdout) as { items: number; damaged: unknown[] };
    expect(report.damaged).toEqual([]);
    expect(report.items).toBeGreaterThanOrEqual(chunkCopies(cluster, [victim.index]).size);
    expect(sound.stderr).toMatch(new RegExp(`^verified ${report.items} of ${report.items} items \\(.* MiB\\), 0 damaged$`, "m"));

    damageCopy(copyOn(cluster, victim.index, chid)!);
    expect(goodCopies(cluster, chid)).toBe(2);
    const damaged = await nodeTarget("verify", "--data-dir", victim.dataDir);
    expect(damaged.code).toBe(3);
    expect(damaged.stdout).toContain(`damaged chunk ${chid}`);
    expect(damaged.stdout).toMatch(/1 damaged, quarantined/);
    expect(copyOn(cluster, victim.index, chid)).toBeNull();
    expect(readdirSync(join(victim.dataDir, "quarantine")).some((f) => f.endsWith(chid))).toBe(true);

    cluster.startTarget(victim.index);
    await cluster.waitForTargets();
    expect(await cluster.waitForLog(victim.index, "data directory lost data: groups will recount and restore copies", 10_000)).toBe(true);
    expect(await eventually(() => goodCopies(cluster, chid) === 3)).toBe(true);
    expect(sameBytes(await bodyBytes((await s3.send(new GetObjectCommand({ Bucket: B, Key: "verify.bin" }))).Body), body)).toBe(true);
  });
});
