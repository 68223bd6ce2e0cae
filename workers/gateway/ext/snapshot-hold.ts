// What a committed snapshot keeps from reclamation, and lets go of when it is deleted: every
// version it names (held in each name's group, so deleting the version from its bucket only
// takes it out of the namespace) and the chunks of its own pages and root (back-referenced in
// their groups). Both are keyed by the snapshot, so holding twice (a commit retried) is holding
// once, and no other snapshot's hold is touched.

import { nhidOf } from "../../../common/ids.ts";
import type { RemovedVersion } from "../../negotiating-group/expunge.ts";
import { snapshotRef } from "../../negotiating-group/backrefs.ts";
import { snapshotCatalogStub } from "../../shared/env.ts";
import type { CatalogRefusal, SnapshotLayout } from "../../snapshots/rpc.ts";
import type { SnapshotEntry } from "../../snapshots/manifest.ts";
import { changeReferences, holdVersions, releaseVersions } from "../data/references.ts";
import type { NameScope } from "../s3/context.ts";
import { S3Error } from "../../../common/s3/errors.ts";
import { allEntries, openSnapshot, type OpenSnapshot } from "./snapshot-read.ts";

async function versionsOf(ctx: NameScope, entries: readonly SnapshotEntry[]): Promise<RemovedVersion[]> {
  return Promise.all(entries.map(async (e) => ({ nhid: await nhidOf(ctx.tenant, e.bucket, e.key), uvid: e.uvid, vmChid: e.vmChid })));
}

/** Hold one page's versions for snapshot `id`; refuses if one was expunged before the snapshot could hold it. */
export async function holdPage(ctx: NameScope, id: string, entries: readonly SnapshotEntry[]): Promise<void> {
  const missing = await holdVersions(ctx.env, ctx.cfg, snapshotRef(ctx.tenant, id), await versionsOf(ctx, entries));
  if (missing.length > 0) {
    throw new S3Error("InvalidSnapshotState", `${missing.length} version(s) current at the snapshot's time were deleted more than REMOVED_RETAIN_SECONDS ago and their data is gone: move the snapshot's time later`);
  }
}

/** Reference the snapshot's own pages and root, once they are stored. */
export async function referenceLayout(ctx: NameScope, id: string, layout: SnapshotLayout): Promise<void> {
  await changeReferences(ctx, "+", snapshotRef(ctx.tenant, id), layoutChunks(layout));
}

/** Let go of everything a committed snapshot (or a build the catalog refused) holds. */
export async function releaseSnapshot(ctx: NameScope, snap: OpenSnapshot): Promise<void> {
  const holder = snapshotRef(ctx.tenant, snap.info.id);
  let batch: SnapshotEntry[] = [];
  const flush = async () => {
    const entries = batch;
    batch = [];
    await releaseVersions(ctx.env, ctx.cfg, holder, await versionsOf(ctx, entries));
  };
  for await (const e of allEntries(ctx, snap, null, "")) {
    batch.push(e);
    if (batch.length === 1000) await flush();
  }
  if (batch.length > 0) await flush();
  // The pages were needed to find the versions: their own chunks go last.
  await changeReferences(ctx, "-", holder, layoutChunks(snap.layout));
}

function layoutChunks(layout: SnapshotLayout) {
  return [...layout.root.chunks, ...layout.pages.flatMap((p) => p.blob.chunks)];
}

/**
 * Delete a snapshot: its versions released before the catalog forgets it, so an interrupted
 * delete leaves a snapshot that can be deleted again, never versions held by nothing anyone
 * can name.
 */
export async function removeSnapshot(ctx: NameScope, id: string): Promise<CatalogRefusal | null> {
  const catalog = snapshotCatalogStub(ctx.env, ctx.tenant);
  const info = await catalog.get(id);
  if (info?.state === "committed") await releaseSnapshot(ctx, await openSnapshot(ctx, id));
  return catalog.remove(id, false);
}
