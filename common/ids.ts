// The nouns of the store, as distinct types: a CHID can never be passed where an NHID is meant.
// Every id is lowercase hex of a SHA-256 digest (64 chars) except UVID, whose text form sorts in
// stamping order.

declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

/** Content hash id: SHA-256 of a chunk's stored bytes. */
export type Chid = Brand<string, "CHID">;
/** Name hash id: SHA-256 of the fully qualified name `tenant/bucket/key`. */
export type Nhid = Brand<string, "NHID">;
/** Unique version id, stamped by the group that owns the NHID. */
export type Uvid = Brand<string, "UVID">;
/** Stable id of a node-target, kept in its data directory. */
export type TargetId = Brand<string, "TargetId">;
/** SHA-256 of a target's peer-link certificate (node-target/peer-identity.ts): what its peers pin. */
export type CertFingerprint = Brand<string, "CertFingerprint">;

const HEX = /^[0-9a-f]{64}$/;

export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i++) out += (bytes[i]! < 16 ? "0" : "") + bytes[i]!.toString(16);
  return out;
}

export function fromHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length >>> 1);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export async function sha256(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
}

export async function chidOf(bytes: Uint8Array): Promise<Chid> {
  return toHex(await sha256(bytes)) as Chid;
}

export function isChid(s: string): s is Chid {
  return HEX.test(s);
}

export function isNhid(s: string): s is Nhid {
  return HEX.test(s);
}

/** A target id as targets make them (a UUID) or as tests name them: what SQL rows and socket tags carry. */
export function isTargetId(s: string): s is TargetId {
  return /^[A-Za-z0-9-]{2,64}$/.test(s);
}

export function isCertFingerprint(s: unknown): s is CertFingerprint {
  return typeof s === "string" && HEX.test(s);
}

// Parsers for ids read back from storage or another trusted source (SQL rows, our own files):
// checked once where they enter, so the rest of the code holds typed ids, never casts. A value
// that does not parse is corruption, and throws.

export function asNhid(v: unknown): Nhid {
  if (typeof v !== "string" || !HEX.test(v)) throw new Error(`not an NHID: ${String(v)}`);
  return v as Nhid;
}

export function asChid(v: unknown): Chid {
  if (typeof v !== "string" || !HEX.test(v)) throw new Error(`not a CHID: ${String(v)}`);
  return v as Chid;
}

export function asUvid(v: unknown): Uvid {
  if (typeof v !== "string" || !isUvid(v)) throw new Error(`not a UVID: ${String(v)}`);
  return v as Uvid;
}

export function asTargetId(v: unknown): TargetId {
  if (typeof v !== "string" || !isTargetId(v)) throw new Error(`not a target id: ${String(v)}`);
  return v as TargetId;
}

/** A new target's id: a random UUID, which isTargetId accepts. */
export function newTargetId(): TargetId {
  return crypto.randomUUID() as TargetId;
}

/** Fully qualified name: tenant and bucket never contain '/', so the split is unambiguous. */
export function qualifiedName(tenant: string, bucket: string, key: string): string {
  return `${tenant}/${bucket}/${key}`;
}

export async function nhidOf(tenant: string, bucket: string, key: string): Promise<Nhid> {
  const bytes = new TextEncoder().encode(qualifiedName(tenant, bucket, key));
  return toHex(await sha256(bytes)) as Nhid;
}

/** Negotiating group of a CHID or NHID: first 4 bytes, big-endian, mod G. */
export function groupOf(id: Chid | Nhid, groupCount: number): number {
  return parseInt(id.slice(0, 8), 16) % groupCount;
}

/** Manifest shard of a name: the next 4 bytes of the NHID, so that shard and group are independent. */
export function shardOf(nhid: Nhid, shardCount: number): number {
  return parseInt(nhid.slice(8, 16), 16) % shardCount;
}

// UVID text: 12 hex digits of milliseconds, 6 of a per-millisecond sequence, 4 of the stamping
// group. Fixed width, so string order is stamping order and ties between groups are broken by
// the group index (the seed's "initiator address" tie-breaker).
export interface UvidParts {
  ms: number;
  seq: number;
  group: number;
}

export function formatUvid(p: UvidParts): Uvid {
  return (
    p.ms.toString(16).padStart(12, "0") +
    p.seq.toString(16).padStart(6, "0") +
    p.group.toString(16).padStart(4, "0")
  ) as Uvid;
}

export function parseUvid(u: string): UvidParts {
  if (!/^[0-9a-f]{22}$/.test(u)) throw new Error(`not a UVID: ${u}`);
  return {
    ms: parseInt(u.slice(0, 12), 16),
    seq: parseInt(u.slice(12, 18), 16),
    group: parseInt(u.slice(18, 22), 16),
  };
}

export function isUvid(u: string): u is Uvid {
  return /^[0-9a-f]{22}$/.test(u);
}
