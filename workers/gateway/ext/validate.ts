// Validation against a kept token (seed 003): is what the cluster stores for a version, or for a
// whole snapshot, still exactly what the token names, and intact? The targets re-hash their own
// copies in place (negotiating-group/verify.ts) and damaged items are repaired from good
// copies; the client receives only the verdict, a few hundred bytes whatever the size.
//
//   POST /_validate {"bucket", "key", "versionId"?, "token"?}   or   {"snapshot", "token"?}

import { groupOf, nhidOf, type Chid } from "../../../common/ids.ts";
import type { Extent, VersionManifest } from "../../../common/manifest.ts";
import { itemsOf } from "../data/tree.ts";
import type { StoredRef } from "../../../common/protocol.ts";
import type { ItemVerdict } from "../../negotiating-group/rpc.ts";
import { groupStub } from "../../shared/env.ts";
import { manifestToken, payloadToken } from "../../shared/tokens.ts";
import { existingVersion } from "../s3/object-get.ts";
import { versionIdParam } from "../params.ts";
import { replicasOf } from "../s3/object-put.ts";
import type { RequestContext } from "../s3/context.ts";
import { S3Error } from "../../../common/s3/errors.ts";
import { bad, jsonResponse, optionalString, readJson } from "./json.ts";
import { allEntries, openSnapshot } from "./snapshot-read.ts";

/** Refs per verify call: one message to each target, answered after it re-read them all. */
const REFS_PER_CALL = 256;

interface Tally {
  items: number;
  good: number;
  bad: number;
  repaired: number;
  /** Items with fewer than R good copies after repair, and with none at all. */
  short: number;
  lost: number;
}

const emptyTally = (): Tally => ({ items: 0, good: 0, bad: 0, repaired: 0, short: 0, lost: 0 });

/** Verifies items in their groups, in parallel across groups, and adds up the verdicts. */
async function verify(ctx: RequestContext, items: { group: number; ref: StoredRef }[], tally: Tally, replicas: number = ctx.cfg.replicas): Promise<void> {
  const byGroup = new Map<number, StoredRef[]>();
  for (const it of items) {
    const list = byGroup.get(it.group) ?? [];
    list.push(it.ref);
    byGroup.set(it.group, list);
  }
  await Promise.all(
    [...byGroup].map(async ([g, refs]) => {
      for (let i = 0; i < refs.length; i += REFS_PER_CALL) {
        const verdicts: ItemVerdict[] = await groupStub(ctx.env, g).verifyItems(refs.slice(i, i + REFS_PER_CALL), replicas);
        for (const v of verdicts) {
          tally.items++;
          tally.good += v.good;
          tally.bad += v.bad;
          tally.repaired += v.repaired;
          if (v.good === 0) tally.lost++;
          else if (v.good + v.repaired < replicas) tally.short++;
        }
      }
    }),
  );
}

/**
 * Chunks verified once however often they are named: up to this many ids are remembered (a
 * version of the largest size S3 allows has more chunks than memory holds ids; past it a chunk
 * named twice is verified, and counted, twice).
 */
const SEEN_MAX = 1_000_000;

type Item = { group: number; ref: StoredRef };

function chunkItems(ctx: RequestContext, chids: readonly Chid[], seen: Set<string>): Item[] {
  const out: Item[] = [];
  for (const chid of chids) {
    if (seen.has(chid)) continue;
    if (seen.size < SEEN_MAX) seen.add(chid);
    out.push({ group: groupOf(chid, ctx.cfg.groupCount), ref: { kind: "chunk", chid } });
  }
  return out;
}

/** A version's manifest and chunks, as items to verify: for a tree its nodes and every chunk under them, a node's run at a time. */
async function* versionItems(ctx: RequestContext, v: { bucket: string; key: string; vm: VersionManifest; vmChid: Chid }, seen: Set<string>): AsyncGenerator<Item[]> {
  const { vm, vmChid } = v;
  const nhid = await nhidOf(ctx.tenant, v.bucket, v.key);
  yield [{ group: groupOf(nhid, ctx.cfg.groupCount), ref: { kind: "vm", chid: vmChid, nhid, uvid: vm.uvid } }];
  for await (const chids of itemsOf(ctx, vm.chunks)) yield chunkItems(ctx, chids, seen);
}

/** Verifies what `items` yields in calls of a few hundred refs per group, never holding more. */
async function verifyAll(ctx: RequestContext, items: AsyncIterable<Item[]>, tally: Tally, replicas?: number): Promise<void> {
  let batch: Item[] = [];
  for await (const some of items) {
    batch.push(...some);
    if (batch.length >= REFS_PER_CALL * 4) {
      await verify(ctx, batch, tally, replicas);
      batch = [];
    }
  }
  await verify(ctx, batch, tally, replicas);
}

/**
 * Bring chunks up to `replicas` good copies (a copy that asks for more than its source had):
 * each group re-checks its copies and adds what is missing from a good one.
 */
export async function ensureReplicas(ctx: RequestContext, chunks: readonly Extent[], replicas: number): Promise<void> {
  const seen = new Set<string>();
  async function* items(): AsyncGenerator<Item[]> {
    for await (const chids of itemsOf(ctx, chunks)) yield chunkItems(ctx, chids, seen);
  }
  await verifyAll(ctx, items(), emptyTally(), replicas);
}

function stateOf(t: Tally): string {
  if (t.lost > 0) return "lost";
  if (t.short > 0) return "damaged";
  return t.bad > 0 || t.repaired > 0 ? "repaired" : "intact";
}

function answer(t: Tally, token: string | null, matches: string | null, subject: Record<string, unknown>): Response {
  return jsonResponse({
    ...subject,
    token: token === null ? null : matches === null ? "differs" : "matches",
    ...(matches ? { tokenKind: matches } : {}),
    state: stateOf(t),
    items: t.items,
    copies: { good: t.good, bad: t.bad },
    repaired: t.repaired,
    lost: t.lost,
  });
}

export async function validate(ctx: RequestContext): Promise<Response> {
  const body = await readJson(ctx.req);
  const token = optionalString(body, "token") ?? null;
  const snapshot = optionalString(body, "snapshot");
  const tally = emptyTally();
  const seen = new Set<string>();
  if (snapshot !== undefined) {
    const snap = await openSnapshot(ctx, snapshot);
    const blobs = [snap.layout.root, ...snap.layout.pages.map((p) => p.blob)];
    await verify(ctx, blobs.flatMap((b) => chunkItems(ctx, b.chunks.map((c) => c.chid), seen)), tally);
    async function* items(): AsyncGenerator<Item[]> {
      for await (const e of allEntries(ctx, snap, null, "")) {
        const nhid = await nhidOf(ctx.tenant, e.bucket, e.key);
        const vm = await groupStub(ctx.env, groupOf(nhid, ctx.cfg.groupCount)).readVersion(nhid, e.uvid, e.vmChid);
        yield* versionItems(ctx, { bucket: e.bucket, key: e.key, vm, vmChid: e.vmChid }, seen);
      }
    }
    await verifyAll(ctx, items(), tally);
    return answer(tally, token, token !== null && token === snap.info.token ? "snapshot" : null, { snapshot });
  }
  const bucket = optionalString(body, "bucket");
  const key = optionalString(body, "key");
  if (bucket === undefined || key === undefined) throw bad("bucket", "validate names a bucket and key (and optionally versionId), or a snapshot");
  const versionId = versionIdParam(optionalString(body, "versionId") ?? null);
  const { vm, vmChid, isNull, replicas } = await existingVersion(ctx, bucket, key, versionId);
  let matches: string | null = null;
  if (token !== null) {
    if (token === (await manifestToken(ctx.env.TOKEN_KEY, vmChid))) matches = "manifest";
    else if (token === (await payloadToken(ctx.env.TOKEN_KEY, vm.size, vm.chunks, vm.inline))) matches = "payload";
  }
  await verifyAll(ctx, versionItems(ctx, { bucket, key, vm, vmChid }, seen), tally, replicas);
  if (tally.items === 0) throw new S3Error("InternalError", "validation checked nothing");
  return answer(tally, token, matches, { bucket, key, versionId: isNull ? "null" : vm.uvid, replicas });
}

/**
 * POST /_replicas {"bucket", "key", "versionId"?, "replicas"}: change a version's replication
 * count without changing its manifest (its tokens stay the same), then restore every item to
 * the new count from good copies. Copies beyond a lowered count stay until space reclamation
 * trims them (issue 6).
 */
export async function setReplicas(ctx: RequestContext): Promise<Response> {
  const body = await readJson(ctx.req);
  const bucket = optionalString(body, "bucket");
  const key = optionalString(body, "key");
  if (bucket === undefined || key === undefined) throw bad("bucket", "name a bucket and key");
  const raw = body.replicas;
  const replicas = raw === null ? null : replicasOf(String(raw), ctx.cfg);
  const versionId = versionIdParam(optionalString(body, "versionId") ?? null);
  const { vm, vmChid, isNull } = await existingVersion(ctx, bucket, key, versionId);
  const nhid = await nhidOf(ctx.tenant, bucket, key);
  const g = groupOf(nhid, ctx.cfg.groupCount);
  const set = await groupStub(ctx.env, g).setVersionReplicas(nhid, isNull ? "null" : vm.uvid, replicas);
  if (!set) throw new S3Error("NoSuchVersion", "The specified version does not exist.", { Key: key });
  const tally = emptyTally();
  const want = replicas ?? ctx.cfg.replicas;
  await verifyAll(ctx, versionItems(ctx, { bucket, key, vm, vmChid }, new Set()), tally, want);
  return jsonResponse({ bucket, key, versionId: isNull ? "null" : vm.uvid, replicas: want, state: stateOf(tally), items: tally.items, copies: { good: tally.good, bad: tally.bad }, added: tally.repaired });
}
