// What a lifecycle rule does to the names this group writes, asked by their manifest shard's
// pass (manifest-shard/lifecycle.ts). Every action goes through the same paths as a client's
// delete, so expired versions leave listings, snapshots taken later and, after the retention
// for reads as of a time, the targets (their space is reclaimed like any deleted version's). The
// shard judged from what it had seen; each action is checked again here against the name as it
// is now, and left undone if the name changed.

import { parseUvid, shardOf, type Uvid } from "../../common/ids.ts";
import { deleteMarkerOf } from "../../common/manifest.ts";
import { configOf, type Env } from "../shared/env.ts";
import { refusal } from "../shared/refusal.ts";
import { dueAt } from "../shared/lifecycle-rules.ts";
import { hasTags, type Tag } from "../shared/tags.ts";
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
    const cfg = configOf(this.c.env);
    const shard = shardOf(a.nhid, cfg.shardCount);
    const name = { tenant: batch.tenant, bucket: batch.bucket, key: a.key };
    const tagged = (uvid: Uvid, want: readonly Tag[]) => hasTags(book.find(a.nhid, uvid)?.tags ?? [], want);
    switch (a.kind) {
      case "expire-current": {
        const stillCurrent = () => {
          const cur = book.current(a.nhid);
          return cur !== null && cur.uvid === a.uvid && !cur.deleteMarker;
        };
        if (!stillCurrent() || !tagged(a.uvid, a.tags)) return false;
        if (batch.versioning === "Unversioned") {
          // Removal destroys the version: only while it is the name's one null version, so a
          // bucket that began versioning since the shard looked never loses a real version here.
          if (!(book.find(a.nhid, a.uvid)?.isNull ?? false) || book.liveCount(a.nhid) !== 1) return false;
          const r = await names.deleteName(a.nhid, shard, deleteMarkerOf(name, LIFECYCLE_CREATOR), "Unversioned");
          return !("refused" in r);
        }
        // A write that lands while the marker is stored makes the version noncurrent: the marker must not hide it.
        const changed = () => (stillCurrent() ? null : refusal("PreconditionFailed", "the name changed since the lifecycle pass looked"));
        const r = await names.write({ nhid: a.nhid, shard, body: deleteMarkerOf(name, LIFECYCLE_CREATOR), versioning: batch.versioning, guard: changed });
        return !("refused" in r);
      }
      case "remove-noncurrent": {
        if (book.find(a.nhid, a.uvid) === null || book.isCurrent(a.nhid, a.uvid) || !tagged(a.uvid, a.tags)) return false;
        // Judged again from this group's own versions: a newer version deleted since may have
        // made this one among the newest kept, or made it noncurrent later than the shard saw.
        if (book.newerCount(a.nhid, a.uvid, a.newer + 1) <= a.newer) return false;
        const successor = book.successor(a.nhid, a.uvid);
        if (successor === null || Date.now() < dueAt(parseUvid(successor).ms, a.days, cfg.lifecycleDayMs)) return false;
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
