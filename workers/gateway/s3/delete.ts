// DeleteObject and DeleteObjects. Without a version id, what a delete does depends on the
// bucket's versioning (see the group's deleteName): a new delete marker (enabled), a delete
// marker as the null version (suspended), or removal of the null version (unversioned). With a
// version id, that version is removed for good. Deleting what is not there succeeds, as in S3.

import { deleteMarkerOf } from "../../../common/manifest.ts";
import { groupStub } from "../../shared/env.ts";
import { isRefusal } from "../../shared/refusal.ts";
import { checksumOf, requestedChecksum, badDigest } from "../../../common/s3/checksums.ts";
import type { Uvid } from "../../../common/ids.ts";
import type { BucketInfo } from "../../tenant/rpc.ts";
import { placeOf, requireBucket, requireScope, validateKey, type RequestContext } from "./context.ts";
import { versionIdParam, type VersionId } from "../params.ts";
import { refused } from "./refused.ts";
import { S3Error } from "../../../common/s3/errors.ts";
import { readBounded } from "../../shared/read-bounded.ts";
import { childrenNamed, childText, parseXml } from "./xml-read.ts";
import { xmlResponse } from "./xml.ts";
import type { XmlNode } from "../../../common/s3/xml.ts";

/** S3's limit on keys per DeleteObjects request. */
const MAX_DELETE_KEYS = 1000;
/** Deletes in flight at once for one DeleteObjects request. */
const DELETE_CONCURRENCY = 16;

export async function deleteObject(ctx: RequestContext, at: { bucket: string; key: string; versionId: VersionId }): Promise<Response> {
  const { bucket, key, versionId } = at;
  validateKey(key);
  const info = await requireBucket(ctx, bucket);
  const r = await deleteKey(ctx, info, { bucket, key, versionId });
  const headers: Record<string, string> = {};
  if (r.versionId !== null) headers["x-amz-version-id"] = r.versionId;
  if (r.deleteMarker) headers["x-amz-delete-marker"] = "true";
  return new Response(null, { status: 204, headers });
}

interface Deleted {
  /** The version removed or the delete marker made; null when no version id applies (unversioned). */
  versionId: string | null;
  /** A delete marker was made, or the version removed was one. */
  deleteMarker: boolean;
}

async function deleteKey(ctx: RequestContext, info: BucketInfo, at: { bucket: string; key: string; versionId: VersionId }): Promise<Deleted> {
  const { bucket, key, versionId } = at;
  const place = await placeOf(ctx, bucket, key);
  if (versionId !== null) {
    // A version that is not there is already deleted: S3 answers success.
    const r = await groupStub(ctx.env, place.group).deleteVersion(place.nhid, { tenant: ctx.tenant, bucket, key }, versionId);
    if (isRefusal(r)) refused(r);
    return r ?? { versionId, deleteMarker: false };
  }
  const marker = deleteMarkerOf({ tenant: ctx.tenant, bucket, key }, ctx.auth.accessKey);
  const r = await groupStub(ctx.env, place.group).deleteName(place.nhid, marker, info.versioning);
  if (isRefusal(r)) refused(r);
  return r;
}

/**
 * The body must come with an integrity check, as S3 requires: Content-MD5 or (what current SDKs
 * send instead) an x-amz-checksum-* header. Either is verified over the body before anything
 * is deleted.
 */
async function checkedBody(ctx: RequestContext): Promise<string> {
  const bytes = await readBounded(ctx.req, 2 * 1024 * 1024, () => new S3Error("MalformedXML", "The DeleteObjects document is too large"));
  const h = ctx.req.headers;
  const md5 = h.get("content-md5");
  const checksum = requestedChecksum(h, []);
  if (md5 === null && (checksum === null || checksum.expected === null)) {
    throw new S3Error("InvalidRequest", "Missing required header for this request: Content-MD5 or x-amz-checksum-*");
  }
  if (md5 !== null) {
    const actual = btoa(String.fromCharCode(...new Uint8Array(await crypto.subtle.digest("MD5", bytes))));
    if (actual !== md5.trim()) throw new S3Error("BadDigest", "The Content-MD5 you specified did not match what we received.");
  }
  if (checksum?.expected && (await checksumOf(checksum.algorithm, bytes)) !== checksum.expected) throw badDigest(checksum.algorithm);
  return new TextDecoder().decode(bytes);
}

export async function deleteObjects(ctx: RequestContext, bucket: string): Promise<Response> {
  const info = await requireBucket(ctx, bucket);
  const malformed = () => new S3Error("MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema");
  const root = parseXml(await checkedBody(ctx), malformed);
  if (root.name !== "Delete") throw malformed();
  const quiet = (childText(root, "Quiet") ?? "false").trim() === "true";
  const objects = childrenNamed(root, "Object").map((o) => {
    const key = childText(o, "Key");
    if (key === null) throw malformed();
    return { key, versionId: childText(o, "VersionId") };
  });
  if (objects.length === 0) throw malformed();
  if (objects.length > MAX_DELETE_KEYS) throw new S3Error("MalformedXML", `The request may delete at most ${MAX_DELETE_KEYS} keys`);

  const deleted: XmlNode[] = [];
  const errors: XmlNode[] = [];
  const outcome: (XmlNode & { ok: boolean })[] = new Array(objects.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(DELETE_CONCURRENCY, objects.length) }, async () => {
      for (let i = next++; i < objects.length; i = next++) {
        const { key, versionId } = objects[i]!;
        try {
          validateKey(key);
          requireScope(ctx, "write", bucket, key);
          const r = await deleteKey(ctx, info, { bucket, key, versionId: versionIdParam(versionId) });
          outcome[i] = {
            ok: true,
            Key: key,
            VersionId: versionId,
            DeleteMarker: r.deleteMarker ? true : null,
            DeleteMarkerVersionId: r.deleteMarker && versionId === null ? r.versionId : null,
          };
        } catch (e) {
          // One key's failure is that key's error, not the request's.
          const err = e instanceof S3Error ? e : new S3Error("InternalError", String(e instanceof Error ? e.message : e));
          outcome[i] = { ok: false, Key: key, VersionId: versionId, Code: err.code, Message: err.message };
        }
      }
    }),
  );
  for (const { ok, ...node } of outcome) (ok ? deleted : errors).push(node);
  return xmlResponse("DeleteResult", { Deleted: quiet ? [] : deleted, Error: errors });
}
