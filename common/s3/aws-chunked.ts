// Decoder for `Content-Encoding: aws-chunked` request bodies, over web streams and WebCrypto so
// that the gateway (workerd) and the proxy (Node) run the same one:
//
//   hex-size[;chunk-signature=sig]\r\n <data> \r\n  ...  0[;chunk-signature=sig]\r\n
//   [name:value\r\n ...] [x-amz-trailer-signature:sig\r\n] \r\n
//
// In the signed modes each chunk is held until its signature verifies, so no unauthenticated
// byte ever reaches the consumer; memory is bounded by the largest chunk (<= 16 MiB). In the
// unsigned-trailer mode bytes are passed through as they arrive. Length, trailer signature and
// trailing checksums are checked at end of input, and a failure errors the stream instead of
// closing it, so a consumer that commits only on a clean close never stores a bad object.

import { algorithmOfHeader, badDigest, newChecksummer, type Checksummer, type RunningDigests } from "./checksums.ts";
import { S3Error } from "./errors.ts";
import { EMPTY_SHA256, STREAMING_SIGNED, STREAMING_UNSIGNED_TRAILER, constantTimeEqual, hex, signHex, utf8, type StreamingMode } from "./sigv4.ts";
import type { AuthContext } from "./verify-request.ts";

/** What chunk signatures chain from: the request's verified signature and its signing key. */
export type ChunkSigning = Pick<AuthContext, "signingKey" | "scope" | "amzDate" | "seedSignature">;

export interface AwsChunkedContext {
  mode: StreamingMode;
  /** x-amz-decoded-content-length, when the request gave one. */
  decodedLength: number | null;
  /** null: signatures are not checked (only for a proxy that trusts loopback). */
  signing: ChunkSigning | null;
  /** Lowercased names from x-amz-trailer. */
  trailerNames: string[];
  /** Running SHA digests for trailing SHA1/SHA256 checksums: the runtime's own. */
  digests: RunningDigests;
}

export interface AwsChunkedResult {
  /** The decoded object bytes. Errors (S3Error) instead of closing if anything fails to verify. */
  stream: ReadableStream<Uint8Array>;
  /** The trailing headers (lowercase names, without x-amz-trailer-signature), once the body ends. */
  trailers: Promise<Record<string, string>>;
}

/** The trailing header names an x-amz-trailer value declares, lowercased. */
export function parseTrailerNames(value: string | null | undefined): string[] {
  return (value ?? "").split(",").map((s) => s.trim().toLowerCase()).filter(Boolean);
}

/** Largest chunk accepted; the SDKs use 64 KiB. */
export const MAX_CHUNK_SIZE = 16 * 1024 * 1024;
const MAX_LINE = 4096;
const MAX_TRAILER_BYTES = 16 * 1024;
const CR = 0x0d;
const LF = 0x0a;

function malformed(what: string): S3Error {
  return new S3Error("InvalidRequest", `Malformed aws-chunked body: ${what}`);
}

function incomplete(): S3Error {
  return new S3Error("IncompleteBody", "The request body terminated unexpectedly");
}

function lengthMismatch(): S3Error {
  return new S3Error("IncompleteBody", "The decoded body length does not match x-amz-decoded-content-length");
}

function badChunkSignature(): S3Error {
  return new S3Error(
    "SignatureDoesNotMatch",
    "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
  );
}

type State = "size" | "data" | "data-crlf" | "end-line" | "trailer" | "done";

const latin1 = new TextDecoder("latin1");

class Decoder {
  private state: State = "size";
  private readonly line = new Uint8Array(MAX_LINE);
  private lineLen = 0;
  private remaining = 0;
  private crlfSeen = 0;
  private chunk: Uint8Array<ArrayBuffer> | null = null;
  private chunkFill = 0;
  private chunkSignature: string | null = null;
  private previousSignature: string;
  private total = 0;
  private trailerBytes = 0;
  private readonly trailerLines: [string, string][] = [];
  private trailerSignature: string | null = null;
  private readonly checksums = new Map<string, Checksummer>();
  /** Signatures to check: a signed mode, and something to check them against. */
  private readonly signing: ChunkSigning | null;
  private readonly hasTrailer: boolean;
  private readonly declared: Set<string>;
  /** Count of enqueued pieces, so the pull loop knows when it produced something. */
  emitted = 0;
  private readonly ctx: AwsChunkedContext;
  private readonly emit: (b: Uint8Array) => void;

  constructor(ctx: AwsChunkedContext, emit: (b: Uint8Array) => void) {
    this.ctx = ctx;
    this.emit = emit;
    this.signing = ctx.mode === STREAMING_UNSIGNED_TRAILER ? null : ctx.signing;
    this.hasTrailer = ctx.mode !== STREAMING_SIGNED;
    this.previousSignature = this.signing?.seedSignature ?? "";
    // Tolerate the raw x-amz-trailer value ("a, b") being passed as a single name.
    this.declared = new Set(
      ctx.trailerNames.flatMap((t) => t.split(",")).map((t) => t.trim().toLowerCase()).filter((t) => t !== ""),
    );
    for (const n of this.declared) {
      if (!n.startsWith("x-amz-checksum-")) continue;
      const a = algorithmOfHeader(n);
      if (!a) throw new S3Error("InvalidRequest", `Unsupported checksum algorithm in x-amz-trailer: ${n}`);
      this.checksums.set(n, newChecksummer(a, ctx.digests));
    }
  }

  async feed(input: Uint8Array): Promise<void> {
    let i = 0;
    const n = input.length;
    while (i < n) {
      switch (this.state) {
        case "size":
        case "end-line":
        case "trailer": {
          const lf = input.indexOf(LF, i);
          const end = lf < 0 ? n : lf;
          this.appendLine(input, i, end);
          i = end;
          if (lf < 0) break;
          i++;
          const text = this.takeLine();
          if (this.state === "size") await this.onSizeLine(text);
          else if (this.state === "end-line") {
            if (text !== "") throw malformed("unexpected data after the final chunk");
            this.state = "done";
          } else await this.onTrailerLine(text);
          break;
        }
        case "data": {
          const take = Math.min(this.remaining, n - i);
          const piece = input.subarray(i, i + take);
          i += take;
          this.remaining -= take;
          if (this.signing) {
            this.chunk!.set(piece, this.chunkFill);
            this.chunkFill += take;
            if (this.remaining === 0) {
              const data = this.chunk!;
              this.chunk = null;
              await this.verifyChunk(this.signing, data);
              await this.output(data);
            }
          } else {
            await this.output(piece);
          }
          if (this.remaining === 0) {
            this.state = "data-crlf";
            this.crlfSeen = 0;
          }
          break;
        }
        case "data-crlf": {
          const want = this.crlfSeen === 0 ? CR : LF;
          if (input[i] !== want) throw malformed("chunk data is not followed by CRLF (chunk size does not match its data)");
          i++;
          if (++this.crlfSeen === 2) this.state = "size";
          break;
        }
        case "done": {
          // Tolerate stray line endings some clients leave after the terminator, nothing else.
          for (; i < n; i++) {
            if (input[i] !== CR && input[i] !== LF) throw malformed("unexpected data after the final chunk");
          }
          break;
        }
      }
    }
  }

  /** Called at end of input; throws if the body was not complete and valid. */
  async finish(): Promise<Record<string, string>> {
    if (this.state === "trailer" || this.state === "end-line") {
      // The closing empty line may be missing; a final trailer line without its CRLF is still whole.
      if (this.lineLen > 0) {
        const text = this.takeLine();
        if (this.state === "trailer") await this.onTrailerLine(text);
        else throw malformed("unexpected data after the final chunk");
      }
      if (this.state === "trailer") await this.endTrailers();
      this.state = "done";
    }
    if (this.state !== "done") throw incomplete();
    if (this.ctx.decodedLength !== null && this.total !== this.ctx.decodedLength) throw lengthMismatch();

    const trailers: Record<string, string> = {};
    for (const [k, v] of this.trailerLines) trailers[k] = v;
    for (const [name, c] of this.checksums) {
      const sent = trailers[name];
      if (sent === undefined) {
        throw new S3Error("InvalidRequest", `The trailing header ${name} declared in x-amz-trailer was not sent`);
      }
      const actual = await c.result();
      if (sent !== actual) throw badDigest(algorithmOfHeader(name)!);
    }
    return trailers;
  }

  private appendLine(input: Uint8Array, from: number, to: number): void {
    const len = to - from;
    if (this.lineLen + len > MAX_LINE) throw malformed("chunk header or trailer line too long");
    this.line.set(input.subarray(from, to), this.lineLen);
    this.lineLen += len;
  }

  private takeLine(): string {
    let len = this.lineLen;
    if (len > 0 && this.line[len - 1] === CR) len--;
    this.lineLen = 0;
    return latin1.decode(this.line.subarray(0, len));
  }

  private async onSizeLine(text: string): Promise<void> {
    const semi = text.indexOf(";");
    const sizeText = (semi < 0 ? text : text.slice(0, semi)).trim();
    if (!/^[0-9a-fA-F]{1,16}$/.test(sizeText)) throw malformed(`invalid chunk size line "${text.slice(0, 100)}"`);
    const size = parseInt(sizeText, 16);
    if (size > MAX_CHUNK_SIZE) throw malformed(`chunk of ${size} bytes exceeds the ${MAX_CHUNK_SIZE}-byte limit`);
    let signature: string | null = null;
    if (semi >= 0) {
      for (const ext of text.slice(semi + 1).split(";")) {
        const eq = ext.indexOf("=");
        if (eq >= 0 && ext.slice(0, eq).trim() === "chunk-signature") signature = ext.slice(eq + 1).trim();
      }
    }
    if (this.signing && signature === null) throw badChunkSignature();
    this.chunkSignature = signature;
    if (this.ctx.decodedLength !== null && this.total + size > this.ctx.decodedLength) throw lengthMismatch();

    if (size > 0) {
      this.state = "data";
      this.remaining = size;
      if (this.signing) {
        this.chunk = new Uint8Array(size);
        this.chunkFill = 0;
      }
      return;
    }
    if (this.signing) await this.verifyChunk(this.signing, new Uint8Array(0));
    this.state = this.hasTrailer ? "trailer" : "end-line";
  }

  private async onTrailerLine(text: string): Promise<void> {
    if (text === "") {
      await this.endTrailers();
      this.state = "done";
      return;
    }
    this.trailerBytes += text.length;
    if (this.trailerBytes > MAX_TRAILER_BYTES) throw malformed("trailing headers too large");
    const colon = text.indexOf(":");
    if (colon <= 0) throw malformed(`invalid trailing header line "${text.slice(0, 100)}"`);
    const name = text.slice(0, colon).trim().toLowerCase();
    const value = text.slice(colon + 1).trim();
    if (this.trailerSignature !== null) throw malformed("trailing header after x-amz-trailer-signature");
    if (name === "x-amz-trailer-signature") {
      this.trailerSignature = value;
      return;
    }
    if (!this.declared.has(name)) {
      throw new S3Error("InvalidRequest", `The trailing header ${name} was not declared in x-amz-trailer`);
    }
    this.trailerLines.push([name, value]);
  }

  private async endTrailers(): Promise<void> {
    if (!this.signing) return;
    if (this.trailerSignature === null) throw badChunkSignature();
    let canonical = "";
    for (const [k, v] of this.trailerLines) canonical += `${k}:${v}\n`;
    const { amzDate, scope, signingKey } = this.signing;
    const sts = `AWS4-HMAC-SHA256-TRAILER\n${amzDate}\n${scope}\n${this.previousSignature}\n${hex(
      await crypto.subtle.digest("SHA-256", utf8(canonical)),
    )}`;
    const expected = await signHex(signingKey, sts);
    if (!constantTimeEqual(expected, this.trailerSignature)) throw badChunkSignature();
  }

  private async verifyChunk({ amzDate, scope, signingKey }: ChunkSigning, data: Uint8Array<ArrayBuffer>): Promise<void> {
    const dataHash = data.length === 0 ? EMPTY_SHA256 : hex(await crypto.subtle.digest("SHA-256", data));
    const sts = `AWS4-HMAC-SHA256-PAYLOAD\n${amzDate}\n${scope}\n${this.previousSignature}\n${EMPTY_SHA256}\n${dataHash}`;
    const expected = await signHex(signingKey, sts);
    if (this.chunkSignature === null || !constantTimeEqual(expected, this.chunkSignature)) throw badChunkSignature();
    this.previousSignature = expected;
  }

  private async output(data: Uint8Array): Promise<void> {
    if (data.length === 0) return;
    this.total += data.length;
    // Hash before handing the bytes on: the consumer may transfer (detach) the buffer.
    for (const c of this.checksums.values()) await c.update(data);
    this.emit(data);
    this.emitted++;
  }
}

/**
 * Decodes an aws-chunked body. Throws S3Error synchronously only for an unusable context (e.g.
 * an unsupported checksum named in x-amz-trailer); everything about the body itself surfaces as
 * an S3Error on the stream (and a rejection of `trailers`): SignatureDoesNotMatch (chunk or
 * trailer signature), IncompleteBody (truncated, or length differs from decodedLength),
 * InvalidRequest (bad framing), BadDigest (trailing checksum mismatch).
 */
export function decodeAwsChunked(body: ReadableStream<Uint8Array>, ctx: AwsChunkedContext): AwsChunkedResult {
  let controllerRef: ReadableStreamDefaultController<Uint8Array> | null = null;
  const decoder = new Decoder(ctx, (b) => controllerRef!.enqueue(b));
  let resolveTrailers!: (t: Record<string, string>) => void;
  let rejectTrailers!: (e: unknown) => void;
  const trailers = new Promise<Record<string, string>>((res, rej) => {
    resolveTrailers = res;
    rejectTrailers = rej;
  });
  // The caller may never look at trailers; a failure is reported through the stream anyway.
  trailers.catch(() => {});
  const reader = body.getReader();

  const stream = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        controllerRef = controller;
      },
      async pull(controller) {
        try {
          const before = decoder.emitted;
          while (decoder.emitted === before) {
            let r: ReadableStreamReadResult<Uint8Array>;
            try {
              r = await reader.read();
            } catch {
              throw incomplete();
            }
            if (r.done) {
              const t = await decoder.finish();
              controller.close();
              resolveTrailers(t);
              return;
            }
            await decoder.feed(r.value);
          }
        } catch (e) {
          controller.error(e);
          rejectTrailers(e);
          // The stream has failed with `e` already; a source that cannot be cancelled cleanly adds nothing.
          reader.cancel(e).catch(() => {});
        }
      },
      cancel(reason) {
        rejectTrailers(reason);
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, trailers };
}
