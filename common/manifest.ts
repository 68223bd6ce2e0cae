// Version manifest (VM): the metadata of one object version and its ordered, non-overlapping
// chunk references (or the body itself, inline, for small objects). Its canonical encoding is
// what gets hashed into the VM's CHID, so two encoders must never disagree on the bytes: keys
// are sorted, there is no whitespace, numbers are integers, and the encoder rejects anything
// that would not round-trip.

import { asChid, chidOf, isUvid, type Chid, type Uvid } from "./ids.ts";

export const MANIFEST_FORMAT = 1;

/** How a chunk's bytes are stored, when compressed (the runtime's native CompressionStream formats). */
export type ChunkEncoding = "gzip" | "deflate-raw";

export interface ChunkRef {
  offset: number;
  /** Logical (uncompressed) length. */
  length: number;
  /** SHA-256 of the stored bytes: compressed ones, for a compressed chunk. */
  chid: Chid;
  /** Stored compressed with this; absent: stored as it is. */
  enc?: ChunkEncoding;
  /** Stored (compressed) length, with `enc`. */
  stored?: number;
  /** SHA-256 (hex) of the logical bytes, with `enc`: what a client that chunks alike fingerprints. */
  raw?: string;
  /**
   * A slice: the ref names the chunk's logical bytes [skip, skip+length), of `whole` in all.
   * An edit that cuts through a chunk keeps the parts it does not change as slices of it, so
   * a 4 KiB write stores 4 KiB whatever the chunk size. Absent: the ref is the whole chunk.
   */
  skip?: number;
  whole?: number;
  /** Never set on a chunk: what tells a NodeRef apart, so that one is never taken for the other. */
  leaves?: never;
}

/**
 * A node of a manifest tree: the bytes [offset, offset+length) of the object are those of the
 * chunk list stored as the node `chid` (common/manifest-tree.ts), whose refs count from 0. It
 * stands for `leaves` chunk refs in all, so that the n-th chunk is found without reading every
 * node. A chunk list longer than a node's fan-out is stored as such a tree, so that no manifest
 * and no multipart part row grows with the object.
 */
export interface NodeRef {
  offset: number;
  length: number;
  chid: Chid;
  leaves: number;
}

/** An entry of a chunk list: a chunk (or a slice of one), or a node standing for a run of them. */
export type Extent = ChunkRef | NodeRef;

export function isNode(e: Extent): e is NodeRef {
  return "leaves" in e;
}

/** The part of `c` that covers the object's bytes [from, to), which must lie within it. */
export function sliceOf(c: ChunkRef, from: number, to: number): ChunkRef {
  const skip = (c.skip ?? 0) + (from - c.offset);
  const whole = c.whole ?? c.length;
  const { skip: _s, whole: _w, ...ref } = c;
  if (skip === 0 && to - from === whole) return { ...ref, offset: from, length: whole };
  return { ...ref, offset: from, length: to - from, skip, whole };
}

export type ChecksumAlgorithm = "CRC32" | "CRC32C" | "CRC64NVME" | "SHA1" | "SHA256";

/**
 * An S3 additional checksum kept with a version: base64 of the big-endian value, as S3 sends
 * it. FULL_OBJECT covers the whole body; COMPOSITE (multipart) is the checksum of the parts'
 * checksums, shown with a "-N" suffix.
 */
export interface ObjectChecksum {
  algorithm: ChecksumAlgorithm;
  value: string;
  type: "FULL_OBJECT" | "COMPOSITE";
}

/** What the gateway supplies: everything except the version id, which the owning group stamps. */
export interface VersionBody {
  tenant: string;
  bucket: string;
  key: string;
  size: number;
  /** Hex MD5 of the body (S3's ETag for a single-part upload), without quotes. */
  etag: string;
  contentType: string;
  /** x-amz-meta-* pairs, names lowercased without the prefix. */
  userMeta: Record<string, string>;
  /** Standard headers stored with the object and returned on GET: cache-control, content-disposition, ... */
  httpMeta: Record<string, string>;
  /** Chunks and tree nodes, in order, end to end. */
  chunks: Extent[];
  /** The whole body, base64, when it is small enough to live in the manifest. */
  inline: string | null;
  deleteMarker: boolean;
  /** Access key that wrote this version. */
  creator: string;
  /** The additional checksum the client sent (or asked for), if any. */
  checksum?: ObjectChecksum;
  /** For a multipart object: each part's size, in order (GET ?partNumber=N, x-amz-mp-parts-count). */
  parts?: number[];
}

/** A delete marker's body: nothing but the name and who made it. */
export function deleteMarkerOf(name: { tenant: string; bucket: string; key: string }, creator: string): VersionBody {
  return { tenant: name.tenant, bucket: name.bucket, key: name.key, size: 0, etag: "", contentType: "", userMeta: {}, httpMeta: {}, chunks: [], inline: null, deleteMarker: true, creator };
}

export interface VersionManifest extends VersionBody {
  format: number;
  uvid: Uvid;
  /** Milliseconds since the epoch, from the UVID's stamp: S3's Last-Modified. */
  created: number;
}

function canonical(value: unknown): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isSafeInteger(value)) throw new Error(`manifest numbers must be safe integers, got ${value}`);
      return String(value);
    case "object": {
      if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(obj[k])}`).join(",")}}`;
    }
    default:
      throw new Error(`cannot encode ${typeof value} in a manifest`);
  }
}

export type ChunkWire =
  | [number, number, string]
  | [number, number, string, "node", number]
  | [number, number, string, ChunkEncoding, number, string]
  | [number, number, string, ChunkEncoding | null, number | null, string | null, number, number];

/**
 * Chunk refs are stored as [offset, length, chid] triples (plus enc, stored length and raw hash
 * when compressed, plus skip and whole for a slice): a 1 GiB object has ~1,000 of them.
 */
export function chunkToWire(c: Extent): ChunkWire {
  if (isNode(c)) return [c.offset, c.length, c.chid, "node", c.leaves];
  if (c.whole !== undefined) return [c.offset, c.length, c.chid, c.enc ?? null, c.enc ? c.stored! : null, c.enc ? c.raw! : null, c.skip!, c.whole];
  return c.enc ? [c.offset, c.length, c.chid, c.enc, c.stored!, c.raw!] : [c.offset, c.length, c.chid];
}

export function chunkFromWire(w: ChunkWire): Extent {
  if (w[3] === "node") return { offset: w[0], length: w[1], chid: asChid(w[2]), leaves: w[4] };
  return leafFromWire(w);
}

function leafFromWire([offset, length, chid, enc, stored, raw, skip, whole]: Exclude<ChunkWire, [number, number, string, "node", number]> | [number, number, string, (ChunkEncoding | null)?, (number | null)?, (string | null)?, number?, number?]): ChunkRef {
  return { offset, length, chid: asChid(chid), ...(enc ? { enc, stored: stored!, raw: raw! } : {}), ...(whole !== undefined ? { skip: skip!, whole } : {}) };
}

export function encodeManifest(vm: VersionManifest): Uint8Array {
  validateManifest(vm);
  const wire = {
    ...vm,
    chunks: vm.chunks.map(chunkToWire),
  };
  return new TextEncoder().encode(canonical(wire));
}

export function decodeManifest(bytes: Uint8Array): VersionManifest {
  const raw = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
  const chunks = (raw.chunks as ChunkWire[]).map(chunkFromWire);
  const vm = { ...(raw as unknown as VersionManifest), chunks };
  validateManifest(vm);
  return vm;
}

export async function manifestChid(bytes: Uint8Array): Promise<Chid> {
  return chidOf(bytes);
}

export function validateManifest(vm: VersionManifest): void {
  if (vm.format !== MANIFEST_FORMAT) throw new Error(`unknown manifest format ${vm.format}`);
  if (!isUvid(vm.uvid)) throw new Error(`bad uvid ${vm.uvid}`);
  if (vm.inline !== null && vm.chunks.length > 0) throw new Error("a manifest is either inline or chunked");
  let expected = 0;
  for (const c of vm.chunks) {
    if (c.offset !== expected) throw new Error(`chunk refs must be contiguous: expected offset ${expected}, got ${c.offset}`);
    if (c.length <= 0) throw new Error("chunk refs must be non-empty");
    if (isNode(c)) {
      if (!Number.isSafeInteger(c.leaves) || c.leaves < 1) throw new Error(`a tree node stands for at least one chunk, not ${c.leaves}`);
      expected += c.length;
      continue;
    }
    if (c.whole !== undefined && !(Number.isSafeInteger(c.skip) && c.skip! >= 0 && c.skip! + c.length <= c.whole)) {
      throw new Error(`a slice must lie within its chunk: skip ${String(c.skip)} + length ${c.length} > ${c.whole}`);
    }
    expected += c.length;
  }
  if (vm.inline === null && !vm.deleteMarker && expected !== vm.size) {
    throw new Error(`chunk refs cover ${expected} bytes but size is ${vm.size}`);
  }
  if (vm.parts !== undefined && vm.parts.reduce((a, b) => a + b, 0) !== vm.size) {
    throw new Error(`parts add up to ${vm.parts.reduce((a, b) => a + b, 0)} bytes but size is ${vm.size}`);
  }
}

/** The entries that overlap the byte range [start, end). */
export function chunksInRange<T extends Extent>(chunks: readonly T[], start: number, end: number): T[] {
  // An empty range overlaps nothing, even strictly inside a chunk.
  if (start >= end) return [];
  // Refs are contiguous and sorted: binary-search the first one that ends after `start`.
  let lo = 0;
  let hi = chunks.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const c = chunks[mid]!;
    if (c.offset + c.length <= start) lo = mid + 1;
    else hi = mid;
  }
  const out: T[] = [];
  for (let i = lo; i < chunks.length && chunks[i]!.offset < end; i++) out.push(chunks[i]!);
  return out;
}

export function base64Encode(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

export function base64Decode(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
