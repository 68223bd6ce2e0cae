// DeleteObject and DeleteObjects: a delete is a new version of the name, a delete marker,
// stamped and recorded by the name's group like any other. Deleting a name that has no current
// version is a no-op that still succeeds, as S3 does.

import type { VersionBody } from "../../../common/manifest.ts";
import { groupStub } from "../../shared/env.ts";
import { checksumOf, requestedChecksum, badDigest } from "./checksum.ts";
import { placeOf, requireBucket, validateKey, type RequestContext } from "./context.ts";
import { S3Error } from "./errors.ts";
import { childrenNamed, childText, parseXml, readBounded, xmlResponse, type XmlNode } from "./xml.ts";

/** S3's limit on keys per DeleteObjects request. */
const MAX_DELETE_KEYS = 1000;
/** Deletes in flight at once for one DeleteObjects request. */
const DELETE_CONCURRENCY = 16;

export async function deleteObject(ctx: RequestContext, bucket: string, key: string): Promise<Response> {
  validateKey(key);
  await requireBucket(ctx, bucket);
  await deleteKey(ctx, bucket, key);
  return new Response(null, { status: 204 });
}

async function deleteKey(ctx: RequestContext, bucket: string, key: string): Promise<void> {
  const place = await placeOf(ctx, bucket, key);
  const marker: VersionBody = {
    tenant: ctx.tenant,
    bucket,
    key,
    size: 0,
    etag: "",
    contentType: "",
    userMeta: {},
    httpMeta: {},
    chunks: [],
    inline: null,
    deleteMarker: true,
    creator: ctx.auth.accessKey,
  };
  await groupStub(ctx.env, place.group).deleteName(place.group, place.nhid, place.shard, marker);
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
  await requireBucket(ctx, bucket);
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
          if (versionId !== null) throw new S3Error("NotImplemented", "Deleting a specific version is not implemented yet");
          validateKey(key);
          await deleteKey(ctx, bucket, key);
          outcome[i] = { ok: true, Key: key };
        } catch (e) {
          // One key's failure is that key's error, not the request's.
          const err = e instanceof S3Error ? e : new S3Error("InternalError", String(e instanceof Error ? e.message : e));
          outcome[i] = { ok: false, Key: key, Code: err.code, Message: err.message };
        }
      }
    }),
  );
  for (const { ok, ...node } of outcome) (ok ? deleted : errors).push(node);
  return xmlResponse("DeleteResult", { Deleted: quiet ? [] : deleted, Error: errors });
}
