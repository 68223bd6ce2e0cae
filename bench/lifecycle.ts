#!/usr/bin/env node
// npm run bench:lifecycle [-- --objects 100000] [--expire 0.1] [--replicas 1|3]
//
// Starts a fresh local cluster, loads N small objects into one bucket, and prints how long a
// lifecycle pass takes over them (every shard walking its own slice, started by the admin API's
// `lifecycle run` and timed until every shard reports its pass done):
// - a rule that matches nothing: the cost of the walk alone;
// - a rule that expires a fraction of the objects (logs/, `--expire`): walk plus deletions;
// and what clients see meanwhile: GET latency of small objects while each pass runs, beside the
// same load with no pass running.
// Never run by CI: timings belong here, not in tests.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { LocalCluster } from "../scripts/cluster.ts";
import { freePort } from "../test/integration/helpers.ts";
import { MinimalHttp, signedSend } from "./http-client.ts";
import { pct, run } from "./measure.ts";

const { values } = parseArgs({
  options: {
    objects: { type: "string", default: "100000" },
    expire: { type: "string", default: "0.1" },
    replicas: { type: "string", default: "1" },
  },
});
const N = Number(values.objects);
const EXPIRE = Number(values.expire);
const expiring = (i: number) => i % Math.round(1 / EXPIRE) === 0;
const keyOf = (i: number) => `${expiring(i) ? "logs" : "data"}/host-${i % 97}/${i}.log`;

function log(s: string): void {
  process.stdout.write(`${s}\n`);
}

interface ShardPass {
  running: boolean;
  keysWalked: number;
  actionsDone: number;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "edgestore-bench-lifecycle-"));
  const cluster = new LocalCluster({ port: await freePort(), dataDir: dir, vars: { REPLICAS: values.replicas! } });
  log(`starting a local cluster (R=${values.replicas}, 6 targets) in ${dir}...`);
  cluster.stopOnSignal();
  await cluster.start();
  const http = new MinimalHttp(cluster.endpoint);
  const send = signedSend(http, cluster);
  const admin = async (method: string, path: string): Promise<{ shards: ShardPass[] }> => {
    const r = await fetch(`${cluster.endpoint}/_admin${path}`, { method, headers: { authorization: `Bearer ${cluster.adminToken}` } });
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
    return (await r.json()) as { shards: ShardPass[] };
  };
  const rule = (prefix: string) => {
    const midnight = new Date(Math.floor(Date.now() / 86_400_000) * 86_400_000).toISOString();
    return `<LifecycleConfiguration><Rule><ID>bench</ID><Filter><Prefix>${prefix}</Prefix></Filter><Status>Enabled</Status><Expiration><Date>${midnight}</Date></Expiration></Rule></LifecycleConfiguration>`;
  };
  const body = new TextEncoder().encode("x".repeat(100));

  /** GETs of objects that stay, at concurrency 4, until `until` settles; their latencies. */
  const readsDuring = async (until: Promise<unknown>): Promise<number[]> => {
    let done = false;
    void until.finally(() => (done = true));
    const lat: number[] = [];
    let i = 1;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (!done) {
          const k = i++ % N;
          if (expiring(k)) continue;
          const t = performance.now();
          await send("GET", `/lc-bench/${keyOf(k)}`);
          lat.push(performance.now() - t);
        }
      }),
    );
    return lat;
  };

  /** Start a pass on every shard and wait for all to finish; its wall time and totals. */
  const pass = async (): Promise<{ ms: number; walked: number; done: number }> => {
    const t = performance.now();
    await admin("POST", "/lifecycle/run");
    for (;;) {
      const s = await admin("GET", "/lifecycle");
      if (s.shards.every((sh) => !sh.running)) {
        return { ms: performance.now() - t, walked: s.shards.reduce((n, sh) => n + sh.keysWalked, 0), done: s.shards.reduce((n, sh) => n + sh.actionsDone, 0) };
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const latency = (xs: number[]) => `GET p50 ${pct(xs, 50).toFixed(1)} ms, p99 ${pct(xs, 99).toFixed(1)} ms (${xs.length} reads)`;

  try {
    await send("PUT", "/lc-bench");
    let t = performance.now();
    await run(16, N, async (i) => (await send("PUT", `/lc-bench/${keyOf(i)}`, body), body.length));
    log(`loaded ${N} objects of 100 B at concurrency 16 in ${((performance.now() - t) / 1000).toFixed(1)} s`);

    const idle = await readsDuring(new Promise((r) => setTimeout(r, 10_000)));
    log(`no pass running:                         ${latency(idle)}`);

    await send("PUT", "/lc-bench?lifecycle", new TextEncoder().encode(rule("nothing-here/")));
    let during: Promise<number[]>;
    let p = pass();
    during = readsDuring(p);
    const walk = await p;
    log(`pass, rule matching nothing:   ${(walk.ms / 1000).toFixed(2)} s for ${walk.walked} keys (${((walk.walked / walk.ms) * 1000).toFixed(0)} keys/s); ${latency(await during)}`);

    await send("PUT", "/lc-bench?lifecycle", new TextEncoder().encode(rule("logs/")));
    p = pass();
    during = readsDuring(p);
    const expire = await p;
    log(`pass, rule expiring ${(EXPIRE * 100).toFixed(0)}%:       ${(expire.ms / 1000).toFixed(2)} s for ${expire.walked} keys, ${expire.done} expired (${((expire.done / expire.ms) * 1000).toFixed(0)} deletions/s); ${latency(await during)}`);

    let want = 0;
    for (let i = 0; i < N; i++) if (expiring(i)) want++;
    log(`objects under logs/ when the pass began: ${want}; expired by it: ${expire.done}`);
  } finally {
    http.close();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
