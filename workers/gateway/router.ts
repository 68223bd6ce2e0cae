// Turns a request into one typed S3 operation (Garage's `Endpoint`) carrying its parsed query
// (params.ts): nothing else parses the URL. Path-style addressing (/bucket/key), and virtual-hosted style (bucket.<domain>/key) when
// S3_BASE_DOMAIN is set. itty-router matches the raw (still percent-encoded) path; bucket and
// key are decoded exactly once, here.

import { Router } from "itty-router";
import { S3Error } from "../../common/s3/errors.ts";
import type { PostForm } from "./s3/post-object.ts";
import { chunkIndexOf, commitWaitOf, queryParams, type QueryParams } from "./ext/params.ts";
import {
  attributesParams,
  listObjectsParams,
  listObjectsV2Params,
  listPartsParams,
  listUploadsParams,
  listVersionsParams,
  partNumberOf,
  readParams,
  versionIdParam,
  type AttributesParams,
  type ListObjectsParams,
  type ListObjectsV2Params,
  type ListPartsParams,
  type ListUploadsParams,
  type ListVersionsParams,
  type ReadParams,
  type VersionId,
} from "./params.ts";

export type Endpoint =
  | { op: "ListBuckets" }
  | { op: "CreateBucket"; bucket: string }
  | { op: "HeadBucket"; bucket: string }
  | { op: "DeleteBucket"; bucket: string }
  | { op: "GetBucketLocation"; bucket: string }
  | { op: "ListObjects"; bucket: string; list: ListObjectsParams }
  | { op: "ListObjectsV2"; bucket: string; list: ListObjectsV2Params }
  | { op: "PutObject"; bucket: string; key: string }
  | { op: "GetObject"; bucket: string; key: string; read: ReadParams }
  | { op: "HeadObject"; bucket: string; key: string; read: ReadParams }
  | { op: "DeleteObject"; bucket: string; key: string; versionId: VersionId }
  | { op: "ListMultipartUploads"; bucket: string; list: ListUploadsParams }
  | { op: "CreateMultipartUpload"; bucket: string; key: string }
  | { op: "UploadPart"; bucket: string; key: string; uploadId: string; partNumber: number }
  | { op: "CompleteMultipartUpload"; bucket: string; key: string; uploadId: string }
  | { op: "AbortMultipartUpload"; bucket: string; key: string; uploadId: string }
  | { op: "ListParts"; bucket: string; key: string; uploadId: string; list: ListPartsParams }
  | { op: "CopyObject"; bucket: string; key: string }
  | { op: "DeleteObjects"; bucket: string }
  | { op: "GetBucketVersioning"; bucket: string }
  | { op: "PutBucketVersioning"; bucket: string }
  | { op: "ListObjectVersions"; bucket: string; list: ListVersionsParams }
  | { op: "GetBucketAcl"; bucket: string }
  | { op: "PutBucketAcl"; bucket: string }
  | { op: "GetObjectAcl"; bucket: string; key: string; versionId: VersionId }
  | { op: "PutObjectAcl"; bucket: string; key: string; versionId: VersionId }
  | { op: "GetBucketTagging"; bucket: string }
  | { op: "PutBucketTagging"; bucket: string }
  | { op: "DeleteBucketTagging"; bucket: string }
  | { op: "GetBucketPolicy"; bucket: string }
  | { op: "PutBucketPolicy"; bucket: string }
  | { op: "DeleteBucketPolicy"; bucket: string }
  | { op: "GetPublicAccessBlock"; bucket: string }
  | { op: "PutPublicAccessBlock"; bucket: string }
  | { op: "DeletePublicAccessBlock"; bucket: string }
  | { op: "GetBucketCors"; bucket: string }
  | { op: "PutBucketCors"; bucket: string }
  | { op: "DeleteBucketCors"; bucket: string }
  | { op: "GetBucketLifecycle"; bucket: string }
  | { op: "PutBucketLifecycle"; bucket: string }
  | { op: "DeleteBucketLifecycle"; bucket: string }
  | { op: "GetObjectTagging"; bucket: string; key: string; versionId: VersionId }
  | { op: "PutObjectTagging"; bucket: string; key: string; versionId: VersionId }
  | { op: "DeleteObjectTagging"; bucket: string; key: string; versionId: VersionId }
  | { op: "UploadPartCopy"; bucket: string; key: string; uploadId: string; partNumber: number }
  | { op: "GetObjectAttributes"; bucket: string; key: string; attributes: AttributesParams }
  /** A browser form upload: routed apart, since the form carries its own credential (s3/post-object.ts). */
  | { op: "PostObject"; bucket: string; form: PostForm }
  // Extensions beyond S3 (docs/snapshots.md), on paths no bucket can have: bucket names start
  // with a letter or digit.
  | { op: "CreateSnapshot" }
  | { op: "ListSnapshots" }
  | { op: "GetSnapshot"; id: string }
  | { op: "EditSnapshot"; id: string }
  | { op: "DeleteSnapshot"; id: string }
  | { op: "CommitSnapshot"; id: string; waitMs: number }
  | { op: "AbortSnapshot"; id: string }
  | { op: "RestoreSnapshot"; id: string }
  | { op: "QueryVersions"; query: QueryParams }
  | { op: "OpenSession" }
  | { op: "Validate" }
  | { op: "SetReplicas" }
  | { op: "GetChunkLayout"; bucket: string; key: string; versionId: VersionId }
  | { op: "GetStoredChunk"; bucket: string; key: string; versionId: VersionId; chunk: number }
  | { op: "CreateHttpSession" }
  | { op: "SessionCommand"; id: string }
  | { op: "EndHttpSession"; id: string };

/** Subresources that select an operation we do not implement yet: answer 501, never misroute. */
const UNIMPLEMENTED_BUCKET = ["website", "encryption", "logging", "notification", "replication", "object-lock", "ownershipControls", "accelerate", "requestPayment", "analytics", "inventory", "metrics", "intelligent-tiering"];
const UNIMPLEMENTED_OBJECT = ["retention", "legal-hold", "torrent", "restore", "select"];

function notImplemented(what: string): never {
  throw new S3Error("NotImplemented", `${what} is not implemented by this gateway yet`);
}

/** What the router reads of a request besides its path. */
type Asked = Pick<Request, "method" | "headers">;

/** Operations on a bucket that take nothing but its name. */
type BucketOp = Extract<Endpoint, { bucket: string }> extends infer E ? (E extends { op: infer O; bucket: string } ? (keyof E extends "op" | "bucket" ? O : never) : never) : never;

/** Bucket subresources by the methods that serve them: any other method is NotImplemented, never another operation. */
const BUCKET_SUBRESOURCES: Record<string, Partial<Record<"GET" | "PUT" | "DELETE", BucketOp>>> = {
  acl: { GET: "GetBucketAcl", PUT: "PutBucketAcl" },
  tagging: { GET: "GetBucketTagging", PUT: "PutBucketTagging", DELETE: "DeleteBucketTagging" },
  policy: { GET: "GetBucketPolicy", PUT: "PutBucketPolicy", DELETE: "DeleteBucketPolicy" },
  publicAccessBlock: { GET: "GetPublicAccessBlock", PUT: "PutPublicAccessBlock", DELETE: "DeletePublicAccessBlock" },
  cors: { GET: "GetBucketCors", PUT: "PutBucketCors", DELETE: "DeleteBucketCors" },
  lifecycle: { GET: "GetBucketLifecycle", PUT: "PutBucketLifecycle", DELETE: "DeleteBucketLifecycle" },
  versioning: { GET: "GetBucketVersioning", PUT: "PutBucketVersioning" },
};

function bucketEndpoint(req: Asked, bucket: string, q: URLSearchParams): Endpoint {
  const { method, headers } = req;
  for (const sub of UNIMPLEMENTED_BUCKET) if (q.has(sub)) notImplemented(`?${sub}`);
  // A subresource we serve for one method only must not fall through to another operation.
  if (q.has("uploads") && method !== "GET") notImplemented(`${method} ?uploads on a bucket`);
  if (q.has("delete") && method !== "POST") notImplemented(`${method} ?delete on a bucket`);
  if (q.has("versions") && method !== "GET") notImplemented(`${method} ?versions on a bucket`);
  for (const [sub, ops] of Object.entries(BUCKET_SUBRESOURCES)) {
    if (!q.has(sub)) continue;
    const op = ops[method as keyof typeof ops];
    if (op) return { op, bucket };
    notImplemented(`${method} ?${sub} on a bucket`);
  }
  switch (method) {
    case "GET":
      if (q.has("location")) return { op: "GetBucketLocation", bucket };
      if (q.has("uploads")) return { op: "ListMultipartUploads", bucket, list: listUploadsParams(q) };
      if (q.has("versions")) return { op: "ListObjectVersions", bucket, list: listVersionsParams(q, headers) };
      return q.get("list-type") === "2" ? { op: "ListObjectsV2", bucket, list: listObjectsV2Params(q, headers) } : { op: "ListObjects", bucket, list: listObjectsParams(q, headers) };
    case "PUT":
      return { op: "CreateBucket", bucket };
    case "HEAD":
      return { op: "HeadBucket", bucket };
    case "DELETE":
      return { op: "DeleteBucket", bucket };
    case "POST":
      if (q.has("delete")) return { op: "DeleteObjects", bucket };
      return notImplemented("POST on a bucket");
    default:
      throw new S3Error("MethodNotAllowed", `${method} is not allowed on a bucket`);
  }
}

function objectEndpoint(req: Asked, name: { bucket: string; key: string }, q: URLSearchParams): Endpoint {
  const { method, headers } = req;
  const { bucket, key } = name;
  for (const sub of UNIMPLEMENTED_OBJECT) if (q.has(sub)) notImplemented(`?${sub}`);
  const uploadId = q.get("uploadId");
  if (q.has("uploads") && method !== "POST") notImplemented(`${method} ?uploads on an object`);
  if (q.has("attributes") && method !== "GET") notImplemented(`${method} ?attributes on an object`);
  if (q.has("acl")) {
    if (method === "GET") return { op: "GetObjectAcl", bucket, key, versionId: versionIdParam(q.get("versionId")) };
    if (method === "PUT") return { op: "PutObjectAcl", bucket, key, versionId: versionIdParam(q.get("versionId")) };
    notImplemented(`${method} ?acl on an object`);
  }
  if (q.has("tagging")) {
    if (method === "GET") return { op: "GetObjectTagging", bucket, key, versionId: versionIdParam(q.get("versionId")) };
    if (method === "PUT") return { op: "PutObjectTagging", bucket, key, versionId: versionIdParam(q.get("versionId")) };
    if (method === "DELETE") return { op: "DeleteObjectTagging", bucket, key, versionId: versionIdParam(q.get("versionId")) };
    notImplemented(`${method} ?tagging on an object`);
  }
  switch (method) {
    case "GET":
      if (uploadId !== null) return { op: "ListParts", bucket, key, uploadId, list: listPartsParams(q) };
      if (q.has("attributes")) return { op: "GetObjectAttributes", bucket, key, attributes: attributesParams(q, headers) };
      if (q.has("chunks")) return { op: "GetChunkLayout", bucket, key, versionId: versionIdParam(q.get("versionId")) };
      if (q.has("chunk")) return { op: "GetStoredChunk", bucket, key, versionId: versionIdParam(q.get("versionId")), chunk: chunkIndexOf(q) };
      return { op: "GetObject", bucket, key, read: readParams(q, headers) };
    case "HEAD":
      if (uploadId !== null) throw new S3Error("MethodNotAllowed", "HEAD is not allowed with ?uploadId");
      return { op: "HeadObject", bucket, key, read: readParams(q, headers) };
    case "PUT":
      if (uploadId !== null || q.has("partNumber")) {
        if (uploadId === null) throw new S3Error("InvalidRequest", "A part upload needs an uploadId");
        const partNumber = partNumberOf(q.get("partNumber"));
        if (headers.has("x-amz-copy-source")) return { op: "UploadPartCopy", bucket, key, uploadId, partNumber };
        return { op: "UploadPart", bucket, key, uploadId, partNumber };
      }
      if (headers.has("x-amz-copy-source")) return { op: "CopyObject", bucket, key };
      return { op: "PutObject", bucket, key };
    case "POST":
      if (q.has("uploads")) return { op: "CreateMultipartUpload", bucket, key };
      if (uploadId !== null) return { op: "CompleteMultipartUpload", bucket, key, uploadId };
      throw new S3Error("MethodNotAllowed", "POST on an object needs ?uploads or ?uploadId");
    case "DELETE":
      if (uploadId !== null) return { op: "AbortMultipartUpload", bucket, key, uploadId };
      return { op: "DeleteObject", bucket, key, versionId: versionIdParam(q.get("versionId")) };
    default:
      throw new S3Error("MethodNotAllowed", `${method} is not allowed on an object`);
  }
}

function decode(raw: string, what: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new S3Error("InvalidRequest", `the ${what} in the path is not valid percent-encoded UTF-8`);
  }
}

/**
 * The raw (percent-encoded) key of a path-style request: everything after "/bucket/", taken
 * from the path itself rather than a route parameter, so keys with empty segments ("a//b",
 * "/") survive. Null when the path names the bucket alone.
 */
function rawKeyOf(pathname: string, rawBucket: string): string | null {
  const rest = pathname.slice(1 + rawBucket.length);
  return rest === "" || rest === "/" ? null : rest.slice(1);
}

type Routed = (req: Request & { params: Record<string, string> }, url: URL) => Endpoint;
const router = Router<Request & { params: Record<string, string> }, [URL]>();
router.all("/", ((req) => {
  if (req.method !== "GET") throw new S3Error("MethodNotAllowed", `${req.method} is not allowed on the service`);
  return { op: "ListBuckets" };
}) as Routed);
const named: Routed = (req, url) => {
  const raw = req.params.bucket!;
  const bucket = decode(raw, "bucket");
  const key = rawKeyOf(url.pathname, raw);
  return key === null ? bucketEndpoint(req, bucket, url.searchParams) : objectEndpoint(req, { bucket, key: decode(key, "key") }, url.searchParams);
};
router.all("/_snapshots", ((req) => {
  if (req.method === "POST") return { op: "CreateSnapshot" };
  if (req.method === "GET") return { op: "ListSnapshots" };
  throw new S3Error("MethodNotAllowed", `${req.method} is not allowed on /_snapshots`);
}) as Routed);
router.all("/_snapshots/:id", ((req) => {
  const id = decode(req.params.id!, "snapshot id");
  if (req.method === "GET") return { op: "GetSnapshot", id };
  if (req.method === "PATCH") return { op: "EditSnapshot", id };
  if (req.method === "DELETE") return { op: "DeleteSnapshot", id };
  throw new S3Error("MethodNotAllowed", `${req.method} is not allowed on a snapshot`);
}) as Routed);
router.all("/_snapshots/:id/:action", ((req, url) => {
  const id = decode(req.params.id!, "snapshot id");
  if (req.method !== "POST") throw new S3Error("MethodNotAllowed", `${req.method} is not allowed on a snapshot action`);
  switch (req.params.action) {
    case "commit":
      return { op: "CommitSnapshot", id, waitMs: commitWaitOf(url.searchParams) };
    case "abort":
      return { op: "AbortSnapshot", id };
    case "restore":
      return { op: "RestoreSnapshot", id };
    default:
      throw new S3Error("InvalidRequest", `unknown snapshot action ${req.params.action}: commit, abort or restore`);
  }
}) as Routed);
/** An extension path that answers one method and takes no parameters. */
function onlyMethod(path: string, method: string, op: "Validate" | "SetReplicas" | "CreateHttpSession" | "OpenSession", hint = ""): void {
  router.all(path, ((req) => {
    if (req.method !== method) throw new S3Error("MethodNotAllowed", `${req.method} is not allowed on ${path}${hint}`);
    return { op };
  }) as Routed);
}
onlyMethod("/_validate", "POST", "Validate");
onlyMethod("/_replicas", "POST", "SetReplicas");
onlyMethod("/_sessions", "POST", "CreateHttpSession");
router.all("/_sessions/:id", ((req) => {
  const id = decode(req.params.id!, "session id");
  if (req.method === "POST") return { op: "SessionCommand", id };
  if (req.method === "DELETE") return { op: "EndHttpSession", id };
  throw new S3Error("MethodNotAllowed", `${req.method} is not allowed on a session`);
}) as Routed);
onlyMethod("/_session", "GET", "OpenSession", ": open a WebSocket");
router.all("/_query", ((req, url) => {
  if (req.method !== "GET") throw new S3Error("MethodNotAllowed", `${req.method} is not allowed on /_query`);
  return { op: "QueryVersions", query: queryParams(url.searchParams, req.headers) };
}) as Routed);
router.all("/:bucket", named);
router.all("/:bucket/:key+", named);

/**
 * Virtual-hosted-style addressing, when a base domain is configured: "bucket.<domain>/key" is
 * "/bucket/key". A host that is the domain itself, or not under it, is path-style.
 */
export function bucketOfHost(host: string, baseDomain: string): string | null {
  const h = host.toLowerCase().replace(/:\d+$/, "");
  const d = baseDomain.toLowerCase();
  if (!d || !h.endsWith(`.${d}`)) return null;
  const bucket = h.slice(0, h.length - d.length - 1);
  return bucket === "" ? null : bucket;
}

/** The bucket a request names when it names nothing below it (where a form upload is sent), else null. */
export function bucketAlone(req: Request, url: URL, baseDomain = ""): string | null {
  const vhost = bucketOfHost(req.headers.get("host") ?? url.host, baseDomain);
  if (vhost !== null) return url.pathname === "/" ? vhost : null;
  const m = /^\/([^/]+)\/?$/.exec(url.pathname);
  return m && !m[1]!.startsWith("_") ? decode(m[1]!, "bucket") : null;
}

/** The bucket a request names (by host or first path segment), or null for the service or a path no bucket can have. */
export function bucketNamed(req: Request, url: URL, baseDomain = ""): string | null {
  const vhost = bucketOfHost(req.headers.get("host") ?? url.host, baseDomain);
  if (vhost !== null) return vhost;
  const first = url.pathname.split("/")[1] ?? "";
  if (first === "" || first.startsWith("_")) return null;
  return decode(first, "bucket");
}

export async function route(req: Request, url: URL, baseDomain = ""): Promise<Endpoint> {
  const vhost = bucketOfHost(req.headers.get("host") ?? url.host, baseDomain);
  if (vhost !== null) {
    const key = url.pathname === "/" ? null : url.pathname.slice(1);
    return key === null ? bucketEndpoint(req, vhost, url.searchParams) : objectEndpoint(req, { bucket: vhost, key: decode(key, "key") }, url.searchParams);
  }
  const ep = (await router.fetch(req, url)) as Endpoint | undefined;
  if (!ep) throw new S3Error("InvalidRequest", `cannot route ${req.method} ${url.pathname}`);
  return ep;
}
