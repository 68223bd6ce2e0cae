// The gateway's part in space reclamation (negotiating-group/backrefs.ts has the rules). A PUT
// needs little from here: storing a chunk holds it, and the version's group pushes its
// references when it commits; only a write slow enough to eat into its first chunks' holds
// holds them all again before it commits (ingest.ts). A new version that names chunks it did not store (a copy, a
// snapshot's restore, a session's edit of a base) holds them first, and learns if any was
// deleted meanwhile; a snapshot references its own pages and holds the versions it names.

import { groupOf, type Chid, type Nhid, type Uvid } from "../../../common/ids.ts";
import type { Extent } from "../../../common/manifest.ts";
import type { RefOp } from "../../negotiating-group/backrefs.ts";
import type { RemovedVersion } from "../../negotiating-group/expunge.ts";
import { groupStub, type ClusterConfig, type Env } from "../../shared/env.ts";
import { S3Error } from "../../../common/s3/errors.ts";

function byGroup<T>(items: Iterable<T>, idOf: (t: T) => Chid | Nhid, groupCount: number): Map<number, T[]> {
  const out = new Map<number, T[]>();
  for (const it of items) {
    const g = groupOf(idOf(it), groupCount);
    const list = out.get(g) ?? [];
    list.push(it);
    out.set(g, list);
  }
  return out;
}

/** Hold these chunks for another CHUNK_HOLD_SECONDS from now; returns those already reclaimed. */
export async function holdChunksAgain(env: Env, cfg: ClusterConfig, chunks: readonly Extent[]): Promise<Chid[]> {
  const groups = byGroup(new Set(chunks.map((c) => c.chid)), (c) => c, cfg.groupCount);
  return (await Promise.all([...groups].map(([g, chids]) => groupStub(env, g).holdChunks(chids)))).flat();
}

/**
 * Hold the chunks a new version will name until its own references arrive. Throws if any was
 * reclaimed already (its data is gone: the version must not be made).
 */
export async function holdNamedChunks(env: Env, cfg: ClusterConfig, chunks: readonly Extent[]): Promise<void> {
  const gone = await holdChunksAgain(env, cfg, chunks);
  if (gone.length > 0) {
    throw new S3Error("InvalidObjectState", `${gone.length} chunk(s) of this object's data were reclaimed (nothing referenced them for longer than CHUNK_HOLD_SECONDS): write it again`);
  }
}

/** `ref` (a snapshot) starts (+) or stops (-) using these chunks, pushed to each chunk's group now. */
export async function changeReferences(cluster: { env: Env; cfg: ClusterConfig }, op: RefOp, ref: string, chunks: readonly Extent[]): Promise<void> {
  const { env, cfg } = cluster;
  const groups = byGroup(new Set(chunks.map((c) => c.chid)), (c) => c, cfg.groupCount);
  await Promise.all([...groups].map(([g, chids]) => groupStub(env, g).applyRefs([{ op, ref, chids }])));
}

/** `holder` names these versions: each name's group keeps their data. Returns those already expunged. */
export async function holdVersions(env: Env, cfg: ClusterConfig, holder: string, versions: readonly RemovedVersion[]): Promise<RemovedVersion[]> {
  const groups = byGroup(versions, (v) => v.nhid, cfg.groupCount);
  return (await Promise.all([...groups].map(([g, vs]) => groupStub(env, g).holdVersions(holder, vs)))).flat();
}

/** `holder` no longer names these versions. */
export async function releaseVersions(env: Env, cfg: ClusterConfig, holder: string, versions: readonly { nhid: Nhid; uvid: Uvid }[]): Promise<void> {
  const groups = byGroup(versions, (v) => v.nhid, cfg.groupCount);
  await Promise.all([...groups].map(([g, vs]) => groupStub(env, g).releaseVersions(holder, vs)));
}
