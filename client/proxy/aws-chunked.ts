// `Content-Encoding: aws-chunked` bodies, decoded in Node as they stream:
//
//   hex-size[;chunk-signature=sig]\r\n <data>\r\n ... 0[;chunk-signature=sig]\r\n
//   [name:value\r\n ...] [x-amz-trailer-signature:sig\r\n] \r\n
//
// The gateway has its own decoder (workers/gateway/auth/aws-chunked.ts), written against
// workerd (DigestStream) and not type-checked for Node; this one does the framing and the
// signatures, and leaves checksums to body-checks.ts. With a verified seed signature, each
// signed chunk is held until its signature verifies, so no unauthenticated byte goes on;
// without one (the proxy trusts loopback), signatures are not checked.

import { EMPTY_SHA256, constantTimeEqual, sha256Hex, signHex } from "../../common/s3/sigv4.ts";
import { S3Error } from "../../common/s3/errors.ts";

export const STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
export const STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
export const STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
export const STREAMING_MODES = [STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER];

/** Largest chunk accepted, as the gateway's; SDKs send 64 KiB. */
const MAX_CHUNK = 16 * 1024 * 1024;
const MAX_LINE = 4096;
const MAX_TRAILER_BYTES = 16 * 1024;
const EMPTY = Buffer.alloc(0);

export interface ChunkSigning {
  signingKey: CryptoKey;
  scope: string;
  amzDate: string;
  seedSignature: string;
}

const malformed = (what: string) => new S3Error("InvalidRequest", `Malformed aws-chunked body: ${what}`);
const incomplete = () => new S3Error("IncompleteBody", "The request body terminated unexpectedly");
const badSignature = () => new S3Error("SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your key and signing method.");

/** Lines and byte runs out of an async byte source, without copying data runs. */
class Reader {
  private buf: Buffer = EMPTY;
  private ended = false;
  private readonly it: AsyncIterator<Uint8Array>;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    if (this.ended) return false;
    const r = await this.it.next();
    if (r.done) {
      this.ended = true;
      return false;
    }
    const b = Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
    this.buf = this.buf.length === 0 ? b : Buffer.concat([this.buf, b]);
    return true;
  }

  /** The next line without its CRLF; null at the end of input (a last line without CRLF is returned whole). */
  async line(): Promise<string | null> {
    for (;;) {
      const lf = this.buf.indexOf(0x0a);
      if (lf >= 0) {
        const end = lf > 0 && this.buf[lf - 1] === 0x0d ? lf - 1 : lf;
        const text = this.buf.toString("latin1", 0, end);
        this.buf = this.buf.subarray(lf + 1);
        return text;
      }
      if (this.buf.length > MAX_LINE) throw malformed("chunk header or trailer line too long");
      if (!(await this.fill())) {
        if (this.buf.length === 0) return null;
        const text = this.buf.toString("latin1");
        this.buf = EMPTY;
        return text;
      }
    }
  }

  /** Exactly `n` bytes, in the pieces they arrived in. */
  async *take(n: number): AsyncGenerator<Buffer> {
    while (n > 0) {
      if (this.buf.length === 0 && !(await this.fill())) throw incomplete();
      const k = Math.min(n, this.buf.length);
      yield this.buf.subarray(0, k);
      this.buf = this.buf.subarray(k);
      n -= k;
    }
  }

  async close(): Promise<void> {
    if (!this.ended) await this.it.return?.();
  }
}

export class AwsChunkedDecoder {
  private readonly mode: string;
  private readonly signing: ChunkSigning | null;
  private readonly decodedLength: number | null;
  private previous: string;
  /** Trailing headers (lowercase names), once decode() has finished. */
  readonly trailers: Record<string, string> = {};
  total = 0;

  constructor(o: { mode: string; signing: ChunkSigning | null; decodedLength: number | null }) {
    if (!STREAMING_MODES.includes(o.mode)) throw new S3Error("InvalidArgument", `unsupported x-amz-content-sha256 value ${o.mode}`);
    this.mode = o.mode;
    this.signing = o.mode === STREAMING_UNSIGNED_TRAILER ? null : o.signing;
    this.decodedLength = o.decodedLength;
    this.previous = o.signing?.seedSignature ?? "";
  }

  private async verifyChunk(data: Uint8Array, signature: string | null): Promise<void> {
    const s = this.signing;
    if (!s) return;
    const sts = `AWS4-HMAC-SHA256-PAYLOAD\n${s.amzDate}\n${s.scope}\n${this.previous}\n${EMPTY_SHA256}\n${data.length === 0 ? EMPTY_SHA256 : await sha256Hex(data)}`;
    const expected = await signHex(s.signingKey, sts);
    if (signature === null || !constantTimeEqual(expected, signature)) throw badSignature();
    this.previous = expected;
  }

  /** The decoded object bytes; throws S3Error if the framing, a signature or the length is wrong. */
  async *decode(body: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    const r = new Reader(body);
    try {
      for (;;) {
        const line = await r.line();
        if (line === null) throw incomplete();
        const semi = line.indexOf(";");
        const sizeText = (semi < 0 ? line : line.slice(0, semi)).trim();
        if (!/^[0-9a-fA-F]{1,16}$/.test(sizeText)) throw malformed(`invalid chunk size line "${line.slice(0, 100)}"`);
        const size = parseInt(sizeText, 16);
        if (size > MAX_CHUNK) throw malformed(`chunk of ${size} bytes exceeds the ${MAX_CHUNK}-byte limit`);
        const signature = semi < 0 ? null : (/chunk-signature=([0-9a-f]+)/.exec(line.slice(semi))?.[1] ?? null);
        if (this.decodedLength !== null && this.total + size > this.decodedLength) throw new S3Error("IncompleteBody", "The decoded body length does not match x-amz-decoded-content-length");
        if (size === 0) {
          await this.verifyChunk(EMPTY, signature);
          break;
        }
        if (this.signing) {
          const parts: Buffer[] = [];
          for await (const piece of r.take(size)) parts.push(piece);
          const data = Buffer.concat(parts, size);
          await this.verifyChunk(data, signature);
          yield data;
        } else {
          // Copied, so what a consumer keeps does not pin a whole network read.
          for await (const piece of r.take(size)) yield Buffer.from(piece);
        }
        this.total += size;
        if ((await r.line()) !== "") throw malformed("chunk data is not followed by CRLF (chunk size does not match its data)");
      }
      if (this.mode === STREAMING_SIGNED) {
        const end = await r.line();
        if (end !== null && end !== "") throw malformed("unexpected data after the final chunk");
      } else await this.readTrailers(r);
      if (this.decodedLength !== null && this.total !== this.decodedLength) throw new S3Error("IncompleteBody", "The decoded body length does not match x-amz-decoded-content-length");
    } finally {
      await r.close();
    }
  }

  private async readTrailers(r: Reader): Promise<void> {
    let bytes = 0;
    let trailerSignature: string | null = null;
    const lines: [string, string][] = [];
    for (;;) {
      const line = await r.line();
      if (line === null || line === "") break;
      bytes += line.length;
      if (bytes > MAX_TRAILER_BYTES) throw malformed("trailing headers too large");
      const colon = line.indexOf(":");
      if (colon <= 0) throw malformed(`invalid trailing header line "${line.slice(0, 100)}"`);
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (name === "x-amz-trailer-signature") trailerSignature = value;
      else lines.push([name, value]);
    }
    for (const [k, v] of lines) this.trailers[k] = v;
    const s = this.signing;
    if (!s) return;
    if (trailerSignature === null) throw badSignature();
    const canonical = lines.map(([k, v]) => `${k}:${v}\n`).join("");
    const expected = await signHex(s.signingKey, `AWS4-HMAC-SHA256-TRAILER\n${s.amzDate}\n${s.scope}\n${this.previous}\n${await sha256Hex(canonical)}`);
    if (!constantTimeEqual(expected, trailerSignature)) throw badSignature();
  }
}
