// Property-based fuzzing (fast-check) of every decoder at a trust boundary the Worker has:
// S3 request documents (XML), paths, query strings and methods, SigV4 headers and presigned
// queries, aws-chunked bodies, JSON bodies of the extension and admin APIs, masks, editing-
// session commands, form uploads and their policies, bucket policies, tag sets, CORS rules, and
// the wire messages targets send the cluster and groups (and the cluster and groups send targets).
// Each decoder either gives a value or refuses with its boundary's own error type (an S3Error,
// an AdminError, a Malformed reason): never another exception, which would surface as a 5xx or
// crash a Durable Object. Runs are bounded and seeded, so CI time is fixed and a failure
// reproduces from the seed fast-check prints.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { cachedSigningKey } from "../../common/s3/sigv4.ts";
import type { Chid } from "../../common/ids.ts";
import { isNode, type Extent } from "../../common/manifest.ts";
import { BadNode, decodeNode, encodeNode, nodeEntries } from "../../common/manifest-tree.ts";
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
import { decodeClientCommand, isCommandError } from "../../common/session-decode.ts";
import { readFormUpload } from "../../workers/gateway/data/form-data.ts";
import { parsePolicy } from "../../workers/gateway/s3/post-policy.ts";
import { publicReadOf } from "../../workers/shared/bucket-policy.ts";
import { tagsOfHeader } from "../../workers/shared/tags.ts";
import { tagsOfXml } from "../../workers/gateway/s3/tagging.ts";
import { corsRulesOf } from "../../workers/gateway/s3/cors.ts";
import { lifecycleRulesOf } from "../../workers/gateway/s3/lifecycle.ts";
import { parseScope, scopeAllows, scopeOfJson, scopeToJson } from "../../workers/shared/key-scope.ts";
import { parseQualifier } from "../../workers/gateway/ext/selection.ts";
import { queryParams } from "../../workers/gateway/ext/params.ts";
import { attributesParams } from "../../workers/gateway/params.ts";
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
    const query = fc.array(fc.tuple(fc.constantFrom("uploads", "uploadId", "partNumber", "versionId", "versioning", "delete", "tagging", "acl", "list-type", "max-keys", "x", "encoding-type", "continuation-token", "start-after", "key-marker", "version-id-marker", "max-uploads", "max-parts", "part-number-marker", "as-of", "as-of-wait", "snapshot", "chunk", "chunks", "attributes", "cors", "policy", "publicAccessBlock", "response-content-type"), fc.string({ maxLength: 6 })), { maxLength: 4 });
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

  it("manifest-tree nodes as a group is handed them or reads them back: entries that re-encode to the same bytes, or BadNode", async () => {
    const hex = fc.stringMatching(/^[0-9a-f]{64}$/);
    const field = fc.oneof(fc.integer({ min: -2, max: 1 << 20 }), fc.constantFrom(null, "node", "gzip", "deflate-raw", "zstd", 1.5, 2 ** 53), hex, fc.string({ maxLength: 3 }));
    const entry = fc.oneof(fc.array(field, { maxLength: 9 }), fc.tuple(fc.nat(), fc.integer({ min: 1, max: 1000 }), hex), fc.tuple(fc.nat(), fc.integer({ min: 1, max: 1000 }), hex, fc.constant("node"), fc.integer({ min: -1, max: 9 })));
    const node = fc.oneof(
      fc.array(entry, { maxLength: 5 }).map((node) => JSON.stringify({ format: 1, node })),
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc.string({ maxLength: 60 }),
    );
    const chid = "0".repeat(64) as Chid;
    await fc.assert(
      fc.property(node, (text) => {
        const bytes = new TextEncoder().encode(text);
        let entries: Extent[];
        try {
          entries = nodeEntries(chid, bytes);
        } catch (e) {
          expect(e).toBeInstanceOf(BadNode);
          return;
        }
        // What is taken is exactly what a builder would have written: nothing slips through half-read.
        expect(new TextDecoder().decode(encodeNode(entries))).toBe(text);
        const length = entries.reduce((n, e) => n + e.length, 0);
        expect(() => decodeNode({ offset: 0, length, chid, leaves: entries.reduce((n, e) => n + (isNode(e) ? e.leaves : 1), 0) }, bytes)).not.toThrow();
        expect(() => decodeNode({ offset: 0, length: length + 1, chid, leaves: 1 }, bytes)).toThrow(BadNode);
      }),
      { ...RUNS, numRuns: 3000 },
    );
  });

  it("editing-session commands: a command or the error the client is told, never a throw", async () => {
    const field = fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(fc.string({ maxLength: 4 }), { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 4 }), fc.oneof(fc.string({ maxLength: 4 }), fc.integer())));
    const cmd = fc.record(
      { op: fc.constantFrom("new", "fork", "merge", "abandon", "write", "probe", "truncate", "meta", "commit", "abort", "x"), txn: field, bucket: field, key: field, mode: field, offset: field, length: field, enc: field, stored: field, sha256: field, size: field, set: field, delete: field, keys: field, fork: field, replicas: field },
      { requiredKeys: ["op"] },
    );
    await fc.assert(
      fc.asyncProperty(fc.oneof(cmd.map((c) => JSON.stringify(c)), fc.string({ maxLength: 60 })), async (text) => {
        const r = decodeClientCommand(text);
        if (isCommandError(r)) expect(["MalformedJSON", "InvalidArgument"]).toContain(r.code);
      }),
      RUNS,
    );
  });

  it("form uploads: fields and a file that reads to its boundary, or S3's 4xx, whatever the body", async () => {
    const part = fc.oneof(
      fc.constantFrom("--B\r\n", "\r\n--B\r\n", "\r\n--B--\r\n", 'Content-Disposition: form-data; name="key"\r\n\r\n', 'Content-Disposition: form-data; name="file"; filename="f"\r\n\r\n', "\r\n\r\n", "\r\n--B"),
      fc.string({ maxLength: 10 }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(part, { maxLength: 12 }), fc.integer({ min: 1, max: 16 }), async (parts, piece) => {
        const bytes = new TextEncoder().encode(parts.join(""));
        let at = 0;
        const body = new ReadableStream<Uint8Array>({
          pull(c) {
            if (at >= bytes.length) return c.close();
            c.enqueue(bytes.slice(at, (at += piece)));
          },
        });
        await onlyRefuses(async () => {
          const up = await readFormUpload(body, "B", 64);
          await new Response(up.file).arrayBuffer();
        }, isS3Error);
      }),
      RUNS,
    );
  });

  it("form upload policies, bucket policies, tag sets, CORS rules and GetObjectAttributes headers: a value or S3's 4xx", async () => {
    const jsonish = fc.jsonValue({ maxDepth: 4 });
    const policyDoc = fc.record({
      expiration: fc.oneof(fc.string({ maxLength: 10 }), fc.constant("2030-01-01T00:00:00Z"), fc.integer()),
      conditions: fc.array(fc.oneof(jsonish, fc.tuple(fc.constantFrom("eq", "starts-with", "content-length-range", "x"), fc.oneof(fc.string({ maxLength: 6 }), fc.integer()), fc.oneof(fc.string({ maxLength: 6 }), fc.integer()))), { maxLength: 5 }),
    });
    const statement = fc.record({ Effect: fc.oneof(fc.constantFrom("Allow", "Deny"), jsonish), Principal: fc.oneof(fc.constant("*"), jsonish), Action: fc.oneof(fc.constant("s3:GetObject"), jsonish), Resource: fc.oneof(fc.constantFrom("arn:aws:s3:::b/*", "arn:aws:s3:::b/p*", "arn:aws:s3:::b/a*b*"), jsonish) }, { requiredKeys: [] });
    await fc.assert(
      fc.asyncProperty(policyDoc, fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 6 })), fc.oneof(fc.record({ Statement: fc.oneof(statement, fc.array(statement, { maxLength: 3 })) }), jsonish), fc.string({ maxLength: 40 }), xmlish, async (doc, fields, bucketPolicy, header, xml) => {
        await onlyRefuses(() => parsePolicy(btoa(JSON.stringify(doc))).check(new Map(Object.entries(fields)), "b"), isS3Error);
        await onlyRefuses(() => publicReadOf(JSON.stringify(bucketPolicy), "b"), isS3Error);
        await onlyRefuses(() => tagsOfHeader(header), isS3Error);
        await onlyRefuses(() => tagsOfXml(xml, 10), isS3Error);
        await onlyRefuses(() => corsRulesOf(xml), isS3Error);
        await onlyRefuses(() => lifecycleRulesOf(xml), isS3Error);
        await onlyRefuses(() => attributesParams(new URLSearchParams(header), new Headers({ "x-amz-object-attributes": header.replace(/[^\x20-\x7e]/g, ""), "x-amz-max-parts": header.slice(0, 4).replace(/[^\x20-\x7e]/g, "") })), isS3Error);
      }),
      RUNS,
    );
  });
});

describe("qualifiers", () => {
  it("any JSON as a qualifier, any query string of /_query: a value or the API's 400, never another error", async () => {
    const name = fc.oneof(fc.constantFrom("tag:", "tag:k", "TAG:K", "x-amz-meta-", "x-amz-meta-a", "content-type"), fc.string({ maxLength: 8 }));
    const raw = fc.oneof(fc.record({ name: fc.oneof(name, fc.jsonValue()), value: fc.oneof(fc.string({ maxLength: 8 }), fc.jsonValue()) }, { requiredKeys: [] }), fc.jsonValue());
    const query = fc.array(fc.tuple(fc.oneof(fc.constantFrom("tag-", "tag-k", "meta-a", "content-type", "versions", "max-keys", "min-size"), fc.string({ maxLength: 6 })), fc.string({ maxLength: 8 })), { maxLength: 5 });
    await fc.assert(
      fc.asyncProperty(raw, query, async (q, pairs) => {
        await onlyRefuses(() => parseQualifier(q), isS3Error);
        await onlyRefuses(() => queryParams(new URLSearchParams(pairs), new Headers()), isS3Error);
      }),
      RUNS,
    );
  });
});

describe("key scopes", () => {
  it("any JSON as a scope: a scope that survives storage unchanged, or a reason, never a throw", () => {
    const entry = fc.oneof(fc.constantFrom("backups", "photos/public/", "a", "UPPER", "b/", "ok-bucket/x/y"), fc.string({ maxLength: 12 }), fc.integer());
    const scope = fc.oneof(fc.record({ access: fc.oneof(fc.constantFrom("read-only", "write-only", "read-write", "admin"), fc.integer()), buckets: fc.oneof(fc.array(entry, { maxLength: 4 }), fc.jsonValue()) }, { requiredKeys: [] }), fc.jsonValue());
    fc.assert(
      fc.property(scope, fc.string({ maxLength: 12 }), (raw, key) => {
        const s = parseScope(raw);
        if ("error" in s) return;
        expect(scopeOfJson(scopeToJson(s))).toEqual(s);
        for (const g of s.grants) expect(scopeAllows(s, s.access === "write-only" ? "write" : "read", g.bucket, g.prefix + key)).toBe(true);
        expect(scopeAllows(s, "read", "not-granted-bucket-name", key)).toBe(s.grants.some((g) => g.bucket === "not-granted-bucket-name") && s.access !== "write-only");
      }),
      RUNS,
    );
  });
});

describe("lifecycle configurations", () => {
  it("any arrangement of S3's lifecycle elements: rules or S3's 4xx/501, never another error", async () => {
    const value = fc.oneof(fc.constantFrom("", "1", "0", "-3", "30", "101", "true", "false", "Enabled", "Disabled", "2030-01-01T00:00:00Z", "2030-01-01T05:00:00Z", "x&amp;y", "99999999999999999"), fc.string({ maxLength: 8 }));
    const leaf = (names: string[]) => fc.tuple(fc.constantFrom(...names), value).map(([n, v]) => `<${n}>${v.replace(/[<&]/g, "")}</${n}>`);
    const tag = fc.tuple(value, value).map(([k, v]) => `<Tag><Key>${k.replace(/[<&]/g, "")}</Key><Value>${v.replace(/[<&]/g, "")}</Value></Tag>`);
    const conditions = fc.array(fc.oneof(leaf(["Prefix", "ObjectSizeGreaterThan", "ObjectSizeLessThan"]), tag), { maxLength: 4 }).map((c) => c.join(""));
    const filter = fc.oneof(conditions.map((c) => `<Filter>${c}</Filter>`), conditions.map((c) => `<Filter><And>${c}</And></Filter>`), leaf(["Prefix"]), fc.constant(""));
    const action = fc.oneof(
      fc.array(leaf(["Days", "Date", "ExpiredObjectDeleteMarker"]), { maxLength: 2 }).map((l) => `<Expiration>${l.join("")}</Expiration>`),
      fc.array(leaf(["NoncurrentDays", "NewerNoncurrentVersions"]), { maxLength: 2 }).map((l) => `<NoncurrentVersionExpiration>${l.join("")}</NoncurrentVersionExpiration>`),
      leaf(["DaysAfterInitiation"]).map((l) => `<AbortIncompleteMultipartUpload>${l}</AbortIncompleteMultipartUpload>`),
      fc.constant("<Transition><Days>1</Days><StorageClass>GLACIER</StorageClass></Transition>"),
    );
    const rule = fc.tuple(fc.option(leaf(["ID"])), fc.option(leaf(["Status"])), filter, fc.array(action, { maxLength: 3 })).map(([id, st, f, a]) => `<Rule>${id ?? ""}${st ?? ""}${f}${a.join("")}</Rule>`);
    await fc.assert(
      fc.asyncProperty(fc.array(rule, { maxLength: 4 }), async (rules) => {
        await onlyRefuses(() => lifecycleRulesOf(`<LifecycleConfiguration>${rules.join("")}</LifecycleConfiguration>`), isS3Error);
      }),
      { ...RUNS, numRuns: 2000 },
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
