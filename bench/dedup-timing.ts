#!/usr/bin/env node
// npm run bench:dedup-timing [-- --count 200] [--size 262144] [--replicas 3]
//
// Can a tenant tell, by timing its own PUTs, whether another tenant already stores some
// content? Chunks are deduplicated cluster-wide, and a chunk a group knows is acknowledged
// without its bytes being stored again, so a PUT of content another tenant holds may answer
// sooner. This starts a fresh local cluster, makes tenants A and B, has A store `count` random
// objects, then has B PUT, in random order, A's bodies ("held") and as many fresh ones, and
// prints both latency distributions and how well the best threshold tells them apart (50 %:
// not at all; 100 %: always). docs/security.md states the figure. Never run by CI.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { signRequest } from "../common/s3/sign-request.ts";
import { UNSIGNED_PAYLOAD } from "../common/s3/sigv4.ts";
import { LocalCluster } from "../scripts/cluster.ts";
import { freePort, pseudoRandom } from "../test/integration/helpers.ts";
import { MinimalHttp } from "./http-client.ts";

const { values } = parseArgs({ options: { count: { type: "string", default: "200" }, size: { type: "string", default: "262144" }, replicas: { type: "string", default: "3" } } });
const count = Number(values.count);
const size = Number(values.size);

interface Key {
  accessKeyId: string;
  secretAccessKey: string;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "edgestore-dedup-timing-"));
  const cluster = new LocalCluster({ port: await freePort(), dataDir: dir, vars: { REPLICAS: values.replicas! } });
  cluster.stopOnSignal();
  await cluster.start();
  try {
    const admin = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${cluster.endpoint}${path}`, { method, headers: { authorization: `Bearer ${cluster.adminToken}`, ...(body ? { "content-type": "application/json" } : {}) }, body: body ? JSON.stringify(body) : undefined });
      if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
      return res.json() as Promise<Key>;
    };
    const keys: Key[] = [];
    for (const t of ["timing-a", "timing-b"]) {
      await admin("POST", "/_admin/tenants", { name: t });
      keys.push(await admin("POST", `/_admin/tenants/${t}/keys`));
    }
    const http = new MinimalHttp(cluster.endpoint);
    const put = async (k: Key, path: string, body: Uint8Array | null): Promise<number> => {
      const url = `${cluster.endpoint}${path}`;
      const headers = (await signRequest({ method: "PUT", url, payloadHash: UNSIGNED_PAYLOAD, accessKey: k.accessKeyId, secretKey: k.secretAccessKey, region: cluster.region })) as unknown as Record<string, string>;
      const t0 = performance.now();
      const r = await http.send("PUT", path, headers, body);
      if (r.status !== 200) throw new Error(`PUT ${path}: ${r.status}`);
      return performance.now() - t0;
    };
    const [a, b] = keys as [Key, Key];
    await put(a, "/a-bucket", null);
    await put(b, "/b-bucket", null);
    const held = Array.from({ length: count }, (_, i) => pseudoRandom(size, 70_000 + i));
    for (let i = 0; i < count; i++) await put(a, `/a-bucket/o${i}`, held[i]!);
    // Warm-up, so the first measured PUTs pay no start-up cost.
    for (let i = 0; i < 20; i++) await put(b, `/b-bucket/warm${i}`, pseudoRandom(size, 90_000 + i));
    const trials = [...held.map((body) => ({ kind: "held" as const, body })), ...Array.from({ length: count }, (_, i) => ({ kind: "fresh" as const, body: pseudoRandom(size, 80_000 + i) }))];
    for (let i = trials.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [trials[i], trials[j]] = [trials[j]!, trials[i]!];
    }
    const ms = { held: [] as number[], fresh: [] as number[] };
    for (let i = 0; i < trials.length; i++) ms[trials[i]!.kind].push(await put(b, `/b-bucket/t${i}`, trials[i]!.body));
    const q = (xs: number[], p: number) => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;
    // The best single threshold "faster than T means held": how often it is right.
    let best = 0.5;
    for (const t of [...ms.held, ...ms.fresh]) {
      const right = ms.held.filter((x) => x <= t).length + ms.fresh.filter((x) => x > t).length;
      best = Math.max(best, right / (ms.held.length + ms.fresh.length));
    }
    const line = (k: "held" | "fresh") => `${k.padEnd(5)} p10 ${q(ms[k], 0.1).toFixed(1)}  p50 ${q(ms[k], 0.5).toFixed(1)}  p90 ${q(ms[k], 0.9).toFixed(1)} ms`;
    process.stdout.write(`tenant B's PUTs of ${size}-byte objects, R=${values.replicas}, ${count} of each kind, in random order\n${line("held")}   (content tenant A stores)\n${line("fresh")}   (content nobody stores)\n`);
    process.stdout.write(`best threshold tells them apart ${(best * 100).toFixed(1)} % of the time (50 %: not at all)\n`);
  } finally {
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
