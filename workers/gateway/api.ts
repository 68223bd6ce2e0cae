// The S3 API: authenticate, route to one typed operation, dispatch to its handler, and turn
// every failure into the XML error S3 would send.

import { configOf, type Env } from "../shared/env.ts";
import { lookupCredential } from "./auth/credentials.ts";
import { verifyRequest } from "./auth/sigv4.ts";
import { bucketAlone, bucketNamed, route, type Endpoint } from "./router.ts";
import { postObject, readForm, verifiedForm } from "./s3/post-object.ts";
import { anonymousReader, deleteBucketPolicy, deletePublicAccessBlock, getBucketPolicy, getPublicAccessBlock, isAnonymous, putBucketPolicy, putPublicAccessBlock } from "./s3/public-access.ts";
import type { AuthContext } from "../../common/s3/verify-request.ts";
import { boundaryOf, type FormUpload } from "./data/form-data.ts";
import { corsFor, deleteBucketCors, getBucketCors, preflight, putBucketCors } from "./s3/cors.ts";
import { bucketInfo } from "./s3/bucket-cache.ts";
import { getObjectAttributes } from "./s3/object-attributes.ts";
import { deleteBucketLifecycle, getBucketLifecycle, putBucketLifecycle } from "./s3/lifecycle.ts";
import { getBucketAcl, getObjectAcl, putBucketAcl, putObjectAcl } from "./s3/acl.ts";
import { deleteBucketTagging, deleteObjectTagging, getBucketTagging, getObjectTagging, putBucketTagging, putObjectTagging } from "./s3/tagging.ts";
import { createBucket, deleteBucket, getBucketLocation, getBucketVersioning, headBucket, listBuckets, putBucketVersioning } from "./s3/bucket.ts";
import type { RequestContext } from "./s3/context.ts";
import { settleRoom, type Reservation } from "./s3/quota.ts";
import { copyObject, uploadPartCopy } from "./s3/copy.ts";
import { queryVersions } from "./ext/query.ts";
import { setReplicas, validate } from "./ext/validate.ts";
import { getChunkLayout, getStoredChunk } from "./ext/chunk-form.ts";
import { createHttpSession, endHttpSession, openSession, sessionCommand } from "./session/host.ts";
import { abortSnapshot, commitSnapshot, createSnapshot, deleteSnapshot, editSnapshot, getSnapshot, listSnapshots, restoreSnapshot } from "./ext/snapshots.ts";
import { deleteObject, deleteObjects } from "./s3/delete.ts";
import { newRequestId, S3Error } from "../../common/s3/errors.ts";
import { listObjectsV1, listObjectsV2, listObjectVersions } from "./s3/list.ts";
import { abortMultipartUpload, completeMultipartUpload, createMultipartUpload, listMultipartUploads, listParts, uploadPart } from "./s3/multipart.ts";
import { getObject } from "./s3/object-get.ts";
import { putObject } from "./s3/object-put.ts";
import { errorResponse } from "./s3/xml.ts";
import { readerLocation } from "./s3/reader-location.ts";
import { countRequest } from "./traffic.ts";
import { checkScope } from "./scope.ts";
import type { KeyScope } from "../shared/key-scope.ts";
import { unavailableReason } from "../shared/unavailable.ts";

function dispatch(ctx: RequestContext, ep: Endpoint): Promise<Response> {
  switch (ep.op) {
    case "ListBuckets":
      return listBuckets(ctx);
    case "CreateBucket":
      return createBucket(ctx, ep.bucket);
    case "HeadBucket":
      return headBucket(ctx, ep.bucket);
    case "DeleteBucket":
      return deleteBucket(ctx, ep.bucket);
    case "GetBucketLocation":
      return getBucketLocation(ctx, ep.bucket);
    case "ListObjects":
      return listObjectsV1(ctx, ep.bucket, ep.list);
    case "ListObjectsV2":
      return listObjectsV2(ctx, ep.bucket, ep.list);
    case "PutObject":
      return putObject(ctx, ep.bucket, ep.key);
    case "GetObject":
      return getObject(ctx, { ...ep, head: false }, ep.read);
    case "HeadObject":
      return getObject(ctx, { ...ep, head: true }, ep.read);
    case "DeleteObject":
      return deleteObject(ctx, ep);
    case "ListMultipartUploads":
      return listMultipartUploads(ctx, ep.bucket, ep.list);
    case "CreateMultipartUpload":
      return createMultipartUpload(ctx, ep.bucket, ep.key);
    case "UploadPart":
      return uploadPart(ctx, ep);
    case "CompleteMultipartUpload":
      return completeMultipartUpload(ctx, ep.bucket, ep.key, ep.uploadId);
    case "AbortMultipartUpload":
      return abortMultipartUpload(ctx, ep.bucket, ep.key, ep.uploadId);
    case "ListParts":
      return listParts(ctx, ep, ep.list);
    case "GetBucketVersioning":
      return getBucketVersioning(ctx, ep.bucket);
    case "PutBucketVersioning":
      return putBucketVersioning(ctx, ep.bucket);
    case "ListObjectVersions":
      return listObjectVersions(ctx, ep.bucket, ep.list);
    case "GetBucketAcl":
      return getBucketAcl(ctx, ep.bucket);
    case "PutBucketAcl":
      return putBucketAcl(ctx, ep.bucket);
    case "GetObjectAcl":
      return getObjectAcl(ctx, ep);
    case "PutObjectAcl":
      return putObjectAcl(ctx, ep);
    case "PostObject":
      return postObject(ctx, ep.bucket, ep.form);
    case "GetBucketPolicy":
      return getBucketPolicy(ctx, ep.bucket);
    case "PutBucketPolicy":
      return putBucketPolicy(ctx, ep.bucket);
    case "DeleteBucketPolicy":
      return deleteBucketPolicy(ctx, ep.bucket);
    case "GetPublicAccessBlock":
      return getPublicAccessBlock(ctx, ep.bucket);
    case "PutPublicAccessBlock":
      return putPublicAccessBlock(ctx, ep.bucket);
    case "DeletePublicAccessBlock":
      return deletePublicAccessBlock(ctx, ep.bucket);
    case "GetBucketCors":
      return getBucketCors(ctx, ep.bucket);
    case "PutBucketCors":
      return putBucketCors(ctx, ep.bucket);
    case "DeleteBucketCors":
      return deleteBucketCors(ctx, ep.bucket);
    case "GetBucketLifecycle":
      return getBucketLifecycle(ctx, ep.bucket);
    case "PutBucketLifecycle":
      return putBucketLifecycle(ctx, ep.bucket);
    case "DeleteBucketLifecycle":
      return deleteBucketLifecycle(ctx, ep.bucket);
    case "GetBucketTagging":
      return getBucketTagging(ctx, ep.bucket);
    case "PutBucketTagging":
      return putBucketTagging(ctx, ep.bucket);
    case "DeleteBucketTagging":
      return deleteBucketTagging(ctx, ep.bucket);
    case "GetObjectTagging":
      return getObjectTagging(ctx, ep);
    case "PutObjectTagging":
      return putObjectTagging(ctx, ep);
    case "DeleteObjectTagging":
      return deleteObjectTagging(ctx, ep);
    case "DeleteObjects":
      return deleteObjects(ctx, ep.bucket);
    case "CreateSnapshot":
      return createSnapshot(ctx);
    case "ListSnapshots":
      return listSnapshots(ctx);
    case "GetSnapshot":
      return getSnapshot(ctx, ep.id);
    case "EditSnapshot":
      return editSnapshot(ctx, ep.id);
    case "CommitSnapshot":
      return commitSnapshot(ctx, ep.id, ep.waitMs);
    case "AbortSnapshot":
      return abortSnapshot(ctx, ep.id);
    case "DeleteSnapshot":
      return deleteSnapshot(ctx, ep.id);
    case "RestoreSnapshot":
      return restoreSnapshot(ctx, ep.id);
    case "QueryVersions":
      return queryVersions(ctx, ep.query);
    case "OpenSession":
      return openSession(ctx);
    case "Validate":
      return validate(ctx);
    case "SetReplicas":
      return setReplicas(ctx);
    case "GetChunkLayout":
      return getChunkLayout(ctx, ep);
    case "GetStoredChunk":
      return getStoredChunk(ctx, ep);
    case "CreateHttpSession":
      return createHttpSession(ctx);
    case "SessionCommand":
      return sessionCommand(ctx, ep.id);
    case "EndHttpSession":
      return endHttpSession(ctx, ep.id);
    case "CopyObject":
      return copyObject(ctx, ep.bucket, ep.key);
    case "UploadPartCopy":
      return uploadPartCopy(ctx, ep);
    case "GetObjectAttributes":
      return getObjectAttributes(ctx, ep, ep.attributes);
  }
}

/** Map anything thrown to an S3Error; failures from groups and shards carry their cause in the message. */
function asS3Error(e: unknown): S3Error {
  if (e instanceof S3Error) return e;
  const unavailable = unavailableReason(e);
  if (unavailable !== null) return new S3Error("ServiceUnavailable", unavailable, {}, { "retry-after": "1" });
  const msg = e instanceof Error ? e.message : String(e);
  // The cause goes to the log (handleS3 logs every 5xx with its request id), never to the
  // client: an internal message can name tables, paths or peers.
  const internal = new S3Error("InternalError", "We encountered an internal error. Please try again.");
  internal.cause = msg;
  return internal;
}

/**
 * Nothing a tenant stored may act in a browser as this origin: browsers take the stored
 * Content-Type as given (no sniffing), and where the admin API shares the host, an object opened
 * as a page runs sandboxed (no script, an opaque origin) so it cannot call the admin API.
 */
function confine(res: Response, env: Env): void {
  res.headers.set("x-content-type-options", "nosniff");
  if (!env.ADMIN_HOST) res.headers.set("content-security-policy", "sandbox");
}

/** The path as S3 names it in an error's Resource; a path that is not valid percent-encoding as sent. */
function resourceOf(url: URL): string {
  try {
    return decodeURIComponent(url.pathname);
  } catch {
    return url.pathname;
  }
}

/**
 * S3 answers byte for byte, but the Workers platform gzips responses whose content type looks
 * compressible when the client accepts gzip. Clients such as rclone ask for gzip only to stop
 * their HTTP library from decoding, and then take the body as it comes: a gzipped object or
 * error would be corrupt to them. A response that already names its encoding is left alone,
 * so one with none is marked identity (an object stored with a Content-Encoding keeps it).
 */
function asSent(res: Response): Response {
  if (res.body !== null && !res.headers.has("content-encoding")) res.headers.set("content-encoding", "identity");
  return res;
}

/**
 * A page's request gets its bucket's Access-Control-* headers, on success and error alike, so
 * the page can read what happened. Without the rules at hand (the lookup failed) it gets none:
 * the browser then withholds the answer, which is what no rule would have done either.
 */
async function corsHeadersOf(req: Request, of: { env: Env; tenant: string; bucket: string } | null): Promise<Record<string, string>> {
  if (of === null || !req.headers.has("origin")) return {};
  return corsFor(req, await bucketInfo(of, of.bucket).catch(() => null));
}

export async function handleS3(req: Request, env: Env, exec: ExecutionContext): Promise<Response> {
  const url = new URL(req.url);
  const requestId = newRequestId();
  const reservations: Reservation[] = [];
  /** Whose bucket the request names, once known: its CORS rules go on the answer, an error's too. */
  let corsOf: { env: Env; tenant: string; bucket: string } | null = null;
  /** A form upload's body, once its fields are read: a refusal still reads the rest. */
  let formUpload: FormUpload | null = null;
  try {
    // A browser's preflight carries no signature: answered from the bucket's CORS rules alone.
    if (req.method === "OPTIONS") {
      const res = await preflight(req, url, { env, bucket: bucketNamed(req, url, env.S3_BASE_DOMAIN ?? "") });
      res.headers.set("x-amz-request-id", requestId);
      return res;
    }
    const cfg = configOf(env);
    let tenant = "";
    let auth: AuthContext;
    let ep: Endpoint;
    /** The signing key's scope; an anonymous reader has none to narrow what its bucket's policy opens. */
    let scope: KeyScope | null = null;
    // A form upload carries its credential in its fields, not in a signature over the request.
    const boundary = req.method === "POST" && !url.searchParams.has("delete") ? boundaryOf(req.headers.get("content-type")) : null;
    const formBucket = boundary !== null ? bucketAlone(req, url, env.S3_BASE_DOMAIN ?? "") : null;
    if (boundary !== null && formBucket !== null) {
      formUpload = await readForm(req, boundary);
      const form = await verifiedForm(formUpload, { env, bucket: formBucket });
      ({ tenant, auth, scope } = form);
      ep = { op: "PostObject", bucket: formBucket, form };
    } else if (isAnonymous(req, url)) {
      // No credential at all: only a read a public bucket's policy opens (public-access.ts). A
      // path that does not even route is refused as any anonymous request is.
      ep = await route(req, url, env.S3_BASE_DOMAIN ?? "").catch(() => {
        throw new S3Error("AccessDenied", "Anonymous access is not allowed");
      });
      ({ tenant, auth } = await anonymousReader(env, ep));
    } else {
      auth = await verifyRequest(req, url, {
        region: env.S3_REGION,
        lookupSecret: async (ak) => {
          const c = await lookupCredential(env, ak);
          if (c) ({ tenant, scope } = c);
          return c?.secret ?? null;
        },
      });
      ep = await route(req, url, env.S3_BASE_DOMAIN ?? "");
    }
    const ctx: RequestContext = { env, cfg, req, url, requestId, auth, tenant, scope, near: readerLocation(req, env), waitUntil: (p) => exec.waitUntil(p), reservations };
    if ("bucket" in ep) corsOf = { env, tenant, bucket: ep.bucket };
    checkScope(scope, ep);
    const res = await dispatch(ctx, ep);
    settleRoom(ctx, res.status < 300);
    // A WebSocket answer goes out as it is: it has no body to mark, and copying it would lose the socket.
    if (res.status === 101) return res;
    const out = new Response(res.body, res);
    out.headers.set("x-amz-request-id", requestId);
    for (const [k, v] of Object.entries(await corsHeadersOf(req, corsOf))) out.headers.set(k, v);
    confine(out, env);
    countRequest(env, req, out, (p) => exec.waitUntil(p));
    return asSent(out);
  } catch (e) {
    settleRoom({ reservations }, false);
    const err = asS3Error(e);
    if (err.status >= 500) console.error(JSON.stringify({ requestId, method: req.method, path: url.pathname, code: err.code, message: err.message, cause: err.cause }));
    // Drain an unread request body so the client is not left writing into a closed socket.
    // A refused form upload's body is read to its end before the answer goes: a connection
    // answered mid-body is closed by the runtime, and the client's next request on it fails.
    if (formUpload) await formUpload.discard();
    else if (req.body && !req.bodyUsed) exec.waitUntil(req.body.pipeTo(new WritableStream()).catch(() => {}));
    const res = errorResponse(err, resourceOf(url), requestId, req.method === "HEAD");
    for (const [k, v] of Object.entries(await corsHeadersOf(req, corsOf))) res.headers.set(k, v);
    countRequest(env, req, res, (p) => exec.waitUntil(p));
    return asSent(res);
  }
}
