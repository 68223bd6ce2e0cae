// AWS Signature Version 4 for S3: the canonical request, the string to sign, signing keys and
// the fields a signature names, shared by the verifier (gateway and proxy) and the signers
// (clients, benchmarks). Only web-standard APIs, so it runs in workerd and Node alike.

export const ALGORITHM = "AWS4-HMAC-SHA256";
export const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
export const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";
/** Longest lifetime of a presigned URL S3 accepts (7 days). */
export const MAX_PRESIGN_EXPIRES = 604800;

/** x-amz-content-sha256 values that announce an aws-chunked body. */
export const STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
export const STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
export const STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
export type StreamingMode = typeof STREAMING_SIGNED | typeof STREAMING_SIGNED_TRAILER | typeof STREAMING_UNSIGNED_TRAILER;
export const STREAMING_MODES: readonly string[] = [STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER];

export function isStreamingMode(payloadHash: string): payloadHash is StreamingMode {
  return STREAMING_MODES.includes(payloadHash);
}

const encoder = new TextEncoder();

export function utf8(s: string): Uint8Array<ArrayBuffer> {
  // Always a fresh ArrayBuffer; workers-types just declare the looser ArrayBufferLike.
  return encoder.encode(s) as Uint8Array<ArrayBuffer>;
}

const HEX_BYTE: string[] = [];
for (let i = 0; i < 256; i++) HEX_BYTE.push(i.toString(16).padStart(2, "0"));

export function hex(bytes: Uint8Array | ArrayBuffer): string {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let out = "";
  for (let i = 0; i < b.length; i++) out += HEX_BYTE[b[i]!]!;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Canonical request and string to sign

/** A header value as SigV4 canonicalizes it: trimmed, inner runs of whitespace collapsed. */
export function canonicalHeaderValue(v: string): string {
  return v.replace(/[ \t\r\n]+/g, " ").trim();
}

export interface CanonicalHeaders {
  /** `name:value\n` per signed header, sorted by name. */
  block: string;
  /** `a;b;c` */
  signedHeaders: string;
}

/**
 * Canonical header block from (name, value) pairs: names lowercased, values canonicalized,
 * repeated names joined with ",", sorted by name.
 */
export function canonicalHeaders(headers: Iterable<readonly [string, string]>): CanonicalHeaders {
  const byName = new Map<string, string[]>();
  for (const [name, value] of headers) {
    const n = name.toLowerCase();
    const list = byName.get(n);
    if (list) list.push(canonicalHeaderValue(value));
    else byName.set(n, [canonicalHeaderValue(value)]);
  }
  const names = [...byName.keys()].sort();
  let block = "";
  for (const n of names) block += `${n}:${byName.get(n)!.join(",")}\n`;
  return { block, signedHeaders: names.join(";") };
}

export interface CanonicalRequestParts {
  method: string;
  /** Already canonical: see canonicalUri. */
  uri: string;
  /** Already canonical: see canonicalQueryString. */
  query: string;
  /** The signed headers only. */
  headers: Iterable<readonly [string, string]>;
  payloadHash: string;
}

/** The SigV4 canonical request. */
export function canonicalRequest(r: CanonicalRequestParts): string {
  const h = canonicalHeaders(r.headers);
  return `${r.method}\n${r.uri}\n${r.query}\n${h.block}\n${h.signedHeaders}\n${r.payloadHash}`;
}

export function credentialScope(date: string, region: string, service = "s3"): string {
  return `${date}/${region}/${service}/aws4_request`;
}

/** `AWS4-HMAC-SHA256\n<amzDate>\n<scope>\n<hex sha256 of the canonical request>` */
export async function stringToSign(amzDate: string, scope: string, canonicalRequestText: string): Promise<string> {
  return `${ALGORITHM}\n${amzDate}\n${scope}\n${await sha256Hex(canonicalRequestText)}`;
}

// ---------------------------------------------------------------------------------------------
// Crypto

// The DOM lib (Node build) types BufferSource as ArrayBuffer-backed only, while workers-types
// hand out Uint8Array<ArrayBufferLike> everywhere; request bytes are never SharedArrayBuffer-backed.
function bufferSource(data: string | Uint8Array): Uint8Array<ArrayBuffer> {
  return typeof data === "string" ? utf8(data) : (data as Uint8Array<ArrayBuffer>);
}

export async function sha256Hex(data: string | Uint8Array): Promise<string> {
  return hex(await crypto.subtle.digest("SHA-256", bufferSource(data)));
}

async function hmacKey(raw: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", bufferSource(raw), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
}

/** HMAC-SHA256; a CryptoKey (e.g. a derived signing key) avoids re-importing the key. */
export async function hmacSha256(key: CryptoKey | Uint8Array | string, data: string | Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  const k = typeof key === "string" ? await hmacKey(utf8(key)) : key instanceof Uint8Array ? await hmacKey(key) : key;
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, bufferSource(data)));
}

/**
 * kSigning = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request"), as a
 * non-extractable HMAC CryptoKey ready for signing: callers cache it per (secret, date, region).
 */
export async function deriveSigningKey(secret: string, date: string, region: string, service = "s3"): Promise<CryptoKey> {
  const kDate = await hmacSha256(utf8("AWS4" + secret), date);
  const kRegion = await hmacSha256(kDate, region);
  const kService = await hmacSha256(kRegion, service);
  const kSigning = await hmacSha256(kService, "aws4_request");
  return hmacKey(kSigning);
}

// Deriving kSigning costs four HMAC imports+signs, and a client reuses one scope all day: a
// verifier sees the same few keys on every request, a benchmark signs thousands a second.
const KEY_CACHE_MAX = 64;
const keyCache = new Map<string, Promise<CryptoKey>>();

/** deriveSigningKey, kept per (secret, date, region, service) in a small LRU. */
export function cachedSigningKey(secret: string, date: string, region: string, service = "s3"): Promise<CryptoKey> {
  const id = `${date}\n${region}\n${service}\n${secret}`;
  const hit = keyCache.get(id);
  if (hit) {
    keyCache.delete(id);
    keyCache.set(id, hit);
    return hit;
  }
  const p = deriveSigningKey(secret, date, region, service);
  p.catch(() => keyCache.delete(id));
  keyCache.set(id, p);
  if (keyCache.size > KEY_CACHE_MAX) keyCache.delete(keyCache.keys().next().value!);
  return p;
}

/** The fields of a credential "<AKID>/YYYYMMDD/REGION/SERVICE/aws4_request". */
export interface CredentialFields {
  accessKey: string;
  date: string;
  region: string;
  service: string;
  terminator: string;
}

/** A credential's fields; null if it has fewer than five. */
export function parseCredential(value: string): CredentialFields | null {
  const parts = value.split("/");
  if (parts.length < 5) return null;
  // The access key is everything before the last four fields.
  const tail = parts.splice(parts.length - 4, 4);
  return { accessKey: parts.join("/"), date: tail[0]!, region: tail[1]!, service: tail[2]!, terminator: tail[3]! };
}

/** SignedHeaders ("host;x-amz-date") as lowercase names, sorted. */
export function splitSignedHeaders(v: string): string[] {
  return v
    .split(";")
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== "")
    .sort();
}

export async function signHex(signingKey: CryptoKey, text: string): Promise<string> {
  return hex(await hmacSha256(signingKey, text));
}

/** Equality of two strings in time independent of where they differ (length is not secret). */
export function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** `20130524T000000Z` */
export function amzDateOf(d: Date): string {
  return d.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

/** Parses `yyyyMMdd'T'HHmmss'Z'`; null when malformed. */
export function parseAmzDate(s: string): Date | null {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) return null;
  const t = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
  const d = new Date(t);
  // Reject rollovers such as month 13 that Date.UTC would silently normalise.
  return amzDateOf(d) === s ? d : null;
}
