// What a PutObject's headers promise about its body, checked on the bytes as they pass: the
// length, the signed SHA-256 (x-amz-content-sha256), Content-MD5, and an additional checksum
// (x-amz-checksum-*, as a header or an aws-chunked trailer). The proxy commits an edit only
// after every check passed, as the gateway does for a PUT, so a bad body never becomes a version.

import { createHash, type Hash } from "node:crypto";
import { crc32, crc32c, crc64nvme, u32ToBase64, u64ToBase64 } from "../../common/checksums.ts";
import { S3Error } from "../../common/s3/errors.ts";

const ALGORITHMS = ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"] as const;
type Algorithm = (typeof ALGORITHMS)[number];

const headerOf = (a: Algorithm) => `x-amz-checksum-${a.toLowerCase()}`;

interface Running {
  update(d: Uint8Array): void;
  result(): string;
}

function running(a: Algorithm): Running {
  if (a === "SHA1" || a === "SHA256") {
    const h: Hash = createHash(a === "SHA1" ? "sha1" : "sha256");
    return { update: (d) => void h.update(d), result: () => h.digest("base64") };
  }
  if (a === "CRC64NVME") {
    let v = 0n;
    return { update: (d) => void (v = crc64nvme(d, v)), result: () => u64ToBase64(v) };
  }
  const fn = a === "CRC32" ? crc32 : crc32c;
  let v = 0;
  return { update: (d) => void (v = fn(d, v)), result: () => u32ToBase64(v) };
}

export class BodyChecks {
  private readonly length: number | null;
  private readonly sha256: { expected: string; h: Hash } | null;
  private readonly md5: { expected: string; h: Hash } | null;
  private readonly checksum: { algorithm: Algorithm; expected: string | null; run: Running } | null;
  received = 0;

  /** `get` reads a request header (lowercase name); `trailerNames` from x-amz-trailer. */
  constructor(get: (name: string) => string | undefined, o: { payloadHash: string; length: number | null; trailerNames: string[] }) {
    this.length = o.length;
    this.sha256 = /^[0-9a-f]{64}$/.test(o.payloadHash) ? { expected: o.payloadHash, h: createHash("sha256") } : null;
    const md5 = get("content-md5");
    if (md5 !== undefined) {
      const raw = Buffer.from(md5.trim(), "base64");
      if (raw.length !== 16) throw new S3Error("InvalidDigest", "The Content-MD5 you specified was invalid.");
      this.md5 = { expected: raw.toString("hex"), h: createHash("md5") };
    } else this.md5 = null;
    const sent = ALGORITHMS.filter((a) => get(headerOf(a)) !== undefined);
    const trailed = ALGORITHMS.filter((a) => o.trailerNames.includes(headerOf(a)));
    if (sent.length + trailed.length > 1) throw new S3Error("InvalidRequest", "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.");
    const a = sent[0] ?? trailed[0];
    this.checksum = a ? { algorithm: a, expected: sent[0] ? get(headerOf(a))!.trim() : null, run: running(a) } : null;
  }

  update(d: Uint8Array): void {
    this.received += d.length;
    if (this.length !== null && this.received > this.length) throw new S3Error("IncompleteBody", "The body is longer than its Content-Length");
    this.sha256?.h.update(d);
    this.md5?.h.update(d);
    this.checksum?.run.update(d);
  }

  /** The bytes of `source`, checked as they pass. */
  async *tap(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    for await (const d of source) {
      this.update(d);
      yield d;
    }
  }

  /** Throws S3's error for the first promise the body broke; returns the verified checksum header, if any. */
  verify(trailers: Record<string, string>): Record<string, string> {
    if (this.length !== null && this.received !== this.length) {
      throw new S3Error("IncompleteBody", `You did not provide the number of bytes specified by the Content-Length HTTP header (${this.received} of ${this.length})`);
    }
    if (this.sha256 && this.sha256.h.digest("hex") !== this.sha256.expected) throw new S3Error("XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed.");
    if (this.md5 && this.md5.h.digest("hex") !== this.md5.expected) throw new S3Error("BadDigest", "The Content-MD5 you specified did not match what we received.");
    if (!this.checksum) return {};
    const { algorithm, run } = this.checksum;
    const expected = this.checksum.expected ?? trailers[headerOf(algorithm)];
    if (expected === undefined) throw new S3Error("InvalidRequest", `The trailing header ${headerOf(algorithm)} declared in x-amz-trailer was not sent`);
    if (run.result() !== expected) throw new S3Error("BadDigest", `The ${algorithm} you specified did not match the calculated checksum.`);
    return { [headerOf(algorithm)]: expected, "x-amz-checksum-type": "FULL_OBJECT" };
  }
}
