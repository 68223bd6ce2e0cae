// What the benchmarks share: running a workload at a concurrency, reporting it, and reading
// processes' peak memory from /proc.

import { readFileSync, readdirSync } from "node:fs";

export interface Result {
  ops: number;
  bytes: number;
  seconds: number;
  latencies: number[];
}

export async function run(concurrency: number, count: number, op: (i: number) => Promise<number>): Promise<Result> {
  const latencies: number[] = [];
  let next = 0;
  let bytes = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < count; i = next++) {
        const s = performance.now();
        const n = await op(i);
        bytes += n;
        latencies.push(performance.now() - s);
      }
    }),
  );
  return { ops: count, bytes, seconds: (performance.now() - t0) / 1000, latencies };
}

export function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

export function report(label: string, r: Result): void {
  const mbps = r.bytes / 1e6 / r.seconds;
  const ops = r.ops / r.seconds;
  process.stdout.write(
    `${label.padEnd(44)} ${mbps.toFixed(1).padStart(8)} MB/s ${ops.toFixed(0).padStart(7)} ops/s   p50 ${pct(r.latencies, 50).toFixed(1).padStart(7)} ms   p99 ${pct(r.latencies, 99).toFixed(1).padStart(7)} ms\n`,
  );
}

/** Peak resident set (VmHWM) of a process, in MiB. */
export function peakRss(pid: number): number | null {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** workerd runs as a descendant of the wrangler process we started. */
export function workerdPids(root: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const pgrp = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
      const cmd = readFileSync(`/proc/${d}/cmdline`, "utf8");
      if (pgrp === root && cmd.includes("workerd")) out.push(Number(d));
    } catch {
      // process went away
    }
  }
  return out;
}


/** Runs `op` at a concurrency until `seconds` have passed (an op started before then finishes). */
export async function runFor(concurrency: number, seconds: number, op: (i: number) => Promise<number>): Promise<Result> {
  const latencies: number[] = [];
  let next = 0;
  let bytes = 0;
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const s = performance.now();
        bytes += await op(next++);
        latencies.push(performance.now() - s);
      }
    }),
  );
  return { ops: latencies.length, bytes, seconds: (performance.now() - t0) / 1000, latencies };
}

/** CPU time (user + system) a process has used, in ms. */
export function cpuMs(pid: number): number {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = st.slice(st.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return 0;
  }
}

/** Pids of processes whose command name (comm) is `name`. */
export function pidsNamed(name: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, "utf8").trim() === name) out.push(Number(d));
    } catch {
      // process went away
    }
  }
  return out;
}

/**
 * A local cluster's processes by role: workerd (every workerd process the gateway host
 * started), its Node host, the targets (summed), and this client.
 */
export function clusterProcesses(c: { gatewayPid(): number | undefined; targets: readonly { proc: { pid?: number } | null }[] }): Map<string, number[]> {
  const out = new Map<string, number[]>([["workerd", []], ["host", []], ["targets", []], ["client", [process.pid]]]);
  const root = c.gatewayPid();
  for (const d of readdirSync("/proc")) {
    if (!root || !/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const pgrp = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
      if (pgrp !== root) continue;
      const cmd = readFileSync(`/proc/${d}/cmdline`, "utf8");
      out.get(cmd.includes("workerd") ? "workerd" : "host")!.push(Number(d));
    } catch {
      // process went away
    }
  }
  for (const t of c.targets) if (t.proc?.pid) out.get("targets")!.push(t.proc.pid);
  return out;
}
