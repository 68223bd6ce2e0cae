import { describe, expect, it } from "vitest";
import { crc32, crc32c, crc64nvme, bytesToBase64, u32ToBase64, u64ToBase64 } from "../../common/checksums.ts";
import { EMPTY_SHA256, sha256Hex, signHex } from "../../common/s3/sigv4.ts";
import { signRequest } from "../../common/s3/sign-request.ts";
import { decodeAwsChunked, type AwsChunkedContext } from "../../common/s3/aws-chunked.ts";
import type { StreamingMode } from "../../common/s3/sigv4.ts";
import { digestStreams } from "../../workers/gateway/data/digest-stream.ts";
import { verifyRequest } from "../../workers/gateway/auth/sigv4.ts";
import type { AuthContext } from "../../common/s3/verify-request.ts";
import { S3Error } from "../../common/s3/errors.ts";

const AK = "AKIAIOSFODNN7EXAMPLE";
const SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const DOC_TIME = new Date("2013-05-24T00:00:00Z");
const enc = new TextEncoder();

// ---- helpers ---------------------------------------------------------------------------------

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** The bytes as a stream of `piece`-sized reads, each in its own buffer. */
function streamOf(bytes: Uint8Array, piece: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      if (at >= bytes.length) return c.close();
      c.enqueue(bytes.slice(at, at + piece));
      at += piece;
    },
  });
}

async function readAll(s: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const r = s.getReader();
  for (;;) {
    const { value, done } = await r.read();
    if (done) return concat(parts);
    parts.push(value);
  }
}

/** Reads until the stream fails; returns the bytes delivered before the failure and the error. */
async function readUntilError(s: ReadableStream<Uint8Array>): Promise<{ got: number; error: S3Error }> {
  const r = s.getReader();
  let got = 0;
  for (;;) {
    try {
      const { value, done } = await r.read();
      if (done) throw new Error(`stream closed cleanly after ${got} bytes; expected an error`);
      got += value.length;
    } catch (e) {
      if (!(e instanceof S3Error)) throw e;
      return { got, error: e };
    }
  }
}

async function codeOf(s: ReadableStream<Uint8Array>): Promise<string> {
  return (await readUntilError(s)).error.code;
}

/** The AWS documentation's streaming PUT, authenticated: its seed is 4f232c43... */
async function docAuth(): Promise<AuthContext> {
  const req = new Request("https://s3.amazonaws.com/examplebucket/chunkObject.txt", {
    method: "PUT",
    headers: {
      "x-amz-date": "20130524T000000Z",
      "x-amz-storage-class": "REDUCED_REDUNDANCY",
      "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
      "Content-Encoding": "aws-chunked",
      "x-amz-decoded-content-length": "66560",
      "Content-Length": "66824",
      Authorization:
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
    },
  });
  const ctx = await verifyRequest(req, new URL(req.url), {
    region: "us-east-1",
    lookupSecret: (ak) => (ak === AK ? SK : null),
    now: DOC_TIME,
  });
  expect(ctx.seedSignature).toBe("4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9");
  return ctx;
}

const DOC_SIGS = [
  "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
  "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
  "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
];

/** The documented body: 65536 + 1024 bytes of 'a' and the final chunk, 66824 bytes framed. */
function docBody(): Uint8Array {
  return concat([
    enc.encode(`10000;chunk-signature=${DOC_SIGS[0]}\r\n`),
    new Uint8Array(65536).fill(0x61),
    enc.encode(`\r\n400;chunk-signature=${DOC_SIGS[1]}\r\n`),
    new Uint8Array(1024).fill(0x61),
    enc.encode(`\r\n0;chunk-signature=${DOC_SIGS[2]}\r\n\r\n`),
  ]);
}

function docCtx(auth: AuthContext, decodedLength: number | null = 66560): AwsChunkedContext {
  return { mode: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", decodedLength, signing: auth, digests: digestStreams, trailerNames: [] };
}

async function chunkSignature(auth: AuthContext, previous: string, data: Uint8Array): Promise<string> {
  const sts = `AWS4-HMAC-SHA256-PAYLOAD\n${auth.amzDate}\n${auth.scope}\n${previous}\n${EMPTY_SHA256}\n${await sha256Hex(data)}`;
  return signHex(auth.signingKey, sts);
}

interface Trailer {
  name: string;
  value: string;
}

/** Frames `data` in `chunkSize` chunks the way an SDK would for the given mode. */
async function encodeBody(
  mode: StreamingMode,
  auth: AuthContext | null,
  data: Uint8Array,
  chunkSize: number,
  trailers: Trailer[] = [],
  opts: { badTrailerSignature?: boolean } = {},
): Promise<Uint8Array> {
  const signed = mode !== "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
  const parts: Uint8Array[] = [];
  let prev = auth?.seedSignature ?? "";
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < data.length; i += chunkSize) chunks.push(data.slice(i, i + chunkSize));
  chunks.push(new Uint8Array(0));
  for (const c of chunks) {
    let ext = "";
    if (signed) {
      prev = await chunkSignature(auth!, prev, c);
      ext = `;chunk-signature=${prev}`;
    }
    parts.push(enc.encode(`${c.length.toString(16)}${ext}\r\n`));
    if (c.length > 0) parts.push(c, enc.encode("\r\n"));
  }
  if (mode === "STREAMING-AWS4-HMAC-SHA256-PAYLOAD") {
    parts.push(enc.encode("\r\n"));
    return concat(parts);
  }
  let canonical = "";
  for (const t of trailers) {
    parts.push(enc.encode(`${t.name}:${t.value}\r\n`));
    canonical += `${t.name}:${t.value}\n`;
  }
  if (signed) {
    const sts = `AWS4-HMAC-SHA256-TRAILER\n${auth!.amzDate}\n${auth!.scope}\n${prev}\n${await sha256Hex(canonical)}`;
    let sig = await signHex(auth!.signingKey, sts);
    if (opts.badTrailerSignature) sig = sig.replace(/^./, (c) => (c === "0" ? "1" : "0"));
    parts.push(enc.encode(`x-amz-trailer-signature:${sig}\r\n`));
  }
  parts.push(enc.encode("\r\n"));
  return concat(parts);
}

/** A real seed for a streaming request signed now, via the shared client signer. */
async function streamingAuth(mode: StreamingMode): Promise<AuthContext> {
  const now = new Date("2025-03-01T10:00:00Z");
  const url = "http://s3.example.test/bucket/key";
  const headers = { "content-encoding": "aws-chunked", "x-amz-trailer": "x-amz-checksum-crc32" };
  const h = await signRequest({ method: "PUT", url, headers, payloadHash: mode, accessKey: AK, secretKey: SK, region: "us-east-1", date: now });
  const req = new Request(url, { method: "PUT", headers: { ...headers, ...h } });
  return verifyRequest(req, new URL(url), { region: "us-east-1", lookupSecret: () => SK, now });
}

function pseudoRandom(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

// ---- checksums -------------------------------------------------------------------------------

describe("CRC checksums", () => {
  const check = enc.encode("123456789");

  it("match the standard check values", () => {
    expect(crc32(check)).toBe(0xcbf43926);
    expect(crc32c(check)).toBe(0xe3069283);
    expect(crc64nvme(check)).toBe(0xae8b14860a799888n);
    expect(crc32(new Uint8Array(0))).toBe(0);
    expect(u32ToBase64(crc32(enc.encode("hello")))).toBe("NhCmhg==");
  });

  it("are incremental at any split, including through the 8-byte fast path", () => {
    const data = pseudoRandom(1000 + 7);
    const whole32 = crc32(data);
    const whole32c = crc32c(data);
    const whole64 = crc64nvme(data);
    for (const cut of [0, 1, 3, 8, 13, 500, 1006, 1007]) {
      expect(crc32(data.subarray(cut), crc32(data.subarray(0, cut)))).toBe(whole32);
      expect(crc32c(data.subarray(cut), crc32c(data.subarray(0, cut)))).toBe(whole32c);
      expect(crc64nvme(data.subarray(cut), crc64nvme(data.subarray(0, cut)))).toBe(whole64);
    }
  });

  it("agree with a bit-at-a-time reference", () => {
    const ref = (poly: number, d: Uint8Array) => {
      let c = 0xffffffff;
      for (const b of d) {
        c ^= b;
        for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1;
      }
      return ~c >>> 0;
    };
    for (const n of [1, 7, 8, 9, 64, 333]) {
      const d = pseudoRandom(n, n);
      expect(crc32(d)).toBe(ref(0xedb88320, d));
      expect(crc32c(d)).toBe(ref(0x82f63b78, d));
    }
  });
});

// ---- signed streaming: the AWS documentation example ------------------------------------------

describe("aws-chunked, STREAMING-AWS4-HMAC-SHA256-PAYLOAD", () => {
  it("the documented chunk signatures chain from the documented seed", async () => {
    const auth = await docAuth();
    const first = await chunkSignature(auth, auth.seedSignature, new Uint8Array(65536).fill(0x61));
    expect(first).toBe(DOC_SIGS[0]);
    const second = await chunkSignature(auth, first, new Uint8Array(1024).fill(0x61));
    expect(second).toBe(DOC_SIGS[1]);
    expect(await chunkSignature(auth, second, new Uint8Array(0))).toBe(DOC_SIGS[2]);
  });

  it("decodes the documented body whatever the input slicing, down to 1-byte reads", async () => {
    const auth = await docAuth();
    const body = docBody();
    expect(body.length).toBe(66824);
    for (const piece of [1, 2, 7, 85, 8192, 65536 + 88, body.length]) {
      const { stream, trailers } = decodeAwsChunked(streamOf(body, piece), docCtx(auth));
      const out = await readAll(stream);
      expect(out.length).toBe(66560);
      expect(out.every((b) => b === 0x61)).toBe(true);
      expect(await trailers).toEqual({});
    }
  });

  it("emits each chunk once verified, before the rest of the body has arrived", async () => {
    const auth = await docAuth();
    const body = docBody();
    let feed!: ReadableStreamDefaultController<Uint8Array>;
    const input = new ReadableStream<Uint8Array>({ start: (c) => void (feed = c) });
    const { stream } = decodeAwsChunked(input, docCtx(auth));
    const reader = stream.getReader();
    const firstChunkEnd = 88 + 65536 + 2;
    feed.enqueue(body.slice(0, firstChunkEnd + 10));
    const first = await reader.read();
    expect(first.value?.length).toBe(65536);
    feed.enqueue(body.slice(firstChunkEnd + 10));
    feed.close();
    const second = await reader.read();
    expect(second.value?.length).toBe(1024);
    expect((await reader.read()).done).toBe(true);
  });

  it("refuses a changed data byte, and emits nothing of the chunk that carries it", async () => {
    const auth = await docAuth();
    const body = docBody();
    body[88 + 65536 + 2 + 87 + 100] = 0x62; // inside the second chunk
    const { got, error } = await readUntilError(decodeAwsChunked(streamOf(body, 4096), docCtx(auth)).stream);
    expect(error.code).toBe("SignatureDoesNotMatch");
    expect(got).toBe(65536);

    const first = docBody();
    first[100] = 0x62;
    const r = await readUntilError(decodeAwsChunked(streamOf(first, 1), docCtx(auth)).stream);
    expect(r.error.code).toBe("SignatureDoesNotMatch");
    expect(r.got).toBe(0);
  });

  it("refuses a wrong, missing or reordered chunk signature", async () => {
    const auth = await docAuth();
    const text = new TextDecoder("latin1");
    const swap = (from: string, to: string) => {
      const s = text.decode(docBody()).replace(from, to);
      return Uint8Array.from(s, (c) => c.charCodeAt(0));
    };
    const bad = [
      swap(DOC_SIGS[0]!, "0".repeat(64)),
      swap(`;chunk-signature=${DOC_SIGS[0]}`, ""),
      swap(DOC_SIGS[2]!, DOC_SIGS[1]!),
      swap(DOC_SIGS[2]!, DOC_SIGS[2]!.toUpperCase()),
    ];
    for (const body of bad) {
      const { trailers, stream } = decodeAwsChunked(streamOf(body, 1000), docCtx(auth));
      expect(await codeOf(stream)).toBe("SignatureDoesNotMatch");
      await expect(trailers).rejects.toBeInstanceOf(S3Error);
    }
  });

  it("refuses a decoded length other than x-amz-decoded-content-length (IncompleteBody)", async () => {
    const auth = await docAuth();
    for (const declared of [66559, 66561, 0]) {
      expect(await codeOf(decodeAwsChunked(streamOf(docBody(), 5000), docCtx(auth, declared)).stream)).toBe("IncompleteBody");
    }
    // Without a declared length the body stands on its own.
    expect((await readAll(decodeAwsChunked(streamOf(docBody(), 5000), docCtx(auth, null)).stream)).length).toBe(66560);
  });

  it("refuses a truncated body (IncompleteBody) and malformed framing (InvalidRequest)", async () => {
    const auth = await docAuth();
    const body = docBody();
    for (const cut of [1, 40, 88, 1000, 65536 + 88, 65536 + 89, body.length - 70]) {
      expect(await codeOf(decodeAwsChunked(streamOf(body.slice(0, cut), 333), docCtx(auth, null)).stream)).toBe("IncompleteBody");
    }
    const framing = [
      "zz;chunk-signature=00\r\n",
      "-1\r\n",
      `1000001;chunk-signature=${DOC_SIGS[0]}\r\n`,
      "1".repeat(5000),
    ];
    for (const f of framing) {
      expect(await codeOf(decodeAwsChunked(streamOf(enc.encode(f), 7), docCtx(auth, null)).stream)).toBe("InvalidRequest");
    }
    // The chunk size line says 0x10000 but one byte more follows before the CRLF.
    const long = concat([body.slice(0, 88 + 65536), enc.encode("a"), body.slice(88 + 65536)]);
    expect(await codeOf(decodeAwsChunked(streamOf(long, 4096), docCtx(auth, null)).stream)).toBe("InvalidRequest");
    // Junk after the terminating chunk.
    const junk = concat([body, enc.encode("extra")]);
    expect(await codeOf(decodeAwsChunked(streamOf(junk, 4096), docCtx(auth, null)).stream)).toBe("InvalidRequest");
  });

  it("accepts a body whose final empty line is missing", async () => {
    const auth = await docAuth();
    const body = docBody().slice(0, -2);
    expect((await readAll(decodeAwsChunked(streamOf(body, 4096), docCtx(auth)).stream)).length).toBe(66560);
  });
});

// ---- trailers and checksums ------------------------------------------------------------------

async function expectedChecksum(name: string, data: Uint8Array): Promise<string> {
  switch (name) {
    case "x-amz-checksum-crc32":
      return u32ToBase64(crc32(data));
    case "x-amz-checksum-crc32c":
      return u32ToBase64(crc32c(data));
    case "x-amz-checksum-crc64nvme":
      return u64ToBase64(crc64nvme(data));
    case "x-amz-checksum-sha1":
      return bytesToBase64(new Uint8Array(await crypto.subtle.digest("SHA-1", data)));
    default:
      return bytesToBase64(new Uint8Array(await crypto.subtle.digest("SHA-256", data)));
  }
}

const CHECKSUMS = [
  "x-amz-checksum-crc32",
  "x-amz-checksum-crc32c",
  "x-amz-checksum-crc64nvme",
  "x-amz-checksum-sha1",
  "x-amz-checksum-sha256",
];

describe("aws-chunked, STREAMING-UNSIGNED-PAYLOAD-TRAILER", () => {
  const mode = "STREAMING-UNSIGNED-PAYLOAD-TRAILER" as const;
  const data = pseudoRandom(3000);

  it("decodes and verifies each trailing checksum algorithm, at 1-byte reads", async () => {
    const auth = await streamingAuth(mode);
    for (const name of CHECKSUMS) {
      const value = await expectedChecksum(name, data);
      const body = await encodeBody(mode, null, data, 1024, [{ name, value }]);
      const ctx: AwsChunkedContext = { mode, decodedLength: data.length, signing: auth, digests: digestStreams, trailerNames: [name] };
      for (const piece of [1, 13, body.length]) {
        const { stream, trailers } = decodeAwsChunked(streamOf(body, piece), ctx);
        expect(await readAll(stream)).toEqual(data);
        expect(await trailers).toEqual({ [name]: value });
      }
    }
  });

  it("errors the stream with BadDigest, instead of closing it, on a checksum mismatch", async () => {
    const auth = await streamingAuth(mode);
    for (const name of CHECKSUMS) {
      const other = await expectedChecksum(name, enc.encode("something else"));
      const body = await encodeBody(mode, null, data, 1024, [{ name, value: other }]);
      const { stream, trailers } = decodeAwsChunked(streamOf(body, 100), { mode, decodedLength: data.length, signing: auth, digests: digestStreams, trailerNames: [name] });
      const { got, error } = await readUntilError(stream);
      expect(error.code).toBe("BadDigest");
      expect(error.status).toBe(400);
      // The bytes went through (unsigned mode streams them); the failure replaces the close.
      expect(got).toBe(data.length);
      await expect(trailers).rejects.toMatchObject({ code: "BadDigest" });
    }
  });

  it("passes bytes on as they arrive, without waiting for a whole chunk", async () => {
    const auth = await streamingAuth(mode);
    const body = await encodeBody(mode, null, data, 3000, [{ name: "x-amz-checksum-crc32", value: u32ToBase64(crc32(data)) }]);
    let feed!: ReadableStreamDefaultController<Uint8Array>;
    const input = new ReadableStream<Uint8Array>({ start: (c) => void (feed = c) });
    const reader = decodeAwsChunked(input, { mode, decodedLength: null, signing: auth, digests: digestStreams, trailerNames: ["x-amz-checksum-crc32"] }).stream.getReader();
    feed.enqueue(body.slice(0, 5 + 100)); // "bb8\r\n" + 100 data bytes
    const first = await reader.read();
    expect(first.value).toEqual(data.slice(0, 100));
    feed.enqueue(body.slice(105));
    feed.close();
    let n = 100;
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      n += r.value.length;
    }
    expect(n).toBe(data.length);
  });

  it("accepts the trailer line ending some SDKs send (LF, then CRLF)", async () => {
    const hello = enc.encode("hello");
    const body = enc.encode("5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\n\r\n");
    const auth = await streamingAuth(mode);
    const { stream, trailers } = decodeAwsChunked(streamOf(body, 3), { mode, decodedLength: 5, signing: auth, digests: digestStreams, trailerNames: ["x-amz-checksum-crc32"] });
    expect(await readAll(stream)).toEqual(hello);
    expect(await trailers).toEqual({ "x-amz-checksum-crc32": "NhCmhg==" });
  });

  it("refuses undeclared or missing trailers and unsupported checksum names", async () => {
    const auth = await streamingAuth(mode);
    const undeclared = enc.encode("5\r\nhello\r\n0\r\nx-amz-checksum-crc32c:AAAAAA==\r\n\r\n");
    expect(
      await codeOf(decodeAwsChunked(streamOf(undeclared, 64), { mode, decodedLength: 5, signing: auth, digests: digestStreams, trailerNames: ["x-amz-checksum-crc32"] }).stream),
    ).toBe("InvalidRequest");
    const missing = enc.encode("5\r\nhello\r\n0\r\n\r\n");
    expect(
      await codeOf(decodeAwsChunked(streamOf(missing, 64), { mode, decodedLength: 5, signing: auth, digests: digestStreams, trailerNames: ["x-amz-checksum-crc32"] }).stream),
    ).toBe("InvalidRequest");
    expect(() =>
      decodeAwsChunked(streamOf(missing, 64), { mode, decodedLength: 5, signing: auth, digests: digestStreams, trailerNames: ["x-amz-checksum-md5"] }),
    ).toThrow(S3Error);
  });

  it("refuses a decoded-length mismatch", async () => {
    const auth = await streamingAuth(mode);
    const body = await encodeBody(mode, null, data, 1000, [{ name: "x-amz-checksum-crc32", value: u32ToBase64(crc32(data)) }]);
    const ctx: AwsChunkedContext = { mode, decodedLength: data.length + 1, signing: auth, digests: digestStreams, trailerNames: ["x-amz-checksum-crc32"] };
    expect(await codeOf(decodeAwsChunked(streamOf(body, 1), ctx).stream)).toBe("IncompleteBody");
  });
});

describe("aws-chunked, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", () => {
  const mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" as const;
  const data = pseudoRandom(70000, 7);
  const name = "x-amz-checksum-crc32c";

  it("verifies chunk signatures, the trailer signature and the checksum, at 1-byte reads", async () => {
    const auth = await streamingAuth(mode);
    const value = u32ToBase64(crc32c(data));
    const body = await encodeBody(mode, auth, data, 65536, [{ name, value }]);
    const ctx: AwsChunkedContext = { mode, decodedLength: data.length, signing: auth, digests: digestStreams, trailerNames: [name] };
    for (const piece of [1, 4099, body.length]) {
      const { stream, trailers } = decodeAwsChunked(streamOf(body, piece), ctx);
      expect(await readAll(stream)).toEqual(data);
      expect(await trailers).toEqual({ [name]: value });
    }
  });

  it("refuses a bad trailer signature, a forged checksum, and a wrong checksum", async () => {
    const auth = await streamingAuth(mode);
    const ctx: AwsChunkedContext = { mode, decodedLength: data.length, signing: auth, digests: digestStreams, trailerNames: [name] };
    const good = u32ToBase64(crc32c(data));
    const badSig = await encodeBody(mode, auth, data, 65536, [{ name, value: good }], { badTrailerSignature: true });
    expect(await codeOf(decodeAwsChunked(streamOf(badSig, 1000), ctx).stream)).toBe("SignatureDoesNotMatch");

    // Replace the checksum value after signing: the trailer signature no longer covers it.
    const signedGood = new TextDecoder("latin1").decode(await encodeBody(mode, auth, data, 65536, [{ name, value: good }]));
    const forgedValue = u32ToBase64(crc32c(data) ^ 1);
    const forged = Uint8Array.from(signedGood.replace(good, forgedValue), (c) => c.charCodeAt(0));
    expect(await codeOf(decodeAwsChunked(streamOf(forged, 1000), ctx).stream)).toBe("SignatureDoesNotMatch");

    // Properly signed, but the checksum does not match the data.
    const wrong = await encodeBody(mode, auth, data, 65536, [{ name, value: forgedValue }]);
    expect(await codeOf(decodeAwsChunked(streamOf(wrong, 1000), ctx).stream)).toBe("BadDigest");
  });

  it("refuses a body without the trailer signature", async () => {
    const auth = await streamingAuth(mode);
    const unsignedTrailer = new TextDecoder("latin1")
      .decode(await encodeBody(mode, auth, data, 65536, [{ name, value: u32ToBase64(crc32c(data)) }]))
      .replace(/x-amz-trailer-signature:[0-9a-f]+\r\n/, "");
    const body = Uint8Array.from(unsignedTrailer, (c) => c.charCodeAt(0));
    const ctx: AwsChunkedContext = { mode, decodedLength: data.length, signing: auth, digests: digestStreams, trailerNames: [name] };
    expect(await codeOf(decodeAwsChunked(streamOf(body, 1000), ctx).stream)).toBe("SignatureDoesNotMatch");
  });
});
