import { describe, expect, it } from "vitest";
import { SignatureV4 } from "@smithy/signature-v4";
import { escapeUriPath } from "@smithy/core/protocols";
import { EMPTY_SHA256, canonicalRequest, credentialScope, deriveSigningKey, sha256Hex, signHex, stringToSign } from "../../common/s3/sigv4.ts";
import { canonicalQueryString, canonicalUri, parseQuery, uriEncode } from "../../common/s3/uri.ts";
import { presignUrl, signRequest } from "../../common/s3/sign-request.ts";
import { verifyRequest } from "../../workers/gateway/auth/sigv4.ts";
import type { AuthContext, VerifyOptions } from "../../common/s3/verify-request.ts";
import { S3Error } from "../../common/s3/errors.ts";

// The credentials, time and bucket of the AWS S3 SigV4 documentation examples.
const AK = "AKIAIOSFODNN7EXAMPLE";
const SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const DOC_TIME = new Date("2013-05-24T00:00:00Z");
const DOC_HOST = "examplebucket.s3.amazonaws.com";

function opts(now: Date = DOC_TIME, region = "us-east-1"): VerifyOptions {
  return { region, lookupSecret: (ak) => (ak === AK ? SK : null), now };
}

async function rejection(p: Promise<unknown>): Promise<S3Error> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(S3Error);
    return e as S3Error;
  }
  throw new Error("expected the promise to reject");
}

describe("SigV4 primitives", () => {
  it("uriEncode keeps only unreserved characters and encodes UTF-8 bytes in uppercase hex", () => {
    expect(uriEncode("AZaz09-._~", true)).toBe("AZaz09-._~");
    expect(uriEncode("a b/c+d=e*f!'()$&,;:@", false)).toBe("a%20b/c%2Bd%3De%2Af%21%27%28%29%24%26%2C%3B%3A%40");
    expect(uriEncode("a/b", true)).toBe("a%2Fb");
    expect(uriEncode("é日😀", true)).toBe("%C3%A9%E6%97%A5%F0%9F%98%80");
    expect(uriEncode("%", true)).toBe("%25");
  });

  it("canonicalUri decodes then re-encodes each segment, without normalising the path", () => {
    expect(canonicalUri("/a%7Eb/c+d=e")).toBe("/a~b/c%2Bd%3De");
    expect(canonicalUri("/a~b/c%2Bd%3de")).toBe("/a~b/c%2Bd%3De");
    expect(canonicalUri("/test$file.text")).toBe("/test%24file.text");
    expect(canonicalUri("/b//x/./../y/")).toBe("/b//x/./../y/");
    expect(canonicalUri("/a%2Fb")).toBe("/a%2Fb");
    expect(canonicalUri("/100%/%zz")).toBe("/100%25/%25zz");
    expect(canonicalUri("/%C3%A9%20x")).toBe("/%C3%A9%20x");
    expect(canonicalUri("")).toBe("/");
  });

  it("canonicalQueryString encodes and sorts by name then value", () => {
    expect(canonicalQueryString(parseQuery("?prefix=J&max-keys=2"))).toBe("max-keys=2&prefix=J");
    expect(canonicalQueryString(parseQuery("lifecycle"))).toBe("lifecycle=");
    expect(canonicalQueryString(parseQuery("b=2&a=y&a=x&c=a+b&d=%7e%20"))).toBe("a=x&a=y&b=2&c=a%2Bb&d=~%20");
  });

  it("reproduces the documented GET Object signature step by step", async () => {
    const creq = canonicalRequest({
      method: "GET",
      uri: "/test.txt",
      query: "",
      headers: [
        ["Host", DOC_HOST],
        ["Range", "bytes=0-9"],
        ["x-amz-content-sha256", EMPTY_SHA256],
        ["x-amz-date", "20130524T000000Z"],
      ],
      payloadHash: EMPTY_SHA256,
    });
    expect(creq).toBe(
      [
        "GET",
        "/test.txt",
        "",
        `host:${DOC_HOST}`,
        "range:bytes=0-9",
        `x-amz-content-sha256:${EMPTY_SHA256}`,
        "x-amz-date:20130524T000000Z",
        "",
        "host;range;x-amz-content-sha256;x-amz-date",
        EMPTY_SHA256,
      ].join("\n"),
    );
    const sts = await stringToSign("20130524T000000Z", credentialScope("20130524", "us-east-1"), creq);
    expect(sts).toBe(
      "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
    );
    const key = await deriveSigningKey(SK, "20130524", "us-east-1", "s3");
    expect(await signHex(key, sts)).toBe("f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  });

  it("signRequest reproduces the documented GET Object Authorization header", async () => {
    const h = await signRequest({
      method: "GET",
      url: `https://${DOC_HOST}/test.txt`,
      headers: { Range: "bytes=0-9" },
      payloadHash: EMPTY_SHA256,
      accessKey: AK,
      secretKey: SK,
      region: "us-east-1",
      date: DOC_TIME,
    });
    expect(h.authorization).toBe(
      "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    );
    expect(h["x-amz-date"]).toBe("20130524T000000Z");
    expect(h["x-amz-content-sha256"]).toBe(EMPTY_SHA256);
  });

  it("presignUrl reproduces the documented presigned URL", async () => {
    const url = await presignUrl({
      method: "GET",
      url: `https://${DOC_HOST}/test.txt`,
      accessKey: AK,
      secretKey: SK,
      region: "us-east-1",
      date: DOC_TIME,
      expiresIn: 86400,
    });
    expect(url).toBe(
      `https://${DOC_HOST}/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404`,
    );
  });
});

describe("verifyRequest: AWS documentation vectors", () => {
  it("GET Object (header form)", async () => {
    const req = new Request(`https://${DOC_HOST}/test.txt`, {
      headers: {
        Host: DOC_HOST,
        Range: "bytes=0-9",
        "x-amz-content-sha256": EMPTY_SHA256,
        "x-amz-date": "20130524T000000Z",
        Authorization:
          "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
      },
    });
    const ctx = await verifyRequest(req, new URL(req.url), opts());
    expect(ctx.accessKey).toBe(AK);
    expect(ctx.payloadHash).toBe(EMPTY_SHA256);
    expect(ctx.scope).toBe("20130524/us-east-1/s3/aws4_request");
    expect(ctx.amzDate).toBe("20130524T000000Z");
    expect(ctx.seedSignature).toBe("f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    expect(ctx.presigned).toBe(false);
  });

  it("PUT Object: Date header, a raw `$` in the key, signed body hash", async () => {
    const bodyHash = await sha256Hex("Welcome to Amazon S3.");
    expect(bodyHash).toBe("44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    const req = new Request(`https://${DOC_HOST}/test$file.text`, {
      method: "PUT",
      body: "Welcome to Amazon S3.",
      headers: {
        Date: "Fri, 24 May 2013 00:00:00 GMT",
        "x-amz-date": "20130524T000000Z",
        "x-amz-storage-class": "REDUCED_REDUNDANCY",
        "x-amz-content-sha256": bodyHash,
        Authorization:
          "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
      },
    });
    const ctx = await verifyRequest(req, new URL(req.url), opts());
    expect(ctx.payloadHash).toBe(bodyHash);
  });

  it("GET Bucket lifecycle and list objects (query strings)", async () => {
    for (const [query, sig] of [
      ["lifecycle", "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"],
      ["max-keys=2&prefix=J", "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"],
    ] as const) {
      const req = new Request(`https://${DOC_HOST}/?${query}`, {
        headers: {
          "x-amz-content-sha256": EMPTY_SHA256,
          "x-amz-date": "20130524T000000Z",
          Authorization: `AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=${sig}`,
        },
      });
      await verifyRequest(req, new URL(req.url), opts());
    }
  });

  it("presigned GET Object, valid until it expires", async () => {
    const url = `https://${DOC_HOST}/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404`;
    const req = new Request(url);
    const later = new Date(DOC_TIME.getTime() + 86400 * 1000);
    const ctx = await verifyRequest(req, new URL(url), opts(later));
    expect(ctx.payloadHash).toBe("UNSIGNED-PAYLOAD");
    expect(ctx.presigned).toBe(true);

    const expired = await rejection(verifyRequest(req, new URL(url), opts(new Date(later.getTime() + 1000))));
    expect(expired.code).toBe("AccessDenied");
    expect(expired.message).toBe("Request has expired");

    const tampered = url.replace("test.txt?", "test.txt?versionId=1&");
    const e = await rejection(verifyRequest(new Request(tampered), new URL(tampered), opts()));
    expect(e.code).toBe("SignatureDoesNotMatch");
  });

  it("the streaming PUT seed signature", async () => {
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
    const ctx = await verifyRequest(req, new URL(req.url), opts());
    expect(ctx.payloadHash).toBe("STREAMING-AWS4-HMAC-SHA256-PAYLOAD");
    expect(ctx.seedSignature).toBe("4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9");
  });
});

// ---- Signatures made by the AWS SDK's own signer (@smithy/signature-v4) ----------------------

/** The Checksum interface @smithy/signature-v4 expects, over crypto.subtle. */
class WebSha256 {
  private readonly secret: Uint8Array | undefined;
  private readonly parts: Uint8Array[] = [];
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.secret = secret === undefined ? undefined : toBytes(secret);
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.parts.push(toBytes(data));
  }
  async digest(): Promise<Uint8Array> {
    const len = this.parts.reduce((n, p) => n + p.length, 0);
    const all = new Uint8Array(len);
    let o = 0;
    for (const p of this.parts) {
      all.set(p, o);
      o += p.length;
    }
    if (this.secret === undefined) return new Uint8Array(await crypto.subtle.digest("SHA-256", all));
    const key = await crypto.subtle.importKey("raw", this.secret, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    return new Uint8Array(await crypto.subtle.sign("HMAC", key, all));
  }
  reset(): void {
    this.parts.length = 0;
  }
}

function toBytes(d: string | ArrayBuffer | ArrayBufferView): Uint8Array<ArrayBuffer> {
  if (typeof d === "string") return new TextEncoder().encode(d) as Uint8Array<ArrayBuffer>;
  if (d instanceof ArrayBuffer) return new Uint8Array(d.slice(0));
  return new Uint8Array(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength) as ArrayBuffer);
}

const NOW = new Date("2025-01-01T12:00:00Z");
const ENDPOINT_HOST = "s3.example.test:8787";

// Signing like @aws-sdk/client-s3 does: keys escaped per segment by the serializer, no further
// escaping by the signer (uriEscapePath: false), every non-hop-by-hop header signed.
const sdkSigner = new SignatureV4({
  credentials: { accessKeyId: AK, secretAccessKey: SK },
  region: "us-east-1",
  service: "s3",
  sha256: WebSha256,
  uriEscapePath: false,
});

interface SdkRequest {
  method: string;
  protocol: string;
  hostname: string;
  port?: number;
  path: string;
  query: Record<string, string | string[]>;
  headers: Record<string, string>;
}

function sdkRequest(method: string, path: string, query: Record<string, string> = {}, headers: Record<string, string> = {}): SdkRequest {
  return {
    method,
    protocol: "http:",
    hostname: "s3.example.test",
    port: 8787,
    path,
    query,
    headers: { host: ENDPOINT_HOST, ...headers },
  };
}

function toFetchRequest(r: SdkRequest, rawPath = r.path): Request {
  const qs = Object.entries(r.query)
    .flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).map((x) => `${encodeURIComponent(k)}=${encodeURIComponent(x)}`))
    .join("&");
  const headers = new Headers();
  for (const [k, v] of Object.entries(r.headers)) headers.set(k, v);
  return new Request(`http://${ENDPOINT_HOST}${rawPath}${qs ? "?" + qs : ""}`, { method: r.method, headers });
}

async function verify(req: Request, now = NOW): Promise<AuthContext> {
  return verifyRequest(req, new URL(req.url), opts(now));
}

// No "." or ".." segments: the WHATWG URL parser (fetch, and workerd's Request) folds them away
// before any signer or verifier sees the path, so such keys cannot travel in a URL at all.
const AWKWARD_KEYS = [
  "with space/and  two  spaces.txt",
  "ünïcödé/日本語/😀.bin",
  "tilde~plus+equals=amp&q?hash#pct%.txt",
  "a//b///c/",
  "dots.../.hidden/x..",
  "sp ace+plus~tilde=eq//x/ü*()!'$,;:@",
];

describe("verifyRequest accepts the AWS SDK signer's signatures", () => {
  it("header form, for awkward keys, query values and header whitespace", async () => {
    for (const key of AWKWARD_KEYS) {
      const path = "/bucket/" + escapeUriPath(key);
      const body = "hello";
      const signed = (await sdkSigner.sign(
        sdkRequest(
          "PUT",
          path,
          { "x-id": "PutObject", tagging: "a=b c+d~e", empty: "" },
          {
            "content-type": "text/plain",
            "x-amz-content-sha256": await sha256Hex(body),
            "x-amz-meta-note": "  several   spaces\tand tab  ",
          },
        ),
        { signingDate: NOW },
      )) as SdkRequest;
      const ctx = await verify(toFetchRequest(signed));
      expect(ctx.payloadHash).toBe(await sha256Hex(body));
      expect(ctx.signedHeaders).toContain("x-amz-meta-note");
    }
  });

  it("when the client escaped the path differently from the canonical form", async () => {
    const signed = (await sdkSigner.sign(
      sdkRequest("GET", "/bucket/" + escapeUriPath("a~b+c=d é"), {}, { "x-amz-content-sha256": EMPTY_SHA256 }),
      { signingDate: NOW },
    )) as SdkRequest;
    // Same bytes on the wire spelled otherwise: ~ as %7E, + and = raw, lowercase hex.
    await verify(toFetchRequest(signed, "/bucket/a%7eb+c=d%20%c3%a9"));
    await verify(toFetchRequest(signed, "/bucket/a%7Eb%2Bc%3Dd%20%C3%A9"));
  });

  it("presigned form", async () => {
    for (const key of AWKWARD_KEYS) {
      // What @aws-sdk/s3-request-presigner does: pin UNSIGNED-PAYLOAD through a header that the
      // signer hoists into the query as X-Amz-Content-Sha256.
      const presigned = (await sdkSigner.presign(
        sdkRequest(
          "GET",
          "/bucket/" + escapeUriPath(key),
          { "response-content-type": "text/plain; charset=utf-8" },
          { "X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD" },
        ),
        { signingDate: NOW, expiresIn: 3600, unsignableHeaders: new Set(["content-type"]) },
      )) as SdkRequest;
      expect(presigned.query["X-Amz-Content-Sha256"]).toBe("UNSIGNED-PAYLOAD");
      const ctx = await verify(toFetchRequest(presigned), new Date(NOW.getTime() + 3599_000));
      expect(ctx.presigned).toBe(true);
      expect(ctx.payloadHash).toBe("UNSIGNED-PAYLOAD");
      const e = await rejection(verify(toFetchRequest(presigned), new Date(NOW.getTime() + 3601_000)));
      expect(e.code).toBe("AccessDenied");
      expect(e.message).toBe("Request has expired");
    }
  });

  it("the streaming (aws-chunked) seed, whose payload hash is a STREAMING-* value", async () => {
    const signed = (await sdkSigner.sign(
      sdkRequest("PUT", "/bucket/k", {}, {
        "content-encoding": "aws-chunked",
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "x-amz-decoded-content-length": "5",
        "x-amz-trailer": "x-amz-checksum-crc32",
      }),
      { signingDate: NOW },
    )) as SdkRequest;
    const ctx = await verify(toFetchRequest(signed));
    expect(ctx.payloadHash).toBe("STREAMING-UNSIGNED-PAYLOAD-TRAILER");
    expect(ctx.seedSignature).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe("verifyRequest refuses", () => {
  async function signedPut(): Promise<SdkRequest> {
    return (await sdkSigner.sign(
      sdkRequest("PUT", "/bucket/" + escapeUriPath("some key+x"), { partNumber: "1", uploadId: "abc" }, {
        "x-amz-content-sha256": await sha256Hex("body"),
        "x-amz-meta-a": "1",
      }),
      { signingDate: NOW },
    )) as SdkRequest;
  }

  it("a tampered header, query, path or body hash (SignatureDoesNotMatch)", async () => {
    const base = await signedPut();
    await verify(toFetchRequest(base));
    const variants: SdkRequest[] = [
      { ...base, headers: { ...base.headers, "x-amz-meta-a": "2" } },
      { ...base, query: { ...base.query, partNumber: "2" } },
      { ...base, query: { ...base.query, extra: "" } },
      { ...base, path: base.path + "x" },
      { ...base, method: "POST" },
      { ...base, headers: { ...base.headers, "x-amz-content-sha256": await sha256Hex("other") } },
      { ...base, headers: { ...base.headers, "x-amz-content-sha256": "UNSIGNED-PAYLOAD" } },
      { ...base, headers: { ...base.headers, authorization: base.headers.authorization!.replace(/Signature=./, "Signature=0") } },
    ];
    for (const v of variants) {
      const e = await rejection(verify(toFetchRequest(v)));
      expect(e.code).toBe("SignatureDoesNotMatch");
      expect(e.status).toBe(403);
      expect(e.details.StringToSign).toMatch(/^AWS4-HMAC-SHA256\n20250101T120000Z\n20250101\/us-east-1\/s3\/aws4_request\n[0-9a-f]{64}$/);
      expect(e.details.CanonicalRequest).toMatch(/^(PUT|POST)\n\/bucket\/some%20key%2Bx/);
    }
  });

  it("a tampered presigned URL", async () => {
    const url = await presignUrl({
      method: "GET",
      url: `http://${ENDPOINT_HOST}/bucket/k?versionId=v1`,
      accessKey: AK,
      secretKey: SK,
      region: "us-east-1",
      date: NOW,
      expiresIn: 60,
    });
    await verify(new Request(url));
    for (const bad of [
      url.replace("versionId=v1", "versionId=v2"),
      url.replace("/bucket/k", "/bucket/j"),
      url.replace("X-Amz-Expires=60", "X-Amz-Expires=600"),
    ]) {
      expect((await rejection(verify(new Request(bad)))).code).toBe("SignatureDoesNotMatch");
    }
    expect((await rejection(verify(new Request(url, { method: "PUT" })))).code).toBe("SignatureDoesNotMatch");
    const tooLong = url.replace("X-Amz-Expires=60", "X-Amz-Expires=604801");
    expect((await rejection(verify(new Request(tooLong)))).code).toBe("AuthorizationQueryParametersError");
  });

  it("an unknown access key (InvalidAccessKeyId)", async () => {
    const signed = (await new SignatureV4({
      credentials: { accessKeyId: "AKIDUNKNOWN", secretAccessKey: SK },
      region: "us-east-1",
      service: "s3",
      sha256: WebSha256,
      uriEscapePath: false,
    }).sign(sdkRequest("GET", "/bucket/k", {}, { "x-amz-content-sha256": EMPTY_SHA256 }), { signingDate: NOW })) as SdkRequest;
    const e = await rejection(verify(toFetchRequest(signed)));
    expect(e.code).toBe("InvalidAccessKeyId");
    expect(e.details.AWSAccessKeyId).toBe("AKIDUNKNOWN");
  });

  it("a wrong secret (SignatureDoesNotMatch)", async () => {
    const h = await signRequest({
      method: "GET",
      url: `http://${ENDPOINT_HOST}/bucket/k`,
      payloadHash: EMPTY_SHA256,
      accessKey: AK,
      secretKey: SK + "x",
      region: "us-east-1",
      date: NOW,
    });
    const e = await rejection(verify(new Request(`http://${ENDPOINT_HOST}/bucket/k`, { headers: { ...h } })));
    expect(e.code).toBe("SignatureDoesNotMatch");
  });

  it("a clock more than 15 minutes off (RequestTimeTooSkewed), but not 14 minutes", async () => {
    const signed = await signedPut();
    await verify(toFetchRequest(signed), new Date(NOW.getTime() + 14 * 60_000));
    await verify(toFetchRequest(signed), new Date(NOW.getTime() - 14 * 60_000));
    for (const delta of [16 * 60_000, -16 * 60_000]) {
      const e = await rejection(verify(toFetchRequest(signed), new Date(NOW.getTime() + delta)));
      expect(e.code).toBe("RequestTimeTooSkewed");
      expect(e.status).toBe(403);
    }
  });

  it("a scope for another region (AuthorizationHeaderMalformed naming the expected one)", async () => {
    const signed = await signedPut();
    const e = await rejection(verifyRequest(toFetchRequest(signed), new URL(toFetchRequest(signed).url), opts(NOW, "eu-west-1")));
    expect(e.code).toBe("AuthorizationHeaderMalformed");
    expect(e.status).toBe(400);
    expect(e.message).toContain("expecting 'eu-west-1'");
    expect(e.details.Region).toBe("eu-west-1");
  });

  it("a credential date other than the request date", async () => {
    const h = await signRequest({
      method: "GET",
      url: `http://${ENDPOINT_HOST}/k`,
      payloadHash: EMPTY_SHA256,
      accessKey: AK,
      secretKey: SK,
      region: "us-east-1",
      date: NOW,
    });
    const authorization = h.authorization.replace("/20250101/", "/20250102/");
    const e = await rejection(verify(new Request(`http://${ENDPOINT_HOST}/k`, { headers: { ...h, authorization } })));
    expect(e.code).toBe("AuthorizationHeaderMalformed");
  });

  it("a request without x-amz-content-sha256 (InvalidRequest)", async () => {
    const signed = await sdkSigner.sign(sdkRequest("GET", "/bucket/k"), { signingDate: NOW });
    const s = signed as SdkRequest;
    // The SDK signer adds the header itself; drop it from what is sent.
    const { "x-amz-content-sha256": _dropped, ...headers } = s.headers;
    const e = await rejection(verify(toFetchRequest({ ...s, headers })));
    expect(e.code).toBe("InvalidRequest");
    expect(e.message).toContain("x-amz-content-sha256");
  });

  it("anonymous requests (AccessDenied)", async () => {
    const e = await rejection(verify(new Request(`http://${ENDPOINT_HOST}/bucket/k`)));
    expect(e.code).toBe("AccessDenied");
    expect(e.message.toLowerCase()).toContain("anonymous access is not allowed");
  });

  it("an x-amz-* header that was not signed (AccessDenied)", async () => {
    const base = await signedPut();
    const e = await rejection(verify(toFetchRequest({ ...base, headers: { ...base.headers, "x-amz-acl": "public-read" } })));
    expect(e.code).toBe("AccessDenied");
    expect(e.details.HeadersNotSigned).toBe("x-amz-acl");
  });

  it("SignedHeaders without host, malformed headers, SigV2 and two mechanisms at once", async () => {
    const h = await signRequest({
      method: "GET",
      url: `http://${ENDPOINT_HOST}/k`,
      payloadHash: EMPTY_SHA256,
      accessKey: AK,
      secretKey: SK,
      region: "us-east-1",
      date: NOW,
    });
    const u = `http://${ENDPOINT_HOST}/k`;
    const noHost = h.authorization.replace("SignedHeaders=host;", "SignedHeaders=");
    expect((await rejection(verify(new Request(u, { headers: { ...h, authorization: noHost } })))).code).toBe(
      "AuthorizationHeaderMalformed",
    );
    const noSig = h.authorization.replace(/, Signature=.*/, "");
    expect((await rejection(verify(new Request(u, { headers: { ...h, authorization: noSig } })))).code).toBe(
      "AuthorizationHeaderMalformed",
    );
    const v2 = await rejection(verify(new Request(u, { headers: { ...h, authorization: "AWS AKID:c2lnbmF0dXJl" } })));
    expect(v2.code).toBe("InvalidRequest");
    const both = await rejection(verify(new Request(u + "?X-Amz-Algorithm=AWS4-HMAC-SHA256", { headers: { ...h } })));
    expect(both.code).toBe("InvalidArgument");
    const badHash = await rejection(verify(new Request(u, { headers: { ...h, "x-amz-content-sha256": "nope" } })));
    expect(badHash.code).toBe("InvalidArgument");
  });
});

describe("signRequest / presignUrl round trip through verifyRequest", () => {
  it("header form with a body hash and extra headers", async () => {
    const url = `http://${ENDPOINT_HOST}/bucket/${uriEncode("dir/ü key~+=.txt", false)}?uploads`;
    const body = new TextEncoder().encode("payload");
    const h = await signRequest({
      method: "POST",
      url,
      headers: { "content-type": "application/octet-stream", "x-amz-meta-x": "y", "user-agent": "bench" },
      payloadHash: await sha256Hex(body),
      accessKey: AK,
      secretKey: SK,
      region: "us-east-1",
      date: NOW,
    });
    expect(h.authorization).toContain("SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-meta-x,");
    const req = new Request(url, {
      method: "POST",
      body,
      headers: { "content-type": "application/octet-stream", "x-amz-meta-x": "y", "user-agent": "other", ...h },
    });
    const ctx = await verify(req);
    expect(ctx.payloadHash).toBe(await sha256Hex(body));
  });

  it("presigned PUT with a signed header", async () => {
    const url = await presignUrl({
      method: "PUT",
      url: `http://${ENDPOINT_HOST}/bucket/a b`,
      accessKey: AK,
      secretKey: SK,
      region: "us-east-1",
      date: NOW,
      expiresIn: 604800,
      headers: { "content-type": "image/png" },
    });
    await verify(new Request(url, { method: "PUT", headers: { "content-type": "image/png" } }));
    const e = await rejection(verify(new Request(url, { method: "PUT", headers: { "content-type": "text/html" } })));
    expect(e.code).toBe("SignatureDoesNotMatch");
  });

  it("repeated verifications reuse the cached signing key", async () => {
    const signed = await signedPutFor("k");
    for (let i = 0; i < 5; i++) await verify(toFetchRequest(signed));
  });
});

async function signedPutFor(key: string): Promise<SdkRequest> {
  return (await sdkSigner.sign(sdkRequest("PUT", "/bucket/" + escapeUriPath(key), {}, { "x-amz-content-sha256": EMPTY_SHA256 }), {
    signingDate: NOW,
  })) as SdkRequest;
}
