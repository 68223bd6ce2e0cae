// AWS Signature Version 4 primitives for S3, shared by the gateway's verifier (workerd) and the
// benchmark client (Node 22). Only web-standard APIs: crypto.subtle, TextEncoder, URL.

export const ALGORITHM = "AWS4-HMAC-SHA256";
export const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
export const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";
/** Longest lifetime of a presigned URL S3 accepts (7 days). */
export const MAX_PRESIGN_EXPIRES = 604800;

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
// URI encoding

const UNRESERVED = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~") UNRESERVED[c.charCodeAt(0)] = 1;
const PCT: string[] = [];
for (let i = 0; i < 256; i++) PCT.push("%" + i.toString(16).toUpperCase().padStart(2, "0"));

/** AWS URI encoding of raw bytes: unreserved kept, everything else %XX (uppercase). */
export function uriEncodeBytes(bytes: Uint8Array, encodeSlash: boolean): string {
  let out = "";
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b < 128 && UNRESERVED[b] === 1) out += String.fromCharCode(b);
    else if (b === 0x2f && !encodeSlash) out += "/";
    else out += PCT[b]!;
  }
  return out;
}

/** AWS URI encoding of a string's UTF-8 bytes. `encodeSlash` is false only for object-key paths. */
export function uriEncode(s: string, encodeSlash: boolean): string {
  // Fast path: most keys and query values are already plain ASCII unreserved characters.
  let plain = true;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || (UNRESERVED[c] !== 1 && !(c === 0x2f && !encodeSlash))) {
      plain = false;
      break;
    }
  }
  return plain ? s : uriEncodeBytes(utf8(s), encodeSlash);
}

function hexVal(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/**
 * Bytes a percent-encoded string stands for. A `%` not followed by two hex digits is taken
 * literally (as S3 does) rather than rejected; `+` stays `+`.
 */
export function percentDecodeBytes(s: string): Uint8Array {
  if (s.indexOf("%") < 0) return utf8(s);
  const out: number[] = [];
  let run = "";
  const flush = () => {
    if (run) {
      for (const b of utf8(run)) out.push(b);
      run = "";
    }
  };
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) === 0x25 && i + 2 < s.length) {
      const h = hexVal(s.charCodeAt(i + 1));
      const l = hexVal(s.charCodeAt(i + 2));
      if (h >= 0 && l >= 0) {
        flush();
        out.push((h << 4) | l);
        i += 2;
        continue;
      }
    }
    run += s[i];
  }
  flush();
  return Uint8Array.from(out);
}

const lenientDecoder = new TextDecoder();

export function percentDecode(s: string): string {
  return s.indexOf("%") < 0 ? s : lenientDecoder.decode(percentDecodeBytes(s));
}

/**
 * Canonical URI of a request path as S3 computes it: each segment's escapes decoded and the
 * bytes re-encoded, so `~` vs `%7E` or a raw `$` verify alike. No `.`/`..` or `//` folding
 * and no double encoding: S3 keys may contain all of those.
 */
export function canonicalUri(path: string): string {
  if (path === "") return "/";
  const segments = path.split("/");
  for (let i = 0; i < segments.length; i++) {
    segments[i] = uriEncodeBytes(percentDecodeBytes(segments[i]!), true);
  }
  return segments.join("/");
}

/** Decoded name/value pairs of a raw query string (`?` optional); a bare name has value "". */
export function parseQuery(search: string): [string, string][] {
  const s = search.startsWith("?") ? search.slice(1) : search;
  const out: [string, string][] = [];
  if (s === "") return out;
  for (const part of s.split("&")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    if (eq < 0) out.push([percentDecode(part), ""]);
    else out.push([percentDecode(part.slice(0, eq)), percentDecode(part.slice(eq + 1))]);
  }
  return out;
}

/** Canonical query string from decoded pairs: each side URI-encoded, sorted by name then value. */
export function canonicalQueryString(params: [string, string][]): string {
  const encoded = params.map(([k, v]) => [uriEncode(k, true), uriEncode(v, true)] as const);
  encoded.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return encoded.map(([k, v]) => `${k}=${v}`).join("&");
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

/**
 * The SigV4 canonical request. `uri` and `query` are already canonical (see canonicalUri,
 * canonicalQueryString); `headers` are the signed headers only.
 */
export function canonicalRequest(
  method: string,
  uri: string,
  query: string,
  headers: Iterable<readonly [string, string]>,
  payloadHash: string,
): string {
  const h = canonicalHeaders(headers);
  return `${method}\n${uri}\n${query}\n${h.block}\n${h.signedHeaders}\n${payloadHash}`;
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

// Deriving kSigning costs four HMAC imports+signs; a client reuses one scope all day.
const KEY_CACHE_MAX = 64;
const keyCache = new Map<string, Promise<CryptoKey>>();

/** deriveSigningKey for S3, kept per (secret, date, region) in a small LRU. */
export function cachedSigningKey(secret: string, date: string, region: string): Promise<CryptoKey> {
  const id = `${date}\n${region}\n${secret}`;
  const hit = keyCache.get(id);
  if (hit) {
    keyCache.delete(id);
    keyCache.set(id, hit);
    return hit;
  }
  const p = deriveSigningKey(secret, date, region, "s3");
  p.catch(() => keyCache.delete(id));
  keyCache.set(id, p);
  if (keyCache.size > KEY_CACHE_MAX) keyCache.delete(keyCache.keys().next().value!);
  return p;
}

/** The fields of a credential "<AKID>/YYYYMMDD/REGION/SERVICE/aws4_request"; null if it has fewer than five. */
export function parseCredential(value: string): { accessKey: string; date: string; region: string; service: string; terminator: string } | null {
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

// ---------------------------------------------------------------------------------------------
// Client side: signing and presigning

// A benchmark client signs thousands of requests per second under one scope; re-deriving the
// key would cost four extra HMACs and a key import each time.
const clientKeys = new Map<string, Promise<CryptoKey>>();

function clientSigningKey(secret: string, date: string, region: string, service: string): Promise<CryptoKey> {
  const id = `${date}\n${region}\n${service}\n${secret}`;
  let p = clientKeys.get(id);
  if (!p) {
    if (clientKeys.size >= 16) clientKeys.delete(clientKeys.keys().next().value!);
    p = deriveSigningKey(secret, date, region, service);
    p.catch(() => clientKeys.delete(id));
    clientKeys.set(id, p);
  }
  return p;
}

/** Headers a signer leaves out because proxies and HTTP stacks add or rewrite them. */
const UNSIGNABLE = new Set([
  "authorization",
  "connection",
  "expect",
  "keep-alive",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "user-agent",
  "x-amzn-trace-id",
]);

export interface SignRequestInput {
  method: string;
  url: string | URL;
  /** Headers that will be sent; all but hop-by-hop ones are signed. `host` defaults to url.host. */
  headers?: Record<string, string>;
  /** Hex SHA-256 of the body, UNSIGNED-PAYLOAD or a STREAMING-* value. */
  payloadHash: string;
  accessKey: string;
  secretKey: string;
  region: string;
  service?: string;
  date?: Date;
}

export interface SignedHeaders {
  authorization: string;
  "x-amz-date": string;
  "x-amz-content-sha256": string;
}

/** The client's headers a signature covers, lowercased, with `host` always among them. */
function headersToSign(headers: Record<string, string> | undefined, url: URL, setBySigner: string[]): [string, string][] {
  const pairs: [string, string][] = [];
  let hasHost = false;
  for (const [name, value] of Object.entries(headers ?? {})) {
    const n = name.toLowerCase();
    if (UNSIGNABLE.has(n) || setBySigner.includes(n)) continue;
    if (n === "host") hasHost = true;
    pairs.push([n, value]);
  }
  if (!hasHost) pairs.push(["host", url.host]);
  return pairs;
}

/** Header-form SigV4: returns the headers to add to the request. */
export async function signRequest(input: SignRequestInput): Promise<SignedHeaders> {
  const url = typeof input.url === "string" ? new URL(input.url) : input.url;
  const service = input.service ?? "s3";
  const amzDate = amzDateOf(input.date ?? new Date());
  const scope = credentialScope(amzDate.slice(0, 8), input.region, service);
  const pairs = headersToSign(input.headers, url, ["x-amz-date", "x-amz-content-sha256"]);
  pairs.push(["x-amz-date", amzDate], ["x-amz-content-sha256", input.payloadHash]);
  const creq = canonicalRequest(
    input.method.toUpperCase(),
    canonicalUri(url.pathname),
    canonicalQueryString(parseQuery(url.search)),
    pairs,
    input.payloadHash,
  );
  const key = await clientSigningKey(input.secretKey, amzDate.slice(0, 8), input.region, service);
  const signature = await signHex(key, await stringToSign(amzDate, scope, creq));
  return {
    authorization: `${ALGORITHM} Credential=${input.accessKey}/${scope}, SignedHeaders=${canonicalHeaders(pairs).signedHeaders}, Signature=${signature}`,
    "x-amz-date": amzDate,
    "x-amz-content-sha256": input.payloadHash,
  };
}

export interface PresignInput {
  method: string;
  url: string | URL;
  accessKey: string;
  secretKey: string;
  region: string;
  service?: string;
  date?: Date;
  /** Seconds, at most 604800. */
  expiresIn: number;
  /** Extra headers the eventual request will carry and that are to be signed. */
  headers?: Record<string, string>;
}

/** Query-form SigV4 (payload UNSIGNED-PAYLOAD): returns the URL with the X-Amz-* parameters. */
export async function presignUrl(input: PresignInput): Promise<string> {
  const url = new URL(typeof input.url === "string" ? input.url : input.url.href);
  const service = input.service ?? "s3";
  const amzDate = amzDateOf(input.date ?? new Date());
  const scope = credentialScope(amzDate.slice(0, 8), input.region, service);
  const pairs = headersToSign(input.headers, url, []);
  const added: [string, string][] = [
    ["X-Amz-Algorithm", ALGORITHM],
    ["X-Amz-Credential", `${input.accessKey}/${scope}`],
    ["X-Amz-Date", amzDate],
    ["X-Amz-Expires", String(input.expiresIn)],
    ["X-Amz-SignedHeaders", canonicalHeaders(pairs).signedHeaders],
  ];
  const creq = canonicalRequest(
    input.method.toUpperCase(),
    canonicalUri(url.pathname),
    canonicalQueryString([...parseQuery(url.search), ...added]),
    pairs,
    UNSIGNED_PAYLOAD,
  );
  const key = await clientSigningKey(input.secretKey, amzDate.slice(0, 8), input.region, service);
  const signature = await signHex(key, await stringToSign(amzDate, scope, creq));
  added.push(["X-Amz-Signature", signature]);
  const extra = added.map(([k, v]) => `${k}=${uriEncode(v, true)}`).join("&");
  const existing = url.search.length > 1 ? url.search.slice(1) + "&" : "";
  url.search = "?" + existing + extra;
  return url.href;
}
