// S3's additional checksums (x-amz-checksum-*), one table for the gateway and the proxy: the
// algorithms and their headers, which one a request declares, how each is computed
// incrementally over a body, and how a stored one is returned. Used by the aws-chunked decoder
// (trailing checksums), PutObject, UploadPart and GetObject/HeadObject, and the proxy's body checks.

import { bytesToBase64, crc32, crc32c, crc64nvme, u32ToBase64, u64ToBase64 } from "../checksums.ts";
import type { ChecksumAlgorithm, ObjectChecksum } from "../manifest.ts";
import { S3Error } from "./errors.ts";

export const CHECKSUM_ALGORITHMS: readonly ChecksumAlgorithm[] = ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"];

export function headerOf(a: ChecksumAlgorithm): string {
  return `x-amz-checksum-${a.toLowerCase()}`;
}

export function algorithmOfHeader(name: string): ChecksumAlgorithm | null {
  const n = name.toLowerCase();
  return CHECKSUM_ALGORITHMS.find((a) => headerOf(a) === n) ?? null;
}

export function parseAlgorithm(value: string): ChecksumAlgorithm {
  const a = value.trim().toUpperCase() as ChecksumAlgorithm;
  if (!CHECKSUM_ALGORITHMS.includes(a)) {
    throw new S3Error("InvalidRequest", `Checksum algorithm ${value} is not supported; use one of ${CHECKSUM_ALGORITHMS.join(", ")}`);
  }
  return a;
}

/** A request's headers, as both runtimes' Headers (or a plain lookup) can give them. */
export interface HeaderLookup {
  get(name: string): string | null;
}

/** An incremental SHA digest over a body that is never held whole. */
export interface RunningDigest {
  update(data: Uint8Array): void | Promise<void>;
  digest(): Promise<Uint8Array>;
}

/**
 * Where incremental SHA digests come from. Web standards have none (crypto.subtle digests a
 * whole buffer), so each runtime supplies its own: workerd's DigestStream, Node's createHash.
 */
export type RunningDigests = (algorithm: "SHA-1" | "SHA-256") => RunningDigest;

export interface Checksummer {
  update(data: Uint8Array): void | Promise<void>;
  /** Base64 of the big-endian checksum, as S3 transmits it. */
  result(): Promise<string>;
}

type CrcAlgorithm = Exclude<ChecksumAlgorithm, "SHA1" | "SHA256">;

function crcChecksummer(a: CrcAlgorithm): Checksummer {
  if (a === "CRC64NVME") {
    let v = 0n;
    return {
      update: (d) => {
        v = crc64nvme(d, v);
      },
      result: async () => u64ToBase64(v),
    };
  }
  const fn = a === "CRC32" ? crc32 : crc32c;
  let v = 0;
  return {
    update: (d) => {
      v = fn(d, v);
    },
    result: async () => u32ToBase64(v),
  };
}

function digestChecksummer(digest: RunningDigest): Checksummer {
  return { update: (d) => digest.update(d), result: async () => bytesToBase64(await digest.digest()) };
}

export function newChecksummer(a: ChecksumAlgorithm, digests: RunningDigests): Checksummer {
  if (a === "SHA1") return digestChecksummer(digests("SHA-1"));
  if (a === "SHA256") return digestChecksummer(digests("SHA-256"));
  return crcChecksummer(a);
}

/** A whole small body at once: the SHAs need no running digest then. */
export async function checksumOf(a: ChecksumAlgorithm, bytes: Uint8Array): Promise<string> {
  if (a === "SHA1" || a === "SHA256") {
    return bytesToBase64(new Uint8Array(await crypto.subtle.digest(a === "SHA1" ? "SHA-1" : "SHA-256", bytes as Uint8Array<ArrayBuffer>)));
  }
  const c = crcChecksummer(a);
  await c.update(bytes);
  return c.result();
}

/** What a request body is to be checked against: the algorithm, and the value if sent as a header. */
export interface RequestedChecksum {
  algorithm: ChecksumAlgorithm;
  /** Base64 value from an x-amz-checksum-* header; null when it comes as a trailer (or not at all). */
  expected: string | null;
  /** The value arrives as a trailer of an aws-chunked body (verified by the decoder). */
  trailer: boolean;
}

const BASE64_LEN: Record<ChecksumAlgorithm, number> = { CRC32: 8, CRC32C: 8, CRC64NVME: 12, SHA1: 28, SHA256: 44 };

/**
 * The checksum a request declares, from (in S3's terms) an x-amz-checksum-<alg> header, an
 * x-amz-trailer naming one, or x-amz-checksum-algorithm / x-amz-sdk-checksum-algorithm alone.
 * More than one checksum header is refused, as S3 does.
 */
export function requestedChecksum(headers: HeaderLookup, trailerNames: readonly string[]): RequestedChecksum | null {
  const sent: [ChecksumAlgorithm, string][] = [];
  for (const a of CHECKSUM_ALGORITHMS) {
    const v = headers.get(headerOf(a));
    if (v !== null) sent.push([a, v.trim()]);
  }
  if (sent.length > 1) throw new S3Error("InvalidRequest", "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.");
  const trailed = trailerNames.map(algorithmOfHeader).filter((a): a is ChecksumAlgorithm => a !== null);
  if (trailed.length > 1) throw new S3Error("InvalidRequest", "Expecting a single x-amz-checksum- trailer. Multiple checksum Types are not allowed.");
  const declared = headers.get("x-amz-checksum-algorithm") ?? headers.get("x-amz-sdk-checksum-algorithm");
  const declaredAlg = declared !== null ? parseAlgorithm(declared) : null;
  if (sent.length === 1) {
    const [algorithm, value] = sent[0]!;
    if (trailed.length > 0) throw new S3Error("InvalidRequest", "A checksum cannot be sent both as a header and as a trailer.");
    if (declaredAlg !== null && declaredAlg !== algorithm) {
      throw new S3Error("InvalidRequest", `Value for x-amz-sdk-checksum-algorithm header is invalid: the checksum sent is ${algorithm}.`);
    }
    if (value.length !== BASE64_LEN[algorithm] || !/^[A-Za-z0-9+/]+=*$/.test(value)) {
      throw new S3Error("InvalidRequest", `Value for ${headerOf(algorithm)} header is invalid.`);
    }
    return { algorithm, expected: value, trailer: false };
  }
  if (trailed.length === 1) return { algorithm: trailed[0]!, expected: null, trailer: true };
  return declaredAlg !== null ? { algorithm: declaredAlg, expected: null, trailer: false } : null;
}

export function badDigest(a: ChecksumAlgorithm): S3Error {
  return new S3Error("BadDigest", `The ${a} you specified did not match the calculated checksum.`);
}

/** Response headers for a stored checksum, when the client asked for them (x-amz-checksum-mode: ENABLED). */
export function checksumResponseHeaders(c: ObjectChecksum | undefined, headers: HeaderLookup): Record<string, string> {
  if (!c || headers.get("x-amz-checksum-mode")?.toUpperCase() !== "ENABLED") return {};
  return { [headerOf(c.algorithm)]: c.value, "x-amz-checksum-type": c.type };
}
