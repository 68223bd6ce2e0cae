import { describe, expect, it } from "vitest";
import { validateBucketName } from "../../workers/gateway/s3/bucket.ts";
import { route } from "../../workers/gateway/router.ts";
import { S3Error } from "../../common/s3/errors.ts";
import { evaluateConditions, parseRange } from "../../workers/gateway/s3/object-get.ts";
import { errorResponse } from "../../workers/gateway/s3/xml.ts";
import { esc } from "../../common/s3/xml.ts";
import { caught, routeOf } from "./s3-errors.ts";

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
    expect(await routeOf("/")).toEqual({ op: "ListBuckets" });
    expect((await routeError("/", "PUT")).code).toBe("MethodNotAllowed");
  });

  it("selects the bucket operation by method", async () => {
    expect(await routeOf("/b")).toEqual({ op: "ListObjects", bucket: "b" });
    expect(await routeOf("/b", "PUT")).toEqual({ op: "CreateBucket", bucket: "b" });
    expect(await routeOf("/b", "HEAD")).toEqual({ op: "HeadBucket", bucket: "b" });
    expect(await routeOf("/b", "DELETE")).toEqual({ op: "DeleteBucket", bucket: "b" });
    expect((await routeError("/b", "POST")).code).toBe("NotImplemented");
    expect((await routeError("/b", "PATCH")).code).toBe("MethodNotAllowed");
  });

  it("selects ListObjectsV2 and GetBucketLocation by query", async () => {
    expect(await routeOf("/b?list-type=2&prefix=a%2F")).toEqual({ op: "ListObjectsV2", bucket: "b" });
    expect(await routeOf("/b?list-type=1")).toEqual({ op: "ListObjects", bucket: "b" });
    expect(await routeOf("/b?location")).toEqual({ op: "GetBucketLocation", bucket: "b" });
    expect(await routeOf("/b?location=")).toEqual({ op: "GetBucketLocation", bucket: "b" });
  });

  it("treats a trailing slash after the bucket as the bucket", async () => {
    expect(await routeOf("/b/")).toEqual({ op: "ListObjects", bucket: "b" });
    expect(await routeOf("/b/?list-type=2")).toEqual({ op: "ListObjectsV2", bucket: "b" });
  });

  it("answers NotImplemented for subresources it does not support, never misroutes them", async () => {
    for (const sub of ["policy", "lifecycle", "cors", "website"]) {
      for (const method of ["GET", "PUT", "POST", "DELETE"]) {
        const err = await routeError(`/b?${sub}`, method);
        expect(err.code).toBe("NotImplemented");
        expect(err.status).toBe(501);
      }
    }
    // ?uploads is served for GET only; no other method may fall through to another operation.
    expect(await routeOf("/b?uploads")).toEqual({ op: "ListMultipartUploads", bucket: "b" });
    for (const method of ["PUT", "POST", "DELETE"]) expect((await routeError("/b?uploads", method)).code).toBe("NotImplemented");
    expect(await routeOf("/b?delete", "POST")).toEqual({ op: "DeleteObjects", bucket: "b" });
    expect(await routeOf("/b?versioning")).toEqual({ op: "GetBucketVersioning", bucket: "b" });
    expect(await routeOf("/b?versioning", "PUT")).toEqual({ op: "PutBucketVersioning", bucket: "b" });
    expect(await routeOf("/b?versions")).toEqual({ op: "ListObjectVersions", bucket: "b" });
    for (const method of ["POST", "DELETE"]) expect((await routeError("/b?versioning", method)).code).toBe("NotImplemented");
    for (const method of ["GET", "PUT", "DELETE"]) expect((await routeError("/b?delete", method)).code).toBe("NotImplemented");
  });

  it("routes ?tagging on buckets and objects for GET, PUT and DELETE", async () => {
    expect(await routeOf("/b?tagging")).toEqual({ op: "GetBucketTagging", bucket: "b" });
    expect(await routeOf("/b?tagging", "PUT")).toEqual({ op: "PutBucketTagging", bucket: "b" });
    expect(await routeOf("/b?tagging", "DELETE")).toEqual({ op: "DeleteBucketTagging", bucket: "b" });
    expect(await routeOf("/b/k?tagging")).toEqual({ op: "GetObjectTagging", bucket: "b", key: "k" });
    expect(await routeOf("/b/k?tagging", "PUT")).toEqual({ op: "PutObjectTagging", bucket: "b", key: "k" });
    expect(await routeOf("/b/k?tagging", "DELETE")).toEqual({ op: "DeleteObjectTagging", bucket: "b", key: "k" });
    expect((await routeError("/b/k?tagging", "POST")).code).toBe("NotImplemented");
  });

  it("routes ?acl on buckets and objects for GET and PUT only", async () => {
    expect(await routeOf("/b?acl")).toEqual({ op: "GetBucketAcl", bucket: "b" });
    expect(await routeOf("/b?acl", "PUT")).toEqual({ op: "PutBucketAcl", bucket: "b" });
    expect(await routeOf("/b/k?acl")).toEqual({ op: "GetObjectAcl", bucket: "b", key: "k" });
    expect(await routeOf("/b/k?acl", "PUT")).toEqual({ op: "PutObjectAcl", bucket: "b", key: "k" });
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
    expect(await vhost("photos.s3.example.test", "/")).toEqual({ op: "ListObjects", bucket: "photos" });
    expect(await vhost("photos.s3.example.test:8787", "/a%20b/c", "PUT")).toEqual({ op: "PutObject", bucket: "photos", key: "a b/c" });
    expect(await vhost("Photos.S3.Example.Test", "/?versioning")).toEqual({ op: "GetBucketVersioning", bucket: "photos" });
    expect(await vhost("my.dotted.bucket.s3.example.test", "//k")).toEqual({ op: "GetObject", bucket: "my.dotted.bucket", key: "/k" });
  });

  it("falls back to path style for the domain itself and for other hosts", async () => {
    expect(await vhost("s3.example.test", "/")).toEqual({ op: "ListBuckets" });
    expect(await vhost("s3.example.test", "/b/k")).toEqual({ op: "GetObject", bucket: "b", key: "k" });
    expect(await vhost("127.0.0.1:8787", "/b/k")).toEqual({ op: "GetObject", bucket: "b", key: "k" });
    expect(await vhost("evils3.example.test", "/b")).toEqual({ op: "ListObjects", bucket: "b" });
  });
});

describe("route: object operations", () => {
  it("selects the object operation by method", async () => {
    expect(await routeOf("/b/k")).toEqual({ op: "GetObject", bucket: "b", key: "k" });
    expect(await routeOf("/b/k", "HEAD")).toEqual({ op: "HeadObject", bucket: "b", key: "k" });
    expect(await routeOf("/b/k", "PUT")).toEqual({ op: "PutObject", bucket: "b", key: "k" });
    expect(await routeOf("/b/k", "DELETE")).toEqual({ op: "DeleteObject", bucket: "b", key: "k" });
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
    expect(await routeOf("/b/a+b")).toEqual({ op: "GetObject", bucket: "b", key: "a+b" });
    expect(await routeOf("/b/a%2Bb")).toEqual({ op: "GetObject", bucket: "b", key: "a+b" });
  });

  it("keeps slashes in keys: nested, trailing, doubled and leading", async () => {
    expect(await routeOf("/b/x/y/z")).toEqual({ op: "GetObject", bucket: "b", key: "x/y/z" });
    expect(await routeOf("/b/dir/", "PUT")).toEqual({ op: "PutObject", bucket: "b", key: "dir/" });
    expect(await routeOf("/b/a//b")).toEqual({ op: "GetObject", bucket: "b", key: "a//b" });
    expect(await routeOf("/b//k")).toEqual({ op: "GetObject", bucket: "b", key: "/k" });
    expect(await routeOf("/b//", "PUT")).toEqual({ op: "PutObject", bucket: "b", key: "/" });
    expect(await routeOf("/b///")).toEqual({ op: "GetObject", bucket: "b", key: "//" });
    expect(await routeOf("/b/%2F")).toEqual({ op: "GetObject", bucket: "b", key: "/" });
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
    expect(await routeOf("/b/k", "PUT", { "x-amz-copy-source": "/b/other" })).toEqual({ op: "CopyObject", bucket: "b", key: "k" });
    expect(await routeOf("/b/k?partNumber=3&uploadId=u", "PUT", { "x-amz-copy-source": "/b/other" })).toEqual({ op: "UploadPartCopy", bucket: "b", key: "k", uploadId: "u", partNumber: 3 });
  });

  it("routes the multipart operations, with part numbers checked", async () => {
    expect(await routeOf("/b/k?uploads", "POST")).toEqual({ op: "CreateMultipartUpload", bucket: "b", key: "k" });
    expect(await routeOf("/b/k?partNumber=7&uploadId=u1", "PUT")).toEqual({ op: "UploadPart", bucket: "b", key: "k", uploadId: "u1", partNumber: 7 });
    expect(await routeOf("/b/k?uploadId=u1", "POST")).toEqual({ op: "CompleteMultipartUpload", bucket: "b", key: "k", uploadId: "u1" });
    expect(await routeOf("/b/k?uploadId=u1", "DELETE")).toEqual({ op: "AbortMultipartUpload", bucket: "b", key: "k", uploadId: "u1" });
    expect(await routeOf("/b/k?uploadId=u1")).toEqual({ op: "ListParts", bucket: "b", key: "k", uploadId: "u1" });
    // GET ?partNumber is a ranged GetObject.
    expect(await routeOf("/b/k?partNumber=2")).toEqual({ op: "GetObject", bucket: "b", key: "k" });
    for (const n of ["0", "10001", "x", "-1"]) expect((await routeError(`/b/k?partNumber=${n}&uploadId=u`, "PUT")).code).toBe("InvalidArgument");
    expect((await routeError("/b/k?partNumber=1", "PUT")).code).toBe("InvalidRequest");
  });

  it("ignores query parameters that select no operation", async () => {
    expect(await routeOf("/b/k?response-content-type=text%2Fplain")).toEqual({ op: "GetObject", bucket: "b", key: "k" });
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
