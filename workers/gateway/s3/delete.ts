// DeleteObject: a delete is a new version of the name, a delete marker, stamped and recorded by
// the name's group like any other. Deleting a name that has no current version is a no-op that
// still answers 204, as S3 does.

import type { VersionBody } from "../../../common/manifest.ts";
import { groupStub } from "../../shared/env.ts";
import { placeOf, requireBucket, validateKey, type RequestContext } from "./context.ts";

export async function deleteObject(ctx: RequestContext, bucket: string, key: string): Promise<Response> {
  validateKey(key);
  await requireBucket(ctx, bucket);
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
  return new Response(null, { status: 204 });
}
