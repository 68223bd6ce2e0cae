// Property-based fuzzing (fast-check) of every decoder at a trust boundary the Worker has:
// S3 request documents (XML), paths, query strings and methods, SigV4 headers and presigned
// queries, aws-chunked bodies, JSON bodies of the extension and admin APIs, masks, and the
// wire messages targets send the cluster and groups (and the cluster and groups send targets).
// Each decoder either gives a value or refuses with its boundary's own error type (an S3Error,
// an AdminError, a Malformed reason): never another exception, which would surface as a 5xx or
// crash a Durable Object. Runs are bounded and seeded, so CI time is fixed and a failure
// reproduces from the seed fast-check prints.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { cachedSigningKey } from "../../common/s3/sigv4.ts";
import { decodeFromCluster, decodeToCluster, decodeToGroup, decodeToTarget } from "../../common/wire-decode.ts";
import { AdminError, bodyOf } from "../../workers/admin/errors.ts";
import { decodeAwsChunked } from "../../common/s3/aws-chunked.ts";
import type { StreamingMode } from "../../common/s3/sigv4.ts";
import { digestStreams } from "../../workers/gateway/data/digest-stream.ts";
import { verifyRequest } from "../../workers/gateway/auth/sigv4.ts";
import { readJson } from "../../workers/gateway/ext/json.ts";
import { parseMask } from "../../workers/gateway/ext/selection.ts";
import { route } from "../../workers/gateway/router.ts";
import { S3Error } from "../../common/s3/errors.ts";
import { parseXml } from "../../workers/gateway/s3/xml-read.ts";
import { compileGlob, GlobError, globMatches } from "../../workers/manifest-shard/glob.ts";

const RUNS = { numRuns: 400, seed: 0x5eed };
const MALFORMED = new Error("malformed");

/** Run `f`; fail the property if it throws anything but `allowed`. */
async function onlyRefuses(f: () => unknown, allowed: (e: unknown) => boolean): Promise<void> {
  try {
    await f();
  } catch (e) {
    if (!allowed(e)) throw new Error(`unexpected ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
  }
}
/** S3's 4xx, or 501 NotImplemented: S3's own answer for an operation it has and this gateway does not. */
const isS3Error = (e: unknown) => e instanceof S3Error && ((e.status >= 400 && e.status < 500) || e.code === "NotImplemented");

/** Text with the characters that matter to XML, often. */
const xmlish = fc
  .array(fc.oneof(fc.constantFrom("<", ">", "/", "&", ";", "#", "x", "=", '"', "'", "<a>", "</a>", "<?xml?>", "<!--", "-->", "<![CDATA[", "]]>", "&amp;", "&#x110000;", "&#0;", "&#xD800;", "&lt;"), fc.string({ maxLength: 4 })), { maxLength: 40 })
  .map((parts) => parts.join(""));

describe("decoders at trust boundaries, fuzzed", () => {
  it("S3 request XML: a tree or MalformedXML", async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(xmlish, fc.string({ unit: "binary", maxLength: 200 })), async (text) => {
        await onlyRefuses(() => parseXml(text, () => MALFORMED), (e) => e === MALFORMED);
      }),
      RUNS,
    );
  });

  it("paths, query strings and methods: an endpoint or S3's 4xx", async () => {
    const segment = fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom("%ff", "%", "%2", "..", "_admin", "_query", "a%00b", "x?y", "uploads"));
    const query = fc.array(fc.tuple(fc.constantFrom("uploads", "uploadId", "partNumber", "versionId", "versioning", "delete", "tagging", "acl", "list-type", "max-keys", "x"), fc.string({ maxLength: 6 })), { maxLength: 4 });
    await fc.assert(
      fc.asyncProperty(fc.constantFrom("GET", "PUT", "POST", "DELETE", "HEAD", "PATCH", "OPTIONS"), fc.array(segment, { maxLength: 4 }), query, async (method, segs, q) => {
        const qs = q.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&");
        let url: URL;
        try {
          url = new URL(`http://s3.test/${segs.join("/")}${qs ? `?${qs}` : ""}`);
        } catch {
          return; // not a URL at all: the runtime refuses it before any code of ours
        }
        await onlyRefuses(() => route(new Request(url, { method }), url), isS3Error);
      }),
      RUNS,
    );
  });

  it("SigV4 Authorization headers and presigned queries: who signed, or S3's 4xx", async () => {
    const auth = fc.oneof(
      fc.string({ maxLength: 80 }),
      fc.tuple(fc.string({ maxLength: 30 }), fc.string({ maxLength: 30 }), fc.string({ maxLength: 70 })).map(([c, h, s]) => `AWS4-HMAC-SHA256 Credential=${c}, SignedHeaders=${h}, Signature=${s}`),
    );
    const presign = fc.array(fc.tuple(fc.constantFrom("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Content-Sha256"), fc.string({ maxLength: 30 })), { maxLength: 7 });
    await fc.assert(
      fc.asyncProperty(fc.option(auth), presign, fc.option(fc.string({ maxLength: 70 })), fc.option(fc.string({ maxLength: 20 })), async (authorization, q, sha, date) => {
        const url = new URL(`http://s3.test/b/k?${q.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&")}`);
        const headers = new Headers();
        const set = (k: string, v: string | null) => {
          if (v === null) return;
          try {
            headers.set(k, v);
          } catch {
            // not a header value HTTP can carry: no client can send it
          }
        };
        set("authorization", authorization);
        set("x-amz-content-sha256", sha);
        set("x-amz-date", date);
        await onlyRefuses(() => verifyRequest(new Request(url, { headers }), url, { region: "us-east-1", lookupSecret: () => "secret" }), isS3Error);
      }),
      RUNS,
    );
  });

  it("aws-chunked bodies: the object's bytes, or S3's 4xx from the stream", async () => {
    const auth = { signingKey: await cachedSigningKey("secret", "20130524", "us-east-1"), scope: "20130524/us-east-1/s3/aws4_request", amzDate: "20130524T000000Z", seedSignature: "0".repeat(64) };
    const framed = fc
      .array(fc.oneof(fc.constantFrom("10;chunk-signature=", "0;", "\r\n", "x-amz-checksum-crc32:AAAAAA==\r\n", "ffffffff;", "0\r\n\r\n", "3\r\nabc\r\n"), fc.string({ maxLength: 8 })), { maxLength: 20 })
      .map((parts) => new TextEncoder().encode(parts.join("")));
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(framed, fc.uint8Array({ maxLength: 200 })),
        fc.constantFrom<StreamingMode>("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
        fc.option(fc.nat({ max: 100 })),
        async (body, mode, decodedLength) => {
          const { stream, trailers } = decodeAwsChunked(new Response(body).body!, { mode, decodedLength, signing: auth, digests: digestStreams, trailerNames: ["x-amz-checksum-crc32"] });
          // Whichever settles first, neither may fail with anything but S3's error.
          trailers.catch(() => {});
          await onlyRefuses(() => new Response(stream).arrayBuffer(), isS3Error);
          await onlyRefuses(() => trailers, isS3Error);
        },
      ),
      RUNS,
    );
  });

  it("extension and admin JSON bodies: an object, or their own 4xx", async () => {
    const body = fc.oneof(fc.uint8Array({ maxLength: 100 }), fc.jsonValue().map((v) => new TextEncoder().encode(JSON.stringify(v))), fc.string().map((s) => new TextEncoder().encode(s)));
    await fc.assert(
      fc.asyncProperty(body, async (bytes) => {
        await onlyRefuses(() => readJson(new Request("http://s3.test/_snapshots", { method: "POST", body: bytes })), isS3Error);
        await onlyRefuses(() => bodyOf(new Request("http://s3.test/_admin/tenants", { method: "POST", body: bytes })), (e) => e instanceof AdminError && e.status < 500);
      }),
      RUNS,
    );
  });

  it("masks: a mask or InvalidArgument; a compiled glob matches without throwing, as a regular expression would", async () => {
    const glob = fc.array(fc.constantFrom("a", "b", "/", "*", "?", "[", "]", "^", "-", "!", "é"), { maxLength: 10 }).map((c) => c.join(""));
    const text = fc.array(fc.constantFrom("a", "b", "/", "-", "]", "é"), { maxLength: 8 }).map((c) => c.join(""));
    await fc.assert(
      fc.asyncProperty(fc.oneof(glob, fc.string({ maxLength: 30 })), glob, text, async (raw, pattern, t) => {
        await onlyRefuses(() => parseMask(raw), isS3Error);
        let g;
        try {
          g = compileGlob(pattern);
        } catch (e) {
          expect(e).toBeInstanceOf(GlobError);
          return;
        }
        expect(globMatches(g, t)).toBe(reference(pattern).test(t));
      }),
      { ...RUNS, numRuns: 2000 },
    );
  });

  it("wire messages from targets, groups and the cluster: a message or a reason, never a throw", async () => {
    const decoders = [decodeToGroup, decodeToTarget, decodeFromCluster, decodeToCluster];
    const message = fc.oneof(
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc.record({ t: fc.constantFrom("register", "heartbeat", "saved", "bid-put", "bid-get-vm", "damaged", "membership", "put-eager", "fetch-many", "inventory-page"), rest: fc.dictionary(fc.constantFrom("txn", "items", "held", "free", "refs", "chid", "groups", "epoch", "location", "queue", "credit", "bids"), fc.jsonValue()) }).map(({ t, rest }) => JSON.stringify({ ...rest, t })),
      fc.string({ maxLength: 40 }),
    );
    await fc.assert(
      fc.property(message, (text) => {
        for (const decode of decoders) expect(typeof decode(text)).toBe("object");
      }),
      { ...RUNS, numRuns: 3000 },
    );
  });
});

/** SQLite GLOB as a regular expression, for short patterns only (it backtracks). */
function reference(pattern: string): RegExp {
  const cps = Array.from(pattern);
  let out = "";
  for (let i = 0; i < cps.length; i++) {
    const c = cps[i]!;
    if (c === "*") out += "[\\s\\S]*";
    else if (c === "?") out += "[\\s\\S]";
    else if (c === "[") {
      let j = i + 1;
      let negate = false;
      if (cps[j] === "^") (negate = true), j++;
      const members: string[] = [];
      let first = true;
      for (; j < cps.length; j++) {
        if (cps[j] === "]" && !first) break;
        first = false;
        if (cps[j + 1] === "-" && j + 2 < cps.length && cps[j + 2] !== "]") {
          const lo = cps[j]!.codePointAt(0)!;
          const hi = cps[j + 2]!.codePointAt(0)!;
          members.push(lo <= hi ? `\\u{${lo.toString(16)}}-\\u{${hi.toString(16)}}` : "(?!)");
          j += 2;
        } else members.push(`\\u{${cps[j]!.codePointAt(0)!.toString(16)}}`);
      }
      const body = members.filter((m) => m !== "(?!)").join("");
      out += negate ? (body ? `[^${body}]` : "[\\s\\S]") : body ? `[${body}]` : "(?!)";
      i = j;
    } else out += `\\u{${c.codePointAt(0)!.toString(16)}}`;
  }
  return new RegExp(`^${out}$`, "u");
}
