// What a PutObject's headers promise about its body, checked on the bytes as they pass: the
// length, the signed SHA-256 (x-amz-content-sha256), Content-MD5, and an additional checksum
// (x-amz-checksum-*) sent as a header; one sent as an aws-chunked trailer is checked by the
// decoder. The proxy commits an edit only after every check passed, as the gateway does for a
// PUT, so a bad body never becomes a version.

import { createHash, type Hash } from "node:crypto";
import type { ChecksumAlgorithm } from "../../common/manifest.ts";
import { badDigest, headerOf, newChecksummer, requestedChecksum, type Checksummer } from "../../common/s3/checksums.ts";
import { S3Error } from "../../common/s3/errors.ts";
import { nodeDigests } from "./node-digests.ts";

export class BodyChecks {
  private readonly length: number | null;
  private readonly sha256: { expected: string; h: Hash } | null;
  private readonly md5: { expected: string; h: Hash } | null;
  /** The additional checksum: a header's value, computed here, or a trailer's, verified by the decoder. */
  private readonly checksum: { algorithm: ChecksumAlgorithm; sent: { value: string; run: Checksummer } | "trailer" } | null;
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
    const r = requestedChecksum({ get: (name) => get(name) ?? null }, o.trailerNames);
    if (r?.trailer) this.checksum = { algorithm: r.algorithm, sent: "trailer" };
    else if (r?.expected) this.checksum = { algorithm: r.algorithm, sent: { value: r.expected, run: newChecksummer(r.algorithm, nodeDigests) } };
    // Only an algorithm named, no value to hold the body to: a session keeps no checksum.
    else this.checksum = null;
  }

  private async update(d: Uint8Array): Promise<void> {
    this.received += d.length;
    if (this.length !== null && this.received > this.length) throw new S3Error("IncompleteBody", "The body is longer than its Content-Length");
    this.sha256?.h.update(d);
    this.md5?.h.update(d);
    const sent = this.checksum?.sent;
    if (sent && sent !== "trailer") await sent.run.update(d);
  }

  /** The bytes of `source`, checked as they pass. */
  async *tap(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    for await (const d of source) {
      await this.update(d);
      yield d;
    }
  }

  /**
   * Throws S3's error for the first promise the body broke; returns the verified checksum header,
   * if any. `trailers` are the aws-chunked decoder's, whose checksums it has verified.
   */
  async verify(trailers: Record<string, string>): Promise<Record<string, string>> {
    if (this.length !== null && this.received !== this.length) {
      throw new S3Error("IncompleteBody", `You did not provide the number of bytes specified by the Content-Length HTTP header (${this.received} of ${this.length})`);
    }
    if (this.sha256 && this.sha256.h.digest("hex") !== this.sha256.expected) throw new S3Error("XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed.");
    if (this.md5 && this.md5.h.digest("hex") !== this.md5.expected) throw new S3Error("BadDigest", "The Content-MD5 you specified did not match what we received.");
    if (!this.checksum) return {};
    const { algorithm, sent } = this.checksum;
    const header = headerOf(algorithm);
    const value = sent === "trailer" ? trailers[header] : sent.value;
    if (value === undefined) throw new S3Error("InvalidRequest", `The trailing header ${header} declared in x-amz-trailer was not sent`);
    if (sent !== "trailer" && (await sent.run.result()) !== value) throw badDigest(algorithm);
    return { [header]: value, "x-amz-checksum-type": "FULL_OBJECT" };
  }
}
