// Shared by the integration tests: a real local cluster on a free port in a temporary
// directory, an S3 client pointed at it, and deterministic test data.

import { CreateBucketCommand, PutBucketVersioningCommand, PutObjectCommand, S3Client, S3ServiceException } from "@aws-sdk/client-s3";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, existsSync, fstatSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterAll, beforeAll } from "vitest";
import { EdgestoreExtensions } from "../../client/extensions.ts";
import { EditingSession, SessionError } from "../../client/session.ts";
import { LocalCluster, type ClusterOptions } from "../../scripts/cluster.ts";
import type { Chid } from "../../common/ids.ts";
import { chunkOnDisk, chunksOnDisk, readOnDisk, type ChunkOnDisk } from "../../node-target/packs/on-disk.ts";

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

export async function startTestCluster(opts: Partial<ClusterOptions> = {}): Promise<{ cluster: LocalCluster; dir: string }> {
  const dir = opts.dataDir ?? mkdtempSync(join(tmpdir(), "edgestore-it-"));
  const cluster = new LocalCluster({ port: await freePort(), ...opts, dataDir: dir });
  try {
    await cluster.start();
  } catch (e) {
    await cluster.stop();
    throw e;
  }
  return { cluster, dir };
}

/**
 * One real cluster for the enclosing suite (the file, or a describe): started before its tests
 * with `bucket` created (versioned if asked), handed to `ready`, stopped and removed after.
 */
export function clusterForSuite(
  opts: Partial<ClusterOptions> & { bucket: string; versioned?: boolean },
  ready: (c: { cluster: LocalCluster; s3: S3Client }) => void,
): void {
  let started: { cluster: LocalCluster; dir: string } | null = null;
  beforeAll(async () => {
    const { bucket, versioned, ...clusterOpts } = opts;
    started = await startTestCluster(clusterOpts);
    const s3 = clientFor(started.cluster);
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    if (versioned) await s3.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: "Enabled" } }));
    ready({ cluster: started.cluster, s3 });
  });
  afterAll(async () => {
    if (!started) return;
    started.cluster.freezeTargets(started.cluster.targets.map((t) => t.index), false);
    await started.cluster.stop();
    removeDir(started.dir);
  });
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** The cluster's extensions client (snapshots, sessions, layouts) with its S3 credentials. */
export function extensionsFor(cluster: LocalCluster): EdgestoreExtensions {
  return new EdgestoreExtensions({ endpoint: cluster.endpoint, region: cluster.region, accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey });
}

/** What the admin API answers at `path` (under /_admin/), as JSON; throws on a status other than 200. */
export async function adminJson<T>(cluster: LocalCluster, path: string): Promise<T> {
  const r = await fetch(`${cluster.endpoint}/_admin/${path}`, { headers: { authorization: `Bearer ${cluster.adminToken}` } });
  if (r.status !== 200) throw new Error(`/_admin/${path} answered ${r.status}: ${await r.text()}`);
  return (await r.json()) as T;
}

/** `fn` over each of the local gateway's Durable Object SQLite files that has `table`, opened read-only. */
export function eachObjectDb<T>(cluster: LocalCluster, table: string, fn: (db: DatabaseSync) => T): T[] {
  const dir = join(cluster.dataDir, "wrangler");
  const out: T[] = [];
  for (const f of (readdirSync(dir, { recursive: true }) as string[]).filter((f) => f.endsWith(".sqlite"))) {
    const db = new DatabaseSync(join(dir, f), { readOnly: true });
    try {
      if (db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table) !== undefined) out.push(fn(db));
    } finally {
      db.close();
    }
  }
  return out;
}

export function clientFor(cluster: LocalCluster, secret = cluster.secretKey, accessKey = cluster.accessKey): S3Client {
  return new S3Client({
    endpoint: cluster.endpoint,
    region: cluster.region,
    forcePathStyle: true,
    credentials: { accessKeyId: accessKey, secretAccessKey: secret },
    maxAttempts: 1,
  });
}

/** Deterministic pseudo-random bytes (xorshift32), so failures reproduce. */
export function pseudoRandom(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  const words = new Uint32Array(out.buffer, 0, size >>> 2);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  for (let i = words.length * 4; i < size; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

/** Every chunk the targets hold (all, or those given), from their indexes: CHID -> sizes of its copies. */
export function chunkCopies(cluster: LocalCluster, only: readonly number[] | null = null): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const t of cluster.targets) {
    if (only !== null && !only.includes(t.index)) continue;
    for (const c of chunksOnDisk(t.dataDir)) out.set(c.chid, [...(out.get(c.chid) ?? []), c.length]);
  }
  return out;
}

/** Where target `index` keeps its copy of a chunk (pack file and offset), or null if it holds none. */
export function copyOn(cluster: LocalCluster, index: number, chid: string): ChunkOnDisk | null {
  return chunkOnDisk(cluster.targets[index]!.dataDir, chid as Chid);
}

export { chunkOnDisk, chunksOnDisk, readOnDisk, type ChunkOnDisk };

/** Whether a stored item is a manifest-tree node (common/manifest-tree.ts), by its bytes on the first target holding it. */
export function isTreeNode(cluster: LocalCluster, chid: string): boolean {
  for (const t of cluster.targets) {
    const c = copyOn(cluster, t.index, chid);
    if (c) return readOnDisk(c).subarray(0, 20).toString() === '{"format":1,"node":[';
  }
  return false;
}

/** When target `index` wrote its copy of a chunk (ISO time), for diagnostics; null if it holds none. */
export function writtenAt(cluster: LocalCluster, index: number, chid: string): string | null {
  const db = new DatabaseSync(join(cluster.targets[index]!.dataDir, "index.sqlite"), { readOnly: true });
  try {
    const r = db.prepare("SELECT written FROM chunks WHERE chid = ?").get(chid);
    return r ? new Date(Number(r.written)).toISOString() : null;
  } finally {
    db.close();
  }
}

/** Lose target `index`'s copy of a chunk behind its back (its index row deleted, as a disk losing a file would). */
export function dropCopy(cluster: LocalCluster, index: number, chid: string): void {
  const db = new DatabaseSync(join(cluster.targets[index]!.dataDir, "index.sqlite"));
  try {
    db.exec("PRAGMA busy_timeout = 5000");
    db.prepare("DELETE FROM chunks WHERE chid = ?").run(chid);
  } finally {
    db.close();
  }
}

/** Flip one byte of a chunk's copy on a target's disk (the middle one unless `at` says): real corruption. */
export function damageCopy(c: ChunkOnDisk, at?: number): void {
  flipByte(c.path, c.offset + (at ?? Math.floor(c.length / 2)));
}

/** Flip one byte of a file in place (the middle one unless `at` says): real corruption on disk. */
export function flipByte(path: string, at?: number): void {
  const fd = openSync(path, "r+");
  try {
    const pos = at ?? Math.floor(fstatSync(fd).size / 2);
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, pos);
    b[0] = b[0]! ^ 0xff;
    writeSync(fd, b, 0, 1, pos);
  } finally {
    closeSync(fd);
  }
}

export async function bodyBytes(body: unknown): Promise<Uint8Array> {
  return (body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray();
}

/** The parts end to end, in one new array. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) (out.set(p, at), (at += p.length));
  return out;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

/** The S3 error code and HTTP status a request failed with, as the SDK reports them. */
export async function s3Error(p: Promise<unknown>): Promise<{ name: string; status: number | undefined }> {
  try {
    await p;
  } catch (e) {
    const err = e as { name: string; $metadata?: { httpStatusCode?: number } };
    return { name: err.name, status: err.$metadata?.httpStatusCode };
  }
  throw new Error("expected the request to fail");
}

type Extendable = { middlewareStack: { add: (...a: never[]) => void } };

/** Changes an SDK command's request before it is signed. */
function beforeSigning<C extends Extendable>(cmd: C, name: string, edit: (request: { query: Record<string, string>; headers: Record<string, string> }) => void): C {
  const add = cmd.middlewareStack.add as unknown as (mw: unknown, opts: { step: string; name: string }) => void;
  add(
    (next: (a: unknown) => Promise<unknown>) => async (args: { request: { query: Record<string, string>; headers: Record<string, string> } }) => {
      edit(args.request);
      return next(args);
    },
    { step: "build", name },
  );
  return cmd;
}

/**
 * Adds query parameters to an SDK command's request before it is signed: how a client passes
 * the gateway's extension parameters (as-of, snapshot) through @aws-sdk/client-s3.
 */
export function withQuery<C extends Extendable>(cmd: C, params: Record<string, string | number | undefined>): C {
  return beforeSigning(cmd, "withQuery", (r) => {
    for (const [k, v] of Object.entries(params)) if (v !== undefined) r.query[k] = String(v);
  });
}

/** Adds headers to an SDK command's request (the gateway's extension headers, x-edgestore-location). */
export function withHeaders<C extends Extendable>(cmd: C, headers: Record<string, string>): C {
  return beforeSigning(cmd, "withHeaders", (r) => Object.assign(r.headers, headers));
}

/** The admin CLI (client/admin.ts) run against the cluster with its admin token. */
export function adminCli(cluster: LocalCluster, ...args: string[]): { status: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [join(import.meta.dirname, "..", "..", "client", "admin.ts"), ...args], {
    encoding: "utf8",
    env: { ...process.env, EDGESTORE_ENDPOINT: cluster.endpoint, EDGESTORE_ADMIN_TOKEN: cluster.adminToken },
    timeout: 30_000,
  });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

/** An editing session on the cluster, as its configured key. */
export function openSession(cluster: LocalCluster): Promise<EditingSession> {
  return EditingSession.open({ endpoint: cluster.endpoint, region: cluster.region, accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey });
}

/** The S3 error code a session command failed with; throws if it did not fail. */
export async function sessionFailure(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof SessionError) return e.code;
    throw e;
  }
  throw new Error("expected the command to fail");
}

/** Version manifests on all the cluster's targets' disks. */
export function manifestRows(cluster: LocalCluster): number {
  let n = 0;
  for (const t of cluster.targets) {
    const db = new DatabaseSync(join(t.dataDir, "index.sqlite"), { readOnly: true });
    try {
      n += Number(db.prepare("SELECT count(*) AS n FROM vm").get()!.n);
    } finally {
      db.close();
    }
  }
  return n;
}

/** Good copies of a chunk on the targets' disks: indexed copies whose bytes hash to it. */
export function goodCopies(cluster: LocalCluster, chid: string): number {
  let n = 0;
  for (const t of cluster.targets) {
    const c = chunkOnDisk(t.dataDir, chid as Chid);
    if (c && createHash("sha256").update(readOnDisk(c)).digest("hex") === chid) n++;
  }
  return n;
}

/** PUT, answering "ok" or the S3 error as "<status> <code>: <message>". */
export async function putOutcome(s3: S3Client, bucket: string, key: string, body: Uint8Array): Promise<"ok" | string> {
  try {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    return "ok";
  } catch (e) {
    if (e instanceof S3ServiceException) return `${e.$metadata.httpStatusCode} ${e.name}: ${e.message}`;
    throw e;
  }
}

/**
 * Whether `done` comes to hold within `ms` (default 30 s), asked every `every` ms (default 200):
 * what a test waits on instead of a fixed sleep, and never for ever.
 */
export async function eventually(done: () => boolean | Promise<boolean>, opts: { ms?: number; every?: number } = {}): Promise<boolean> {
  const deadline = Date.now() + (opts.ms ?? 30_000);
  while (Date.now() < deadline) {
    if (await done()) return true;
    await new Promise((r) => setTimeout(r, opts.every ?? 200));
  }
  return done();
}
