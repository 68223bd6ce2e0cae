// Building a snapshot's manifest at commit (seed 000's "developing the film"): once every
// shard is complete through T, each shard streams the versions current at T that match the
// masks and qualifiers, in (bucket, key) order; the streams are merged and cut into pages, each
// stored as a blob as it fills, so memory holds one page per shard and one being written,
// whatever the snapshot's size. Writers are never paused: the shards answer from records.
// Each page's versions are held in their names' groups as the page is stored, and the pages'
// own chunks are referenced once the root is: a committed snapshot keeps what it names.

import { compareKeys } from "../../../common/keys.ts";
import type { Selected, Selection, SelectCursor } from "../../manifest-shard/select.ts";
import { shardStub } from "../../shared/env.ts";
import type { SnapshotInfo, SnapshotLayout } from "../../snapshots/rpc.ts";
import { encodePage, encodeRoot, MANIFEST_FORMAT, PAGE_ENTRIES, snapshotToken, type PageRef, type SnapshotEntry } from "../../snapshots/manifest.ts";
import { storeBlob } from "../data/blob.ts";
import { holdPage, referenceLayout } from "./snapshot-hold.ts";
import { settleAll } from "../s3/as-of.ts";
import { asOfAt } from "../params.ts";
import type { RequestContext } from "../s3/context.ts";

export interface BuiltSnapshot {
  token: string;
  objects: number;
  bytes: number;
  layout: SnapshotLayout;
}

/** One shard's matching versions, in order, a page of them fetched at a time. */
async function* shardStream(ctx: RequestContext, s: number, sel: Selection): AsyncGenerator<Selected> {
  let after: SelectCursor | null = null;
  for (let calls = 0; ; calls++) {
    const page = await shardStub(ctx.env, s).select(sel, after, PAGE_ENTRIES);
    yield* page.entries;
    if (page.next === null) return;
    after = page.next;
  }
}

/** Merges sorted streams by (bucket, key); a name lives in exactly one shard, so there are no ties. */
async function* merged(streams: AsyncGenerator<Selected>[]): AsyncGenerator<Selected> {
  const heads = await Promise.all(streams.map((s) => s.next()));
  for (;;) {
    let best = -1;
    for (let i = 0; i < heads.length; i++) {
      const h = heads[i]!;
      if (h.done) continue;
      const b = best < 0 ? null : (heads[best]!.value as Selected);
      if (!b || (h.value.bucket === b.bucket ? compareKeys(h.value.key, b.key) < 0 : compareKeys(h.value.bucket, b.bucket) < 0)) best = i;
    }
    if (best < 0) return;
    yield heads[best]!.value as Selected;
    heads[best] = await streams[best]!.next();
  }
}

/** Develops the snapshot (waiting up to `waitMs` for completeness through T) and stores its manifest. */
export async function buildSnapshot(ctx: RequestContext, info: SnapshotInfo, waitMs: number): Promise<BuiltSnapshot> {
  const asOf = asOfAt(info.at, waitMs);
  await settleAll(ctx, asOf);
  const sel: Selection = { tenant: ctx.tenant, masks: info.masks, qualifiers: info.qualifiers, which: "current", bound: asOf.bound };
  const pages: PageRef[] = [];
  const writes: Promise<void>[] = [];
  let objects = 0;
  let bytes = 0;
  let fill: SnapshotEntry[] = [];
  const cut = () => {
    const entries = fill;
    fill = [];
    const at = pages.length;
    pages.push(null as unknown as PageRef);
    writes.push(
      Promise.all([storeBlob(ctx.env, ctx.cfg, encodePage(entries)), holdPage(ctx, info.id, entries)]).then(([blob]) => {
        pages[at] = { first: [entries[0]!.bucket, entries[0]!.key], last: [entries.at(-1)!.bucket, entries.at(-1)!.key], count: entries.length, blob: { size: blob.size, chunks: blob.chunks } };
      }),
    );
  };
  const streams = info.masks.length === 0 ? [] : Array.from({ length: ctx.cfg.shardCount }, (_, s) => shardStream(ctx, s, sel));
  for await (const v of merged(streams)) {
    const { creator: _creator, ...entry } = v;
    fill.push(entry);
    objects++;
    bytes += v.size;
    if (fill.length === PAGE_ENTRIES) {
      cut();
      // At most two pages being stored at once: memory stays bounded however big the snapshot.
      if (writes.length >= 2) await writes.shift();
    }
  }
  if (fill.length > 0) cut();
  await Promise.all(writes);
  const root = await storeBlob(
    ctx.env,
    ctx.cfg,
    encodeRoot({ format: MANIFEST_FORMAT, tenant: ctx.tenant, id: info.id, at: info.at, masks: info.masks, qualifiers: info.qualifiers, objects, bytes, pages }),
  );
  const layout: SnapshotLayout = { root: { size: root.size, chunks: root.chunks }, pages };
  await referenceLayout(ctx, info.id, layout);
  return { token: await snapshotToken(ctx.env.TOKEN_KEY, root.sha256), objects, bytes, layout };
}
