import { describe, expect, it } from "vitest";
import { validateBucketName } from "../../workers/gateway/s3/bucket.ts";
import { route } from "../../workers/gateway/router.ts";
import { S3Error } from "../../common/s3/errors.ts";
import { evaluateConditions, parseRange } from "../../workers/gateway/s3/object-get.ts";
import { errorResponse } from "../../workers/gateway/s3/xml.ts";
import { esc } from "../../common/s3/xml.ts";
import { caught, routeOf } from "./s3-errors.ts";
import { formatUvid } from "../../common/ids.ts";
import type { Endpoint } from "../../workers/gateway/router.ts";

async function routeError(path: string, method = "GET", headers: Record<string, string> = {}): Promise<S3Error> {
  try {
    await routeOf(path, method, headers);
  } catch (e) {
    expect(e).toBeInstanceOf(S3Error);
    return e as S3Error;
  }
  throw new Error(`expected ${method} ${path} to be refused`);
}

describe("route: service and bucket operations", () => {
  it("GET / is ListBuckets; other methods on / are refused", async () => {
    expect(await routeOf("/")).toMatchObject({ op: "ListBuckets" });
    expect((await routeError("/", "PUT")).code).toBe("MethodNotAllowed");
  });

  it("selects the bucket operation by method", async () => {
    expect(await routeOf("/b")).toMatchObject({ op: "ListObjects", bucket: "b" });
    expect(await routeOf("/b", "PUT")).toMatchObject({ op: "CreateBucket", bucket: "b" });
    expect(await routeOf("/b", "HEAD")).toMatchObject({ op: "HeadBucket", bucket: "b" });
    expect(await routeOf("/b", "DELETE")).toMatchObject({ op: "DeleteBucket", bucket: "b" });
    expect((await routeError("/b", "POST")).code).toBe("NotImplemented");
    expect((await routeError("/b", "PATCH")).code).toBe("MethodNotAllowed");
  });

  it("selects ListObjectsV2 and GetBucketLocation by query", async () => {
    expect(await routeOf("/b?list-type=2&prefix=a%2F")).toMatchObject({ op: "ListObjectsV2", bucket: "b" });
    expect(await routeOf("/b?list-type=1")).toMatchObject({ op: "ListObjects", bucket: "b" });
    expect(await routeOf("/b?location")).toMatchObject({ op: "GetBucketLocation", bucket: "b" });
    expect(await routeOf("/b?location=")).toMatchObject({ op: "GetBucketLocation", bucket: "b" });
  });

  it("treats a trailing slash after the bucket as the bucket", async () => {
    expect(await routeOf("/b/")).toMatchObject({ op: "ListObjects", bucket: "b" });
    expect(await routeOf("/b/?list-type=2")).toMatchObject({ op: "ListObjectsV2", bucket: "b" });
  });

  it("routes ?policy and ?publicAccessBlock for GET, PUT and DELETE only", async () => {
    expect(await routeOf("/b?policy", "PUT")).toMatchObject({ op: "PutBucketPolicy", bucket: "b" });
    expect(await routeOf("/b?publicAccessBlock")).toMatchObject({ op: "GetPublicAccessBlock", bucket: "b" });
    expect((await routeError("/b?policy", "POST")).code).toBe("NotImplemented");
  });

  it("routes ?cors for GET, PUT and DELETE only", async () => {
    expect(await routeOf("/b?cors")).toMatchObject({ op: "GetBucketCors", bucket: "b" });
    expect(await routeOf("/b?cors", "PUT")).toMatchObject({ op: "PutBucketCors" });
    expect(await routeOf("/b?cors", "DELETE")).toMatchObject({ op: "DeleteBucketCors" });
    expect((await routeError("/b?cors", "POST")).code).toBe("NotImplemented");
  });

  it("answers NotImplemented for subresources it does not support, never misroutes them", async () => {
    for (const sub of ["website", "replication"]) {
      for (const method of ["GET", "PUT", "POST", "DELETE"]) {
        const err = await routeError(`/b?${sub}`, method);
        expect(err.code).toBe("NotImplemented");
        expect(err.status).toBe(501);
      }
    }
    // ?lifecycle is served for GET, PUT and DELETE; POST must not fall through to another operation.
    expect(await routeOf("/b?lifecycle", "PUT")).toMatchObject({ op: "PutBucketLifecycle", bucket: "b" });
    expect((await routeError("/b?lifecycle", "POST")).code).toBe("NotImplemented");
    // ?uploads is served for GET only; no other method may fall through to another operation.
    expect(await routeOf("/b?uploads")).toMatchObject({ op: "ListMultipartUploads", bucket: "b" });
    for (const method of ["PUT", "POST", "DELETE"]) expect((await routeError("/b?uploads", method)).code).toBe("NotImplemented");
    expect(await routeOf("/b?delete", "POST")).toMatchObject({ op: "DeleteObjects", bucket: "b" });
    expect(await routeOf("/b?versioning")).toMatchObject({ op: "GetBucketVersioning", bucket: "b" });
    expect(await routeOf("/b?versioning", "PUT")).toMatchObject({ op: "PutBucketVersioning", bucket: "b" });
    expect(await routeOf("/b?versions")).toMatchObject({ op: "ListObjectVersions", bucket: "b" });
    for (const method of ["POST", "DELETE"]) expect((await routeError("/b?versioning", method)).code).toBe("NotImplemented");
    for (const method of ["GET", "PUT", "DELETE"]) expect((await routeError("/b?delete", method)).code).toBe("NotImplemented");
  });

  it("routes ?tagging on buckets and objects for GET, PUT and DELETE", async () => {
    expect(await routeOf("/b?tagging")).toMatchObject({ op: "GetBucketTagging", bucket: "b" });
    expect(await routeOf("/b?tagging", "PUT")).toMatchObject({ op: "PutBucketTagging", bucket: "b" });
    expect(await routeOf("/b?tagging", "DELETE")).toMatchObject({ op: "DeleteBucketTagging", bucket: "b" });
    expect(await routeOf("/b/k?tagging")).toMatchObject({ op: "GetObjectTagging", bucket: "b", key: "k" });
    expect(await routeOf("/b/k?tagging", "PUT")).toMatchObject({ op: "PutObjectTagging", bucket: "b", key: "k" });
    expect(await routeOf("/b/k?tagging", "DELETE")).toMatchObject({ op: "DeleteObjectTagging", bucket: "b", key: "k" });
    expect((await routeError("/b/k?tagging", "POST")).code).toBe("NotImplemented");
  });

  it("routes ?acl on buckets and objects for GET and PUT only", async () => {
    expect(await routeOf("/b?acl")).toMatchObject({ op: "GetBucketAcl", bucket: "b" });
    expect(await routeOf("/b?acl", "PUT")).toMatchObject({ op: "PutBucketAcl", bucket: "b" });
    expect(await routeOf("/b/k?acl")).toMatchObject({ op: "GetObjectAcl", bucket: "b", key: "k" });
    expect(await routeOf("/b/k?acl", "PUT")).toMatchObject({ op: "PutObjectAcl", bucket: "b", key: "k" });
    for (const method of ["POST", "DELETE"]) {
      expect((await routeError("/b?acl", method)).code).toBe("NotImplemented");
      expect((await routeError("/b/k?acl", method)).code).toBe("NotImplemented");
    }
  });
});

describe("route: virtual-hosted-style addressing", () => {
  const vhost = (host: string, path: string, method = "GET") => {
    const url = new URL(`http://${host}${path}`);
    return route(new Request(url, { method }), url, "s3.example.test");
  };

  it("takes the bucket from the host under the base domain", async () => {
    expect(await vhost("photos.s3.example.test", "/")).toMatchObject({ op: "ListObjects", bucket: "photos" });
    expect(await vhost("photos.s3.example.test:8787", "/a%20b/c", "PUT")).toMatchObject({ op: "PutObject", bucket: "photos", key: "a b/c" });
    expect(await vhost("Photos.S3.Example.Test", "/?versioning")).toMatchObject({ op: "GetBucketVersioning", bucket: "photos" });
    expect(await vhost("my.dotted.bucket.s3.example.test", "//k")).toMatchObject({ op: "GetObject", bucket: "my.dotted.bucket", key: "/k" });
  });

  it("falls back to path style for the domain itself and for other hosts", async () => {
    expect(await vhost("s3.example.test", "/")).toMatchObject({ op: "ListBuckets" });
    expect(await vhost("s3.example.test", "/b/k")).toMatchObject({ op: "GetObject", bucket: "b", key: "k" });
    expect(await vhost("127.0.0.1:8787", "/b/k")).toMatchObject({ op: "GetObject", bucket: "b", key: "k" });
    expect(await vhost("evils3.example.test", "/b")).toMatchObject({ op: "ListObjects", bucket: "b" });
  });
});

describe("route: object operations", () => {
  it("selects the object operation by method", async () => {
    expect(await routeOf("/b/k")).toMatchObject({ op: "GetObject", bucket: "b", key: "k" });
    expect(await routeOf("/b/k", "HEAD")).toMatchObject({ op: "HeadObject", bucket: "b", key: "k" });
    expect(await routeOf("/b/k", "PUT")).toMatchObject({ op: "PutObject", bucket: "b", key: "k" });
    expect(await routeOf("/b/k", "DELETE")).toMatchObject({ op: "DeleteObject", bucket: "b", key: "k" });
    expect((await routeError("/b/k", "POST")).code).toBe("MethodNotAllowed");
  });

  it("decodes the key exactly once", async () => {
    const key = async (path: string) => ((await routeOf(path)) as { key: string }).key;
    expect(await key("/b/a%2Fb")).toBe("a/b");
    expect(await key("/b/a%20b")).toBe("a b");
    expect(await key("/b/%C3%A9%F0%9F%98%80")).toBe("é😀");
    expect(await key("/b/%2541")).toBe("%41");
    expect(await key("/b/a%3Fb")).toBe("a?b");
  });

  it("keeps '+' literal: it is not a space in a path", async () => {
    expect(await routeOf("/b/a+b")).toMatchObject({ op: "GetObject", bucket: "b", key: "a+b" });
    expect(await routeOf("/b/a%2Bb")).toMatchObject({ op: "GetObject", bucket: "b", key: "a+b" });
  });

  it("keeps slashes in keys: nested, trailing, doubled and leading", async () => {
    expect(await routeOf("/b/x/y/z")).toMatchObject({ op: "GetObject", bucket: "b", key: "x/y/z" });
    expect(await routeOf("/b/dir/", "PUT")).toMatchObject({ op: "PutObject", bucket: "b", key: "dir/" });
    expect(await routeOf("/b/a//b")).toMatchObject({ op: "GetObject", bucket: "b", key: "a//b" });
    expect(await routeOf("/b//k")).toMatchObject({ op: "GetObject", bucket: "b", key: "/k" });
    expect(await routeOf("/b//", "PUT")).toMatchObject({ op: "PutObject", bucket: "b", key: "/" });
    expect(await routeOf("/b///")).toMatchObject({ op: "GetObject", bucket: "b", key: "//" });
    expect(await routeOf("/b/%2F")).toMatchObject({ op: "GetObject", bucket: "b", key: "/" });
  });

  it("rejects a path that is not valid percent-encoded UTF-8", async () => {
    expect((await routeError("/b/%E0%A4%A")).code).toBe("InvalidRequest");
    expect((await routeError("/b/%FF")).code).toBe("InvalidRequest");
  });

  it("answers NotImplemented for unsupported object subresources", async () => {
    for (const q of ["uploads", "retention", "legal-hold", "torrent"]) {
      expect((await routeError(`/b/k?${q}`, "GET")).code).toBe("NotImplemented");
    }
  });

  it("routes a PUT with x-amz-copy-source to CopyObject or UploadPartCopy", async () => {
    expect(await routeOf("/b/k", "PUT", { "x-amz-copy-source": "/b/other" })).toMatchObject({ op: "CopyObject", bucket: "b", key: "k" });
    expect(await routeOf("/b/k?partNumber=3&uploadId=u", "PUT", { "x-amz-copy-source": "/b/other" })).toMatchObject({ op: "UploadPartCopy", bucket: "b", key: "k", uploadId: "u", partNumber: 3 });
  });

  it("routes the multipart operations, with part numbers checked", async () => {
    expect(await routeOf("/b/k?uploads", "POST")).toMatchObject({ op: "CreateMultipartUpload", bucket: "b", key: "k" });
    expect(await routeOf("/b/k?partNumber=7&uploadId=u1", "PUT")).toMatchObject({ op: "UploadPart", bucket: "b", key: "k", uploadId: "u1", partNumber: 7 });
    expect(await routeOf("/b/k?uploadId=u1", "POST")).toMatchObject({ op: "CompleteMultipartUpload", bucket: "b", key: "k", uploadId: "u1" });
    expect(await routeOf("/b/k?uploadId=u1", "DELETE")).toMatchObject({ op: "AbortMultipartUpload", bucket: "b", key: "k", uploadId: "u1" });
    expect(await routeOf("/b/k?uploadId=u1")).toMatchObject({ op: "ListParts", bucket: "b", key: "k", uploadId: "u1" });
    // GET ?partNumber is a ranged GetObject.
    expect(await routeOf("/b/k?partNumber=2")).toMatchObject({ op: "GetObject", bucket: "b", key: "k" });
    for (const n of ["0", "10001", "x", "-1"]) expect((await routeError(`/b/k?partNumber=${n}&uploadId=u`, "PUT")).code).toBe("InvalidArgument");
    expect((await routeError("/b/k?partNumber=1", "PUT")).code).toBe("InvalidRequest");
  });

  it("ignores query parameters that select no operation", async () => {
    expect(await routeOf("/b/k?response-content-type=text%2Fplain")).toMatchObject({ op: "GetObject", bucket: "b", key: "k" });
  });
});

describe("route: the query parsed onto the endpoint", () => {
  const uvid = formatUvid({ ms: 1_700_000_000_000, seq: 3, group: 1 });

  it("gives a listing its page, markers and encoding, with S3's defaults and caps", async () => {
    expect(await routeOf("/b")).toMatchObject({ list: { prefix: "", delimiter: "", maxKeys: 1000, encodingType: null, marker: "", asOf: null, snapshot: null } });
    expect(await routeOf("/b?prefix=a%2F&delimiter=%2F&max-keys=5000&marker=m&encoding-type=url")).toMatchObject({ list: { prefix: "a/", delimiter: "/", maxKeys: 1000, marker: "m", encodingType: "url" } });
    // A V2 page starts after the later of start-after and the token's key.
    const token = btoa("k9").replace(/=+$/, "");
    expect(await routeOf(`/b?list-type=2&start-after=k1&continuation-token=${token}`)).toMatchObject({ op: "ListObjectsV2", list: { startAfter: "k1", continuationToken: token, after: "k9" } });
    expect(await routeOf(`/b?list-type=2&start-after=z&continuation-token=${token}`)).toMatchObject({ list: { after: "z" } });
    expect(await routeOf(`/b?versions&key-marker=k&version-id-marker=${uvid}`)).toMatchObject({ op: "ListObjectVersions", list: { keyMarker: "k", versionIdMarker: uvid } });
    // Without a key-marker S3 ignores version-id-marker.
    expect(await routeOf("/b?versions&version-id-marker=junk")).toMatchObject({ list: { versionIdMarker: "" } });
    expect(await routeOf("/b?uploads&max-uploads=7&key-marker=k&upload-id-marker=u")).toMatchObject({ op: "ListMultipartUploads", list: { maxUploads: 7, keyMarker: "k", uploadIdMarker: "u" } });
    expect(await routeOf("/b/k?uploadId=u&max-parts=9&part-number-marker=4")).toMatchObject({ op: "ListParts", list: { maxParts: 9, partNumberMarker: 4 } });
  });

  it("refuses a bad listing parameter as S3 does, before any handler runs", async () => {
    for (const path of ["/b?max-keys=-1", "/b?max-keys=x", "/b?encoding-type=base64", "/b?list-type=2&continuation-token=%FF%FF", "/b?versions&key-marker=k&version-id-marker=junk", "/b?versions&snapshot=s1", "/b?uploads&max-uploads=x", "/b/k?uploadId=u&max-parts=x", "/b?snapshot=s1&as-of=1000"]) {
      expect((await routeError(path)).code, path).toBe("InvalidArgument");
    }
  });

  it("gives a read its version, point in time, snapshot, part and header overrides", async () => {
    expect(await routeOf("/b/k")).toMatchObject({ read: { versionId: null, asOf: null, snapshot: null, partNumber: null, overrides: [] } });
    expect(await routeOf(`/b/k?versionId=${uvid}&partNumber=2&response-content-type=text%2Fplain`)).toMatchObject({ read: { versionId: uvid, partNumber: 2, overrides: [["content-type", "text/plain"]] } });
    expect(await routeOf("/b/k?versionId=null", "HEAD")).toMatchObject({ op: "HeadObject", read: { versionId: "null" } });
    const asOf = (await routeOf("/b/k?as-of=2024-01-01T00:00:00Z&as-of-wait=500")) as Extract<Endpoint, { op: "GetObject" }>;
    expect(asOf.read.asOf).toMatchObject({ ms: Date.parse("2024-01-01T00:00:00Z"), waitMs: 500 });
    // The header stands in for the query parameter.
    expect(await routeOf("/b/k", "GET", { "x-edgestore-as-of": "1000" })).toMatchObject({ read: { asOf: { ms: 1000, waitMs: 2000 } } });
    expect(await routeOf("/b/k?snapshot=s1")).toMatchObject({ read: { snapshot: "s1" } });
    for (const path of ["/b/k?versionId=v1", `/b/k?versionId=${uvid}&as-of=1000`, `/b/k?versionId=${uvid}&snapshot=s1`, "/b/k?as-of=1000&snapshot=s1", "/b/k?as-of=yesterday", "/b/k?as-of=1000&as-of-wait=999999", "/b/k?partNumber=0"]) {
      expect((await routeError(path)).code, path).toBe("InvalidArgument");
    }
    expect(await routeOf(`/b/k?versionId=${uvid}`, "DELETE")).toMatchObject({ op: "DeleteObject", versionId: uvid });
    expect(await routeOf(`/b/k?tagging&versionId=${uvid}`)).toMatchObject({ op: "GetObjectTagging", versionId: uvid });
    expect((await routeError("/b/k?acl&versionId=v1")).code).toBe("InvalidArgument");
  });

  it("gives the extension API its parsed query", async () => {
    expect(await routeOf("/b/k?chunk=3")).toMatchObject({ op: "GetStoredChunk", chunk: 3, versionId: null });
    expect((await routeError("/b/k?chunk=-1")).code).toBe("InvalidArgument");
    expect(await routeOf("/_snapshots/s1/commit?wait=250", "POST")).toMatchObject({ op: "CommitSnapshot", id: "s1", waitMs: 250 });
    expect(await routeOf("/_snapshots/s1/commit", "POST")).toMatchObject({ waitMs: 10_000 });
    expect((await routeError("/_snapshots/s1/commit?wait=soon", "POST")).code).toBe("InvalidArgument");
    const q = (await routeOf("/_query?bucket=b&name=*.mp3&versions=current&min-size=10&meta-color=red&max-keys=5")) as Extract<Endpoint, { op: "QueryVersions" }>;
    expect(q.query).toMatchObject({ limit: 5, after: null, asOf: null, selection: { masks: [{ bucket: "b", key: "*.mp3" }], which: "current", sizeMin: 10, qualifiers: [{ name: "x-amz-meta-color", value: "red" }] } });
    for (const path of ["/_query?versions=some", "/_query?max-keys=0", "/_query?min-size=x", "/_query?continuation-token=e30", "/_query?created-after=never"]) {
      expect((await routeError(path)).code, path).toBe("InvalidArgument");
    }
  });
});

describe("parseRange", () => {
  it("parses the three single-range forms, end inclusive on the wire and exclusive in the result", () => {
    expect(parseRange("bytes=0-9", 100)).toEqual({ start: 0, end: 10 });
    expect(parseRange("bytes=10-", 100)).toEqual({ start: 10, end: 100 });
    expect(parseRange("bytes=-10", 100)).toEqual({ start: 90, end: 100 });
    expect(parseRange("bytes=99-99", 100)).toEqual({ start: 99, end: 100 });
  });

  it("clamps an end or suffix beyond the object", () => {
    expect(parseRange("bytes=50-1000", 100)).toEqual({ start: 50, end: 100 });
    expect(parseRange("bytes=-1000", 100)).toEqual({ start: 0, end: 100 });
  });

  it("throws InvalidRange with content-range bytes */size when unsatisfiable", () => {
    for (const [h, size] of [["bytes=-0", 100], ["bytes=100-", 100], ["bytes=200-300", 100], ["bytes=0-", 0], ["bytes=-5", 0]] as const) {
      const err = caught(() => parseRange(h, size));
      expect(err.code).toBe("InvalidRange");
      expect(err.status).toBe(416);
      expect(err.headers["content-range"]).toBe(`bytes */${size}`);
    }
  });

  it("ignores an absent, malformed or multi-range header (plain 200)", () => {
    for (const h of [null, "", "bytes=", "bytes=-", "bytes=a-b", "bytes=5-2", "bytes=0-1,3-4", "items=0-1", "bytes 0-1", "bytes=1.5-2"]) {
      expect(parseRange(h, 100)).toBeNull();
    }
  });
});

describe("evaluateConditions", () => {
  const etag = '"0123abcd"';
  const lastModified = Date.UTC(2024, 0, 1, 12, 0, 0, 500);
  const sameSecond = "Mon, 01 Jan 2024 12:00:00 GMT";
  const earlier = "Mon, 01 Jan 2024 11:59:59 GMT";
  const later = "Mon, 01 Jan 2024 12:00:01 GMT";
  const evalWith = (h: Record<string, string>) => evaluateConditions(new Headers(h), etag, lastModified);

  it("proceeds with no conditions", () => {
    expect(evalWith({})).toBeNull();
  });

  it("If-Match accepts quoted, unquoted, listed and * etags, else 412", () => {
    for (const v of ['"0123abcd"', "0123abcd", "*", '"other", "0123abcd"']) expect(evalWith({ "if-match": v })).toBeNull();
    for (const v of ['"other"', "other", '""']) expect(evalWith({ "if-match": v })).toBe(412);
  });

  it("If-Match compares strongly: a weak tag never matches", () => {
    expect(evalWith({ "if-match": 'W/"0123abcd"' })).toBe(412);
  });

  it("If-None-Match answers 304 on a match (quoted, unquoted, *), proceeds otherwise", () => {
    for (const v of ['"0123abcd"', "0123abcd", "*", '"x","0123abcd"', 'W/"0123abcd"']) expect(evalWith({ "if-none-match": v })).toBe(304);
    expect(evalWith({ "if-none-match": '"other"' })).toBeNull();
  });

  it("compares dates at one-second precision", () => {
    expect(evalWith({ "if-modified-since": sameSecond })).toBe(304);
    expect(evalWith({ "if-modified-since": later })).toBe(304);
    expect(evalWith({ "if-modified-since": earlier })).toBeNull();
    expect(evalWith({ "if-unmodified-since": sameSecond })).toBeNull();
    expect(evalWith({ "if-unmodified-since": later })).toBeNull();
    expect(evalWith({ "if-unmodified-since": earlier })).toBe(412);
  });

  it("ignores unparseable dates", () => {
    expect(evalWith({ "if-modified-since": "yesterday" })).toBeNull();
    expect(evalWith({ "if-unmodified-since": "not a date" })).toBeNull();
  });

  it("If-Match true overrides a failing If-Unmodified-Since (S3 returns 200)", () => {
    expect(evalWith({ "if-match": etag, "if-unmodified-since": earlier })).toBeNull();
    expect(evalWith({ "if-match": '"other"', "if-unmodified-since": later })).toBe(412);
  });

  it("If-None-Match false (etag matches) gives 304 even if If-Modified-Since is true", () => {
    expect(evalWith({ "if-none-match": etag, "if-modified-since": earlier })).toBe(304);
  });

  it("If-None-Match true overrides an If-Modified-Since that would give 304", () => {
    expect(evalWith({ "if-none-match": '"other"', "if-modified-since": later })).toBeNull();
  });

  it("evaluates If-Match before If-None-Match: a failing If-Match is 412, not 304", () => {
    expect(evalWith({ "if-match": '"other"', "if-none-match": etag })).toBe(412);
    expect(evalWith({ "if-unmodified-since": earlier, "if-none-match": etag })).toBe(412);
    expect(evalWith({ "if-match": etag, "if-none-match": etag })).toBe(304);
  });
});

describe("errorResponse and esc", () => {
  it("escapes the five XML specials, ampersand first", () => {
    expect(esc(`a&b<c>d"e'f`)).toBe("a&amp;b&lt;c&gt;d&quot;e&apos;f");
    expect(esc("&lt;")).toBe("&amp;lt;");
    expect(esc("plain é😀")).toBe("plain é😀");
  });

  it("renders the S3 error document with status, details, resource and request id", async () => {
    const err = new S3Error("NoSuchKey", "The specified key does not exist.", { Key: "a&b" });
    const res = errorResponse(err, "/b/a&b", "req-1", false);
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toBe("application/xml");
    expect(res.headers.get("x-amz-request-id")).toBe("req-1");
    expect(await res.text()).toBe(
      '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message>' +
        "<Key>a&amp;b</Key><Resource>/b/a&amp;b</Resource><RequestId>req-1</RequestId></Error>",
    );
  });

  it("carries the error's extra headers, and sends no body for HEAD", async () => {
    const err = caught(() => parseRange("bytes=500-", 10));
    const res = errorResponse(err, "/b/k", "req-2", true);
    expect(res.status).toBe(416);
    expect(res.headers.get("content-range")).toBe("bytes */10");
    expect(res.headers.get("x-amz-request-id")).toBe("req-2");
    expect(res.body).toBeNull();
    expect(await res.text()).toBe("");
    const get = errorResponse(err, "/b/k", "req-2", false);
    expect(get.headers.get("content-range")).toBe("bytes */10");
    expect(await get.text()).toContain("<Code>InvalidRange</Code>");
  });
});

describe("validateBucketName", () => {
  it("accepts DNS-compatible names of 3 to 63 characters", () => {
    for (const n of ["abc", "my-bucket", "my.bucket.1", "1bucket", "a".repeat(63), "a-b.c-d"]) expect(() => validateBucketName(n)).not.toThrow();
  });

  it("rejects everything else with InvalidBucketName", () => {
    for (const n of ["ab", "a".repeat(64), "ABC", "Bucket", "-abc", "abc-", ".abc", "abc.", "a..b", "a_b", "a b", "192.168.1.1", "xn--abc", "abc-s3alias", "sthree-abc", "amzn-s3-demo-abc", "abc--ol-s3", "abc--x-s3", "abc.mrap", "", "é-bucket"]) {
      const err = caught(() => validateBucketName(n));
      expect(err.code).toBe("InvalidBucketName");
      expect(err.status).toBe(400);
      expect(err.details.BucketName).toBe(n);
    }
  });
});
