// The snapshot API (docs/snapshots.md): a snapshot is built as a transaction — create it
// pending, add or drop masks and qualifiers, then commit (which develops and stores its
// manifest) or abort. A committed snapshot is read through the S3 API (`?snapshot=` on
// listings and GETs), restored into a bucket by new versions naming the same chunks, and
// deleted. JSON in and out; signed like any S3 request, and confined to the caller's tenant.

import { groupOf, nhidOf } from "../../../common/ids.ts";
import { isRefusal } from "../../shared/refusal.ts";
import { groupStub, snapshotCatalogStub } from "../../shared/env.ts";
import type { CatalogRefusal, Edit, SnapshotInfo } from "../../snapshots/rpc.ts";
import { parseTime } from "../params.ts";
import { requireBucket, validateKey, type RequestContext } from "../s3/context.ts";
import { sameContent } from "../s3/copy.ts";
import { holdNamedChunks } from "../data/references.ts";
import { refused } from "../s3/refused.ts";
import { S3Error } from "../../../common/s3/errors.ts";
import { isoTime } from "../s3/xml.ts";
import { bad, jsonResponse, optionalArray, optionalString, readJson } from "./json.ts";
import { maskText, parseMask, parseQualifier } from "./selection.ts";
import { buildSnapshot } from "./snapshot-build.ts";
import { allEntries, openSnapshot } from "./snapshot-read.ts";
import { releaseSnapshot, removeSnapshot } from "./snapshot-hold.ts";

/** Restores in flight at once: each is one manifest read and one version write. */
const RESTORE_CONCURRENCY = 8;

function view(s: SnapshotInfo): Record<string, unknown> {
  return {
    id: s.id,
    state: s.state,
    at: isoTime(s.at),
    masks: s.masks.map(maskText),
    qualifiers: s.qualifiers,
    created: isoTime(s.created),
    committed: s.committed === null ? null : isoTime(s.committed),
    token: s.token,
    objects: s.objects,
    bytes: s.bytes,
  };
}

function orRefused<T extends object>(r: T | CatalogRefusal): T {
  if ("refused" in r) throw new S3Error(r.refused, r.message);
  return r;
}

function timeField(o: Record<string, unknown>, field: string): number | undefined {
  const v = o[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v === "number") return parseTime(String(v), field);
  if (typeof v === "string") return parseTime(v, field);
  throw bad(field, "must be an ISO 8601 time or milliseconds since the epoch");
}

const catalog = (ctx: RequestContext) => snapshotCatalogStub(ctx.env, ctx.tenant);

export async function createSnapshot(ctx: RequestContext): Promise<Response> {
  const body = await readJson(ctx.req);
  const masks = (optionalArray(body, "masks") ?? []).map((m) => parseMask(m));
  const qualifiers = (optionalArray(body, "qualifiers") ?? []).map((q) => parseQualifier(q));
  const at = timeField(body, "at") ?? Date.now();
  const id = `snap-${[...crypto.getRandomValues(new Uint8Array(10))].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
  const info = await catalog(ctx).create(id, { at, masks, qualifiers });
  return jsonResponse(view(info), 201);
}

export async function listSnapshots(ctx: RequestContext): Promise<Response> {
  return jsonResponse({ snapshots: (await catalog(ctx).list()).map(view) });
}

export async function getSnapshot(ctx: RequestContext, id: string): Promise<Response> {
  const info = await catalog(ctx).get(id);
  if (!info) throw new S3Error("NoSuchSnapshot", `There is no snapshot ${id}`, { Snapshot: id });
  return jsonResponse(view(info));
}

export async function editSnapshot(ctx: RequestContext, id: string): Promise<Response> {
  const body = await readJson(ctx.req);
  const e: Edit = {
    ...(timeField(body, "at") !== undefined ? { at: timeField(body, "at")! } : {}),
    addMasks: (optionalArray(body, "addMasks") ?? []).map((m) => parseMask(m, "addMasks")),
    dropMasks: (optionalArray(body, "dropMasks") ?? []).map((m) => parseMask(m, "dropMasks")),
    addQualifiers: (optionalArray(body, "addQualifiers") ?? []).map((q) => parseQualifier(q, "addQualifiers")),
    dropQualifiers: (optionalArray(body, "dropQualifiers") ?? []).map((q) => parseQualifier(q, "dropQualifiers")),
  };
  return jsonResponse(view(orRefused((await catalog(ctx).edit(id, e)) as SnapshotInfo | CatalogRefusal)));
}

/**
 * Develop and store the snapshot. Waits up to `wait` ms (query parameter) for every group to
 * promise past T; if one has not, the snapshot stays pending and the answer is 503
 * PointInTimeIncomplete: commit again later. Committing a committed snapshot answers it.
 */
export async function commitSnapshot(ctx: RequestContext, id: string, waitMs: number): Promise<Response> {
  const info = await catalog(ctx).get(id);
  if (!info) throw new S3Error("NoSuchSnapshot", `There is no snapshot ${id}`, { Snapshot: id });
  if (info.state === "committed") return jsonResponse(view(info));
  if (info.masks.length === 0) throw new S3Error("InvalidSnapshotState", `Snapshot ${id} has no mask: add one before committing`);
  const built = await buildSnapshot(ctx, info, waitMs);
  const done = (await catalog(ctx).commit(id, info.revision, built)) as SnapshotInfo | CatalogRefusal;
  // Edited meanwhile: this build will never be read, so what it holds goes back.
  if ("refused" in done) await releaseSnapshot(ctx, { info, layout: built.layout, pages: new Map() });
  return jsonResponse(view(orRefused(done)));
}

export async function abortSnapshot(ctx: RequestContext, id: string): Promise<Response> {
  const r = await catalog(ctx).remove(id, true);
  if (r) throw new S3Error(r.refused, r.message);
  return new Response(null, { status: 204 });
}

export async function deleteSnapshot(ctx: RequestContext, id: string): Promise<Response> {
  const r = await removeSnapshot(ctx, id);
  if (r) throw new S3Error(r.refused, r.message);
  return new Response(null, { status: 204 });
}

/**
 * Restore a snapshot, or the part of it in one bucket under one prefix, into a bucket: every
 * entry becomes a new version of its name there (`toPrefix` replacing `prefix`), naming the
 * same chunks as the version the snapshot holds. No data is read or copied.
 */
export async function restoreSnapshot(ctx: RequestContext, id: string): Promise<Response> {
  const body = await readJson(ctx.req);
  const bucket = optionalString(body, "bucket") ?? null;
  const prefix = optionalString(body, "prefix") ?? "";
  const toBucket = optionalString(body, "toBucket") ?? bucket;
  const toPrefix = optionalString(body, "toPrefix") ?? prefix;
  if (toBucket === null) throw bad("toBucket", "name the bucket to restore into (or restore one bucket with \"bucket\")");
  const target = await requireBucket(ctx, toBucket);
  const snap = await openSnapshot(ctx, id);
  let restored = 0;
  let bytes = 0;
  const inFlight = new Set<Promise<void>>();
  let failure: unknown = null;
  for await (const e of allEntries(ctx, snap, bucket, prefix)) {
    if (failure) break;
    const key = toPrefix + e.key.slice(prefix.length);
    validateKey(key);
    const p = (async () => {
      const srcNhid = await nhidOf(ctx.tenant, e.bucket, e.key);
      const g = groupOf(srcNhid, ctx.cfg.groupCount);
      const vm = await groupStub(ctx.env, g).readVersion(srcNhid, e.uvid, e.vmChid);
      const nhid = await nhidOf(ctx.tenant, toBucket, key);
      const tg = groupOf(nhid, ctx.cfg.groupCount);
      const body = sameContent(vm, { tenant: ctx.tenant, bucket: toBucket, key }, ctx.auth.accessKey);
      await holdNamedChunks(ctx.env, ctx.cfg, body.chunks);
      const put = await groupStub(ctx.env, tg).putVersion(nhid, body, target.versioning);
      if (isRefusal(put)) refused(put);
      restored++;
      bytes += e.size;
    })().catch((err: unknown) => {
      failure ??= err;
    });
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
    if (inFlight.size >= RESTORE_CONCURRENCY) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  if (failure) throw failure;
  return jsonResponse({ snapshot: id, toBucket, restored, bytes });
}
