// Reading through a committed snapshot: its page index (from the tenant's catalog) finds the
// one page that can hold a name, and pages are read in order to list. Only the pages needed
// are fetched, each once per request. A snapshot is read even if its buckets were deleted
// since: it is what is left of them.

import { commonPrefixOf, compareKeys } from "../../../common/keys.ts";
import type { ListEntry, ListQuery } from "../../manifest-shard/listing.ts";
import { snapshotCatalogStub } from "../../shared/env.ts";
import type { SnapshotInfo, SnapshotLayout } from "../../snapshots/rpc.ts";
import { decodePage, type PageRef, type SnapshotEntry } from "../../snapshots/manifest.ts";
import { readBlob } from "../data/blob.ts";
import type { NameScope } from "../s3/context.ts";
import { S3Error } from "../../../common/s3/errors.ts";

export interface OpenSnapshot {
  info: SnapshotInfo;
  layout: SnapshotLayout;
  pages: Map<number, Promise<SnapshotEntry[]>>;
}

const cmp = (a: readonly [string, string], b: readonly [string, string]) => (a[0] === b[0] ? compareKeys(a[1], b[1]) : compareKeys(a[0], b[0]));

/** A committed snapshot of the caller's tenant; NoSuchSnapshot otherwise (a pending one cannot be read). */
export async function openSnapshot(ctx: NameScope, id: string): Promise<OpenSnapshot> {
  const found = await snapshotCatalogStub(ctx.env, ctx.tenant).layout(id);
  if (!found) throw new S3Error("NoSuchSnapshot", `There is no committed snapshot ${id}`, { Snapshot: id });
  return { info: found.info, layout: found.layout as SnapshotLayout, pages: new Map() };
}

function page(ctx: NameScope, snap: OpenSnapshot, i: number): Promise<SnapshotEntry[]> {
  let p = snap.pages.get(i);
  if (!p) {
    const ref: PageRef = snap.layout.pages[i]!;
    p = readBlob(ctx.env, ctx.cfg, ref.blob).then(decodePage);
    snap.pages.set(i, p);
  }
  return p;
}

/** The first page whose last entry is at or after `at`. */
function pageFrom(snap: OpenSnapshot, at: readonly [string, string]): number {
  let lo = 0;
  let hi = snap.layout.pages.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cmp(snap.layout.pages[mid]!.last, at) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The snapshot's entry for a name, or null if it holds none. */
export async function entryOf(ctx: NameScope, snap: OpenSnapshot, bucket: string, key: string): Promise<SnapshotEntry | null> {
  const i = pageFrom(snap, [bucket, key]);
  if (i >= snap.layout.pages.length || cmp(snap.layout.pages[i]!.first, [bucket, key]) > 0) return null;
  return (await page(ctx, snap, i)).find((e) => e.bucket === bucket && e.key === key) ?? null;
}

/** Entries of one bucket whose key starts with `prefix` and sorts after `after`, in key order. */
export async function* entriesOf(ctx: NameScope, snap: OpenSnapshot, at: { bucket: string; prefix: string; after: string }): AsyncGenerator<SnapshotEntry> {
  const { bucket, prefix, after } = at;
  const from = compareKeys(prefix, after) > 0 ? prefix : after;
  for (let i = pageFrom(snap, [bucket, from]); i < snap.layout.pages.length; i++) {
    if (compareKeys(snap.layout.pages[i]!.first[0], bucket) > 0) return;
    // Fetch the next page while this one is consumed.
    if (i + 1 < snap.layout.pages.length) void page(ctx, snap, i + 1).catch(() => {});
    for (const e of await page(ctx, snap, i)) {
      if (e.bucket !== bucket) {
        if (compareKeys(e.bucket, bucket) > 0) return;
        continue;
      }
      if (compareKeys(e.key, after) <= 0) continue;
      if (!e.key.startsWith(prefix)) {
        if (compareKeys(e.key, prefix) > 0) return;
        continue;
      }
      yield e;
    }
    snap.pages.delete(i);
  }
}

/** Every entry, optionally of one bucket and key prefix, in (bucket, key) order. */
export async function* allEntries(ctx: NameScope, snap: OpenSnapshot, bucket: string | null, prefix: string): AsyncGenerator<SnapshotEntry> {
  if (bucket !== null) return yield* entriesOf(ctx, snap, { bucket, prefix, after: "" });
  for (let i = 0; i < snap.layout.pages.length; i++) {
    // Read ahead; a failure is met again, and thrown, when the loop awaits that page itself.
    if (i + 1 < snap.layout.pages.length) void page(ctx, snap, i + 1).catch(() => {});
    for (const e of await page(ctx, snap, i)) if (e.key.startsWith(prefix)) yield e;
    snap.pages.delete(i);
  }
}

/**
 * ListObjects through a snapshot: one bucket's entries under a prefix, after a cursor, rolled
 * up under a delimiter, as the shards list a bucket (a cursor that is a common prefix skips
 * everything beneath it).
 */
export async function listSnapshotBucket(ctx: NameScope, snap: OpenSnapshot, q: Omit<ListQuery, "tenant">): Promise<{ entries: ListEntry[]; truncated: boolean }> {
  const { prefix, delimiter, after, limit } = q;
  const entries: ListEntry[] = [];
  const skipUnder = after !== "" && commonPrefixOf(after, prefix, delimiter) === after ? after : null;
  for await (const e of entriesOf(ctx, snap, q)) {
    if (skipUnder !== null && e.key.startsWith(skipUnder)) continue;
    const cp = commonPrefixOf(e.key, prefix, delimiter);
    const last = entries.at(-1);
    if (cp !== null && last?.kind === "prefix" && last.prefix === cp) continue;
    if (entries.length === limit) return { entries, truncated: true };
    entries.push(cp !== null ? { kind: "prefix", prefix: cp } : { kind: "object", key: e.key, size: e.size, etag: e.etag, lastModified: e.lastModified });
  }
  return { entries, truncated: false };
}
