#!/usr/bin/env node
// npm run bench:dedup [-- --scenario a,b,c] [--way put,sync,random] [--avg 65536] [--scale 1] [--restic]
//
// Issue 5's storage benchmark: bytes sent over the wire and bytes stored for
//   (a) a 64 MiB text document edited 20 times, 8 small inserts/deletes/overwrites each;
//   (b) a tree of 2,000 small files, 10% of them changed per version, 10 versions;
//   (c) a 128 MiB disk image, 1% of its 4 KiB blocks rewritten per version, 10 versions;
// each written as whole-object PUTs ("put"), through the chunk-aware client's sync ("sync":
// chunk locally, probe, send the misses), and for (c) also as a random-write session that
// writes only the rewritten blocks ("random"). Data: bench/dedup-data.ts, generated, seeded.
//
// The bucket is versioned: every version written stays, as every restic snapshot does.
// Stored = the chunks and version manifests the targets hold after the run, at one replica (REPLICAS=1), so the ratio is logical / physical for one
// copy, like restic's. Each scenario and way gets its own fresh cluster: nothing deduplicates
// against another run's data. --avg sets the chunker (min = avg/4, max = avg*4), so the
// parameters can be chosen by these figures. Each run also reports what the versions cost in
// Durable Object storage (every group's and shard's SQLite, from the admin status), per version
// and with the targets' bytes; --restic stores the same versions with restic (zstd) in the same
// run, the anchor. Never run by CI.

import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { chunksOnDisk } from "../node-target/packs/on-disk.ts";
import { DatabaseSync } from "node:sqlite";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import type WebSocket from "ws";
import { EditingSession } from "../client/session.ts";
import { signRequest } from "../common/s3/sign-request.ts";
import { UNSIGNED_PAYLOAD } from "../common/s3/sigv4.ts";
import { LocalCluster } from "../scripts/cluster.ts";
import { freePort } from "../test/integration/helpers.ts";
import { BLOCK, changeTree, editText, makeImage, makeTree, rewriteBlocks, Rng, TextSource } from "./dedup-data.ts";
import { run } from "./measure.ts";

const { values } = parseArgs({
  options: {
    scenario: { type: "string", default: "a,b,c" },
    way: { type: "string", default: "put,sync,random" },
    avg: { type: "string", default: "" },
    "inline-max": { type: "string", default: "" },
    // Shrinks every size (document, image, file count) for a quick look; 1 is the issue's.
    scale: { type: "string", default: "1" },
    // Also store every version as a restic snapshot (zstd, repository v2), the anchor, in the same run.
    restic: { type: "boolean", default: false },
  },
});
const MiB = 1024 * 1024;
const SCALE = Number(values.scale);
const scenarios = values.scenario!.split(",");
const ways = values.way!.split(",");

function log(s: string): void {
  process.stdout.write(`${s}\n`);
}

/** Bytes of the chunks a target holds (live records of its packs, by content: dead space waiting for compaction is not stored data). */
function chunkBytes(dataDir: string): number {
  return chunksOnDisk(dataDir).reduce((n, c) => n + c.length, 0);
}

/**
 * Bytes of the version manifests a target keeps (node-target/vm-log.ts): each row's manifest
 * and its three ids, and each name's dictionaries with theirs. Counted by content, not file
 * size: SQLite's write-ahead log and free pages come and go with checkpoints and say nothing
 * about what is stored.
 */
function manifestBytes(dataDir: string): number {
  const db = new DatabaseSync(join(dataDir, "index.sqlite"), { readOnly: true });
  try {
    const rows = db.prepare("SELECT coalesce(sum(length(bytes) + length(nhid) + length(uvid) + length(chid)), 0) AS n FROM vm").get() as { n: number };
    const dicts = db.prepare("SELECT coalesce(sum(length(bytes) + length(nhid) + 8), 0) AS n FROM vm_dicts").get() as { n: number };
    return Number(rows.n) + Number(dicts.n);
  } finally {
    db.close();
  }
}

interface Tally {
  logical: number;
  wire: number;
}

/** One fresh cluster, and what a scenario needs of it. */
class Bench {
  readonly cluster: LocalCluster;
  readonly dir: string;
  private session: EditingSession | null = null;

  constructor(cluster: LocalCluster, dir: string) {
    this.cluster = cluster;
    this.dir = dir;
  }

  static async start(): Promise<Bench> {
    const dir = mkdtempSync(join(tmpdir(), "edgestore-bench-dedup-"));
    const vars: Record<string, string> = { REPLICAS: "1" };
    if (values.avg) {
      const avg = Number(values.avg);
      Object.assign(vars, { CHUNK_MIN: String(avg / 4), CHUNK_AVG: String(avg), CHUNK_MAX: String(avg * 4) });
    }
    if (values["inline-max"]) vars.INLINE_MAX = values["inline-max"];
    const cluster = new LocalCluster({ port: await freePort(), dataDir: dir, vars });
    cluster.stopOnSignal();
    await cluster.start();
    const b = new Bench(cluster, dir);
    await b.send("PUT", "/bench");
    // Every version is kept, as a backup tool's snapshots keep theirs (restic's figures are that).
    await b.send("PUT", "/bench?versioning", new TextEncoder().encode('<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>Enabled</Status></VersioningConfiguration>'));
    return b;
  }

  async send(method: string, path: string, body?: Uint8Array): Promise<void> {
    const c = this.cluster;
    const url = `${c.endpoint}${path}`;
    const h = await signRequest({ method, url, payloadHash: UNSIGNED_PAYLOAD, accessKey: c.accessKey, secretKey: c.secretKey, region: c.region });
    const res = await fetch(url, { method, headers: { ...h }, ...(body ? { body: body as Uint8Array<ArrayBuffer> } : {}) });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`${method} ${path}: ${res.status}`);
  }

  async editing(): Promise<EditingSession> {
    const c = this.cluster;
    this.session ??= await EditingSession.open({ endpoint: c.endpoint, region: c.region, accessKeyId: c.accessKey, secretAccessKey: c.secretKey });
    return this.session;
  }

  /** Bytes the session's connection has written to the network: commands, payload, framing. */
  wireOfSession(): number {
    if (!this.session) return 0;
    const ws = (this.session as unknown as { ws: WebSocket & { _socket: { bytesWritten: number } } }).ws;
    return ws._socket.bytesWritten;
  }

  /** Bytes of SQLite storage every group and manifest shard holds (Durable Object storage, the costly tier on Cloudflare). */
  async durableBytes(): Promise<number> {
    const c = this.cluster;
    const r = await fetch(`${c.endpoint}/_admin/status.json`, { headers: { authorization: `Bearer ${c.adminToken}` } });
    const s = (await r.json()) as { groups: { storage?: { bytes: number } }[]; shards: { storage?: { bytes: number } }[] };
    return [...s.groups, ...s.shards].reduce((n, x) => n + (x.storage?.bytes ?? 0), 0);
  }

  stored(): { chunks: number; manifests: number } {
    const ts = this.cluster.targets;
    return { chunks: ts.reduce((n, t) => n + chunkBytes(t.dataDir), 0), manifests: ts.reduce((n, t) => n + manifestBytes(t.dataDir), 0) };
  }

  async stop(): Promise<void> {
    await this.session?.close();
    await this.cluster.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Version `v` of every object of a scenario, handed to `write` in order. */
type Versions = (write: (objects: { key: string; bytes: Uint8Array; blocks?: number[] }[]) => Promise<void>) => Promise<void>;

function documentVersions(): Versions {
  return async (write) => {
    const text = new TextSource(1);
    const rng = new Rng(2);
    let doc = text.text(Math.round(64 * MiB * SCALE));
    await write([{ key: "doc.txt", bytes: doc }]);
    for (let v = 0; v < 20; v++) {
      doc = editText(doc, text, rng, 8);
      await write([{ key: "doc.txt", bytes: doc }]);
    }
  };
}

function treeVersions(): Versions {
  return async (write) => {
    const text = new TextSource(3);
    const rng = new Rng(4);
    const tree = makeTree(text, rng, Math.round(2000 * SCALE));
    const all = () => [...tree].map(([key, bytes]) => ({ key, bytes }));
    await write(all());
    for (let v = 1; v < 10; v++) {
      changeTree(tree, text, rng);
      await write(all());
    }
  };
}

function imageVersions(): Versions {
  return async (write) => {
    const text = new TextSource(5);
    const rng = new Rng(6);
    const img = makeImage(text, rng, Math.round((128 * MiB * SCALE) / BLOCK) * BLOCK);
    await write([{ key: "disk.img", bytes: img }]);
    for (let v = 1; v < 10; v++) {
      const blocks = rewriteBlocks(img, text, rng);
      await write([{ key: "disk.img", bytes: img, blocks }]);
    }
  };
}

async function measure(name: string, versions: Versions, way: string): Promise<void> {
  const b = await Bench.start();
  const t0 = performance.now();
  const tally: Tally = { logical: 0, wire: 0 };
  let first = true;
  let written = 0;
  const durableBefore = await b.durableBytes();
  try {
    await versions(async (objects) => {
      tally.logical += objects.reduce((n, o) => n + o.bytes.length, 0);
      written += objects.length;
      if (way === "put") {
        await run(16, objects.length, async (i) => (await b.send("PUT", `/bench/${objects[i]!.key}`, objects[i]!.bytes), 0));
        tally.wire += objects.reduce((n, o) => n + o.bytes.length, 0);
        return;
      }
      const s = await b.editing();
      await run(16, objects.length, async (i) => {
        const o = objects[i]!;
        if (way === "random" && !first && o.blocks) {
          const e = await s.begin({ bucket: "bench", key: o.key, mode: "random" });
          for (const blk of o.blocks) await e.write(blk * BLOCK, o.bytes.subarray(blk * BLOCK, (blk + 1) * BLOCK));
          await e.commit();
        } else {
          const e = await s.begin({ bucket: "bench", key: o.key, mode: "replace" });
          await e.sync(o.bytes);
          await e.commit();
        }
        return 0;
      });
      first = false;
    });
    if (way !== "put") tally.wire = b.wireOfSession();
    const { chunks, manifests } = b.stored();
    const stored = chunks + manifests;
    const durable = (await b.durableBytes()) - durableBefore;
    const secs = (performance.now() - t0) / 1000;
    log(
      `${name.padEnd(9)} ${way.padEnd(6)} logical ${(tally.logical / MiB).toFixed(1).padStart(7)} MiB  wire ${(tally.wire / MiB).toFixed(2).padStart(8)} MiB (${(tally.logical / tally.wire).toFixed(1).padStart(6)}×)  stored ${(stored / MiB).toFixed(2).padStart(7)} MiB (${(tally.logical / stored).toFixed(1).padStart(6)}×; manifests ${(manifests / MiB).toFixed(2)})  ${secs.toFixed(0)} s`,
    );
    log(
      `${"".padEnd(16)} ${written} versions: targets ${(stored / written).toFixed(0)} B/version (manifests ${(manifests / written).toFixed(0)}); Durable Object storage +${(durable / MiB).toFixed(2)} MiB, ${(durable / written).toFixed(0)} B/version; with it ${(tally.logical / (stored + durable)).toFixed(1)}×`,
    );
  } finally {
    await b.stop();
  }
}

/** The anchor: the same versions as restic snapshots (repository v2, zstd), what its repository holds after. */
async function measureRestic(name: string, versions: Versions): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), "edgestore-bench-restic-"));
  const repo = join(work, "repo");
  const tree = join(work, "tree");
  const env = { ...process.env, RESTIC_PASSWORD: "bench" };
  const restic = (...args: string[]) => execFileSync("restic", args, { env, stdio: ["ignore", "ignore", "pipe"] });
  try {
    restic("init", "--repo", repo, "--repository-version", "2");
    let logical = 0;
    await versions(async (objects) => {
      rmSync(tree, { recursive: true, force: true });
      for (const o of objects) {
        const path = join(tree, o.key);
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, o.bytes);
        logical += o.bytes.length;
      }
      restic("backup", "--repo", repo, "--compression", "auto", "--quiet", tree);
    });
    const stored = Number(execFileSync("du", ["-sb", repo], { encoding: "utf8" }).split("\t")[0]);
    log(`${name.padEnd(9)} restic logical ${(logical / MiB).toFixed(1).padStart(7)} MiB  stored ${(stored / MiB).toFixed(2).padStart(7)} MiB (${(logical / stored).toFixed(1).padStart(6)}×)  repository v2, zstd, same run`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const SCENARIOS: Record<string, [string, Versions]> = {
  a: ["(a) doc", documentVersions()],
  b: ["(b) tree", treeVersions()],
  c: ["(c) image", imageVersions()],
};

log(`chunker: ${values.avg ? `avg ${values.avg} (min avg/4, max avg*4)` : "wrangler.toml's"}; inline max ${values["inline-max"] || "wrangler.toml's"}; R=1; scale ${SCALE}`);
log("ratio = logical bytes / bytes (higher is better)");
for (const s of scenarios) {
  const [name, versions] = SCENARIOS[s]!;
  for (const way of ways) {
    if (way === "random" && s !== "c") continue;
    await measure(name, versions, way);
  }
  if (values.restic) await measureRestic(name, versions);
}
