// What a lifecycle rule does to the names this group writes, asked by their manifest shard's
// pass (manifest-shard/lifecycle.ts). Every action goes through the same paths as a client's
// delete, so expired versions leave listings, snapshots taken later and, after the retention
// for reads as of a time, the targets (their space is reclaimed like any deleted version's). The
// shard judged from what it had seen; each action is checked again here against the name as it
// is now, and left undone if the name changed.

import { shardOf } from "../../common/ids.ts";
import { deleteMarkerOf } from "../../common/manifest.ts";
import { configOf, type Env } from "../shared/env.ts";
import { refusal } from "../shared/refusal.ts";
import type { Multipart } from "./multipart.ts";
import type { Names } from "./names.ts";
import type { LifecycleAction, LifecycleBatch } from "./rpc.ts";
import type { VersionBook } from "./versions.ts";

/** Who a lifecycle delete marker names as its creator. */
export const LIFECYCLE_CREATOR = "s3-lifecycle";
/** Actions under way at once for one batch: delete markers are writes to the members. */
const CONCURRENCY = 8;

export interface LifecycleContext {
  readonly env: Env;
  readonly names: Names;
  readonly book: VersionBook;
  readonly uploads: Multipart;
}

export class LifecycleActions {
  private readonly c: LifecycleContext;

  constructor(c: LifecycleContext) {
    this.c = c;
  }

  /** Carry out what still holds; returns how many actions were done. */
  async run(batch: LifecycleBatch): Promise<number> {
    let done = 0;
    let next = 0;
    const worker = async () => {
      while (next < batch.actions.length) {
        const a = batch.actions[next++]!;
        if (await this.one(batch, a)) done++;
      }
    };
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, batch.actions.length) }, worker));
    return done;
  }

  private async one(batch: LifecycleBatch, a: LifecycleAction): Promise<boolean> {
    const { book, names } = this.c;
    const shard = shardOf(a.nhid, configOf(this.c.env).shardCount);
    const name = { tenant: batch.tenant, bucket: batch.bucket, key: a.key };
    switch (a.kind) {
      case "expire-current": {
        const stillCurrent = () => {
          const cur = book.current(a.nhid);
          return cur !== null && cur.uvid === a.uvid && !cur.deleteMarker;
        };
        if (!stillCurrent()) return false;
        const tags = book.find(a.nhid, a.uvid)?.tags ?? [];
        if (!a.tags.every((want) => tags.some((t) => t.key === want.key && t.value === want.value))) return false;
        if (batch.versioning === "Unversioned") {
          const r = await names.deleteName(a.nhid, shard, deleteMarkerOf(name, LIFECYCLE_CREATOR), "Unversioned");
          return !("refused" in r);
        }
        // A write that lands while the marker is stored makes the version noncurrent: the marker must not hide it.
        const changed = () => (stillCurrent() ? null : refusal("PreconditionFailed", "the name changed since the lifecycle pass looked"));
        const r = await names.write({ nhid: a.nhid, shard, body: deleteMarkerOf(name, LIFECYCLE_CREATOR), versioning: batch.versioning, guard: changed });
        return !("refused" in r);
      }
      case "remove-noncurrent": {
        if (book.find(a.nhid, a.uvid) === null || book.isCurrent(a.nhid, a.uvid)) return false;
        const r = await names.deleteVersion(a.nhid, shard, name, a.uvid);
        return r !== null && !("refused" in r);
      }
      case "remove-marker": {
        const cur = book.current(a.nhid);
        if (cur === null || cur.uvid !== a.uvid || !cur.deleteMarker || book.liveCount(a.nhid) !== 1) return false;
        const r = await names.deleteVersion(a.nhid, shard, name, a.uvid);
        return r !== null && !("refused" in r);
      }
      case "abort-upload":
        return (await this.c.uploads.abort({ nhid: a.nhid, shard, uploadId: a.uploadId })) === null;
    }
  }
}
