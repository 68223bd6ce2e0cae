// The snapshot manifest: immutable, stored in the cluster as blobs (chunks like any other), in
// pages of entries sorted by (bucket, key), and a root naming the definition and every page.
// The token (shared/tokens.ts) is keyed (HMAC with TOKEN_KEY) over the root's SHA-256, so it names the manifest
// exactly without exposing a chunk id; entries name versions, and only the gateway ever sees
// the version manifests they point to.

import { asChid, asUvid } from "../../common/ids.ts";
import type { ChunkRef } from "../../common/manifest.ts";
import type { Mask, Qualifier, Selected } from "../manifest-shard/select.ts";

export { snapshotToken } from "../shared/tokens.ts";

export const MANIFEST_FORMAT = 1;
/** Entries per page: a page is a few hundred KiB, read whole to find one entry. */
export const PAGE_ENTRIES = 1000;

/** A page or root as stored (gateway/data/blob.ts writes and reads it): its size and its chunks. */
export interface StoredBlob {
  size: number;
  chunks: ChunkRef[];
}

export type SnapshotEntry = Omit<Selected, "creator">;

export interface PageRef {
  /** [bucket, key] of the page's first and last entries, to find a page without reading it. */
  first: [string, string];
  last: [string, string];
  count: number;
  blob: StoredBlob;
}

export interface SnapshotRoot {
  format: number;
  tenant: string;
  id: string;
  at: number;
  masks: Mask[];
  qualifiers: Qualifier[];
  objects: number;
  bytes: number;
  pages: PageRef[];
}

type Row = [string, string, string, string, 0 | 1, number, string, number, string];

export function encodePage(entries: readonly SnapshotEntry[]): Uint8Array {
  const rows: Row[] = entries.map((e) => [e.bucket, e.key, e.uvid, e.vmChid, e.isNull ? 1 : 0, e.size, e.etag, e.lastModified, e.contentType]);
  return new TextEncoder().encode(JSON.stringify({ format: MANIFEST_FORMAT, entries: rows }));
}

export function decodePage(bytes: Uint8Array): SnapshotEntry[] {
  const page = JSON.parse(new TextDecoder().decode(bytes)) as { format: number; entries: Row[] };
  if (page.format !== MANIFEST_FORMAT) throw new Error(`snapshot page format ${page.format} is not ${MANIFEST_FORMAT}`);
  return page.entries.map(([bucket, key, uvid, vmChid, isNull, size, etag, lastModified, contentType]) => ({
    bucket,
    key,
    uvid: asUvid(uvid),
    vmChid: asChid(vmChid),
    isNull: isNull === 1,
    size,
    etag,
    lastModified,
    contentType,
  }));
}

/** Canonical: fixed field order, so the same snapshot always encodes to the same bytes. */
export function encodeRoot(r: SnapshotRoot): Uint8Array {
  const canonical: SnapshotRoot = {
    format: r.format,
    tenant: r.tenant,
    id: r.id,
    at: r.at,
    masks: r.masks.map((m) => ({ bucket: m.bucket, key: m.key })),
    qualifiers: r.qualifiers.map((q) => ({ name: q.name, value: q.value })),
    objects: r.objects,
    bytes: r.bytes,
    pages: r.pages.map((p): PageRef => ({ first: [p.first[0], p.first[1]], last: [p.last[0], p.last[1]], count: p.count, blob: { size: p.blob.size, chunks: p.blob.chunks.map((c) => ({ offset: c.offset, length: c.length, chid: c.chid, ...(c.enc ? { enc: c.enc, stored: c.stored, raw: c.raw } : {}) })) } })),
  };
  return new TextEncoder().encode(JSON.stringify(canonical));
}

/** Order of entries: bucket, then key, in UTF-8 byte order (as listings). */
export function compareEntryKeys(a: readonly [string, string], b: readonly [string, string], cmp: (x: string, y: string) => number): number {
  return a[0] === b[0] ? cmp(a[1], b[1]) : cmp(a[0], b[0]);
}
