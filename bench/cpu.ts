#!/usr/bin/env node
// npm run bench:cpu -- --workload put|get --size 64m|1m|4k [--count N] [--concurrency C]
//                      [--rounds K] [--replicas R] [--perf] [--echo] [--var KEY=VALUE ...]
//
// Where the CPU goes for one workload: starts a fresh local cluster, runs the workload for K
// rounds (fresh bodies each PUT round, so deduplication flatters nothing) and prints each
// round's throughput, the median, and the CPU time each process spent per MB moved (workerd,
// the targets, the client). On a 2-core machine every process competes for the same cores, so
// CPU per MB, not one process's speed, is what bounds throughput. With --perf it also records
// a system-wide `perf` profile (Debian's linux-perf) to /tmp/edgestore-perf.data, with JIT
// symbols for the Worker; the V8 flag that needs has been seen to leave hot Worker code
// unoptimised, so take throughput from a run without --perf. Never run by CI: timings belong
// here, not in tests.

import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { signRequest } from "../common/s3/sign-request.ts";
import { UNSIGNED_PAYLOAD } from "../common/s3/sigv4.ts";
import { LocalCluster, sleep } from "../scripts/cluster.ts";
import { freePort, pseudoRandom } from "../test/integration/helpers.ts";
import { MinimalHttp } from "./http-client.ts";
import { cpuMs } from "./measure.ts";

const { values } = parseArgs({
  options: {
    workload: { type: "string", default: "put" },
    size: { type: "string", default: "64m" },
    count: { type: "string" },
    concurrency: { type: "string", default: "1" },
    rounds: { type: "string", default: "3" },
    replicas: { type: "string", default: "1" },
    perf: { type: "boolean", default: false },
    /** Echo the cluster's logs (workerd, targets) to stdout. */
    echo: { type: "boolean", default: false },
    var: { type: "string", multiple: true, default: [] },
  },
});

const SIZES: Record<string, number> = { "4k": 4096, "1m": 1 << 20, "64m": 64 << 20 };
const size: number = SIZES[values.size!] ?? 0;
if (!size) throw new Error(`--size is one of ${Object.keys(SIZES).join(", ")}`);
const count = Number(values.count ?? (size >= 64 << 20 ? 4 : size >= 1 << 20 ? 128 : 2000));
const concurrency = Number(values.concurrency);
const rounds = Number(values.rounds);
const isPut = values.workload === "put";
const vars = Object.fromEntries(values.var!.map((kv) => kv.split("=") as [string, string]));

/** Every process of ours, by role: workerd and its host under the gateway's group, targets, this client. */
function processes(c: LocalCluster): Map<string, number> {
  const out = new Map<string, number>();
  const root = c.gatewayPid()!;
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const pgrp = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
      if (pgrp !== root) continue;
      const cmd = readFileSync(`/proc/${d}/cmdline`, "utf8");
      out.set(cmd.includes("workerd") ? "workerd" : `gateway host ${d}`, Number(d));
    } catch {
      // gone
    }
  }
  for (const t of c.targets) if (t.proc?.pid) out.set(`target-${t.index}`, t.proc.pid);
  out.set("client", process.pid);
  return out;
}

async function main(): Promise<void> {
  // JIT symbols for perf: workerd writes /tmp/perf-<pid>.map.
  if (values.perf) process.env.MINIFLARE_WORKERD_V8_FLAGS = "--perf-basic-prof";
  const dir = mkdtempSync(join(tmpdir(), "edgestore-cpu-"));
  const cluster = new LocalCluster({ port: await freePort(), dataDir: dir, vars: { REPLICAS: values.replicas!, ...vars }, echo: values.echo });
  process.stdout.write(`starting a local cluster (R=${values.replicas}) in ${dir}...\n`);
  cluster.stopOnSignal();
  await cluster.start();
  const http = new MinimalHttp(cluster.endpoint);
  const send = async (method: string, path: string, body?: Uint8Array): Promise<number> => {
    const url = `${cluster.endpoint}${path}`;
    const headers = (await signRequest({ method, url, payloadHash: UNSIGNED_PAYLOAD, accessKey: cluster.accessKey, secretKey: cluster.secretKey, region: cluster.region })) as unknown as Record<string, string>;
    const r = await http.send(method, path, headers, body ?? null);
    if (r.status !== 200) throw new Error(`${method} ${path}: ${r.status} ${r.body?.toString() ?? ""}`);
    return r.length;
  };
  try {
    await send("PUT", "/cpu");
    // Distinct bodies per PUT round; small objects reuse a few (they are stored inline anyway).
    const distinct = size >= 1 << 20 ? count : 64;
    const bodiesFor = (round: number) => Array.from({ length: distinct }, (_, i) => pseudoRandom(size, 1 + round * 100_000 + i));
    if (!isPut) {
      const bodies = bodiesFor(999);
      for (let i = 0; i < count; i++) await send("PUT", `/cpu/obj-${i}`, bodies[i % distinct]);
    }
    const procs = processes(cluster);
    const cpu = new Map([...procs.keys()].map((k) => [k, 0]));
    const rates: number[] = [];
    let perf: ReturnType<typeof spawn> | null = null;
    for (let r = 0; r < rounds; r++) {
      const bodies = isPut ? bodiesFor(r) : [];
      if (values.perf && r === rounds - 1) {
        perf = spawn("perf", ["record", "-a", "-g", "-e", "cpu-clock", "-F", "999", "-o", "/tmp/edgestore-perf.data"], { stdio: "ignore" });
        await sleep(500);
      }
      const before = new Map([...procs].map(([k, pid]) => [k, cpuMs(pid)]));
      let next = 0;
      const lat: number[] = [];
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          for (let i = next++; i < count; i = next++) {
            const s = performance.now();
            if (isPut) await send("PUT", `/cpu/r${r}-${i}`, bodies[i % distinct]);
            else await send("GET", `/cpu/obj-${i}`);
            lat.push(performance.now() - s);
          }
        }),
      );
      const secs = (performance.now() - t0) / 1000;
      lat.sort((a, b) => a - b);
      const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]!.toFixed(1);
      for (const [k, pid] of procs) cpu.set(k, cpu.get(k)! + cpuMs(pid) - before.get(k)!);
      rates.push((count * size) / 1e6 / secs);
      process.stdout.write(`round ${r + 1}: ${rates.at(-1)!.toFixed(1)} MB/s, ${(count / secs).toFixed(0)} ops/s, latency p10 ${q(0.1)} p50 ${q(0.5)} p90 ${q(0.9)} p99 ${q(0.99)} ms\n`);
    }
    if (perf) {
      perf.kill("SIGINT");
      await new Promise((r) => perf!.once("exit", r));
    }
    const sorted = [...rates].sort((a, b) => a - b);
    const mb = (count * size * rounds) / 1e6;
    process.stdout.write(
      `\n${values.workload} ${count} x ${values.size}, concurrency ${concurrency}, R=${values.replicas}: median ${sorted[sorted.length >> 1]!.toFixed(1)} MB/s, ${((sorted[sorted.length >> 1]! * 1e6) / size).toFixed(0)} ops/s\n`,
    );
    process.stdout.write(`CPU per MB moved (all rounds):\n`);
    let targets = 0;
    for (const [k, ms] of cpu) {
      if (k.startsWith("target-")) targets += ms;
      else if (ms <= 0) continue;
      else process.stdout.write(`  ${k.padEnd(22)} ${(ms / mb).toFixed(2)} ms/MB  ${((ms / (count * rounds)) * 1000).toFixed(0)} µs/op\n`);
    }
    process.stdout.write(`  ${"targets (sum)".padEnd(22)} ${(targets / mb).toFixed(2)} ms/MB  ${((targets / (count * rounds)) * 1000).toFixed(0)} µs/op\n`);
    const total = [...cpu.values()].reduce((a, b) => a + b, 0);
    process.stdout.write(`  ${"all".padEnd(22)} ${(total / mb).toFixed(2)} ms/MB\n`);
    if (values.perf) process.stdout.write(`\nperf profile of the last round: perf report -i /tmp/edgestore-perf.data --no-children --sort pid,sym\n`);
  } finally {
    http.close();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
