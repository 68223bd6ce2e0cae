// PutObject: authenticate the body as it streams (signed payload hash, aws-chunked signatures
// and trailers, Content-MD5), chunk it into its groups, then commit one version manifest on the
// name's group. Nothing becomes visible unless every check passed: a failed or interrupted
// upload leaves only unreferenced chunks behind, never a version.

import { base64Encode, type VersionBody } from "../../../common/manifest.ts";
import { groupStub } from "../../shared/env.ts";
import { decodeAwsChunked, type AwsChunkedMode } from "../auth/aws-chunked.ts";
import { STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER } from "../auth/sigv4.ts";
import { ingest } from "../data/ingest.ts";
import { placeOf, requireBucket, validateKey, type RequestContext } from "./context.ts";
import { S3Error } from "./errors.ts";

/** Standard headers S3 keeps with an object and returns on GET/HEAD. */
export const STORED_HEADERS = ["cache-control", "content-disposition", "content-encoding", "content-language", "expires"];
/** S3 limits user metadata to 2 KB (names and values, UTF-8). */
const USER_META_MAX = 2048;
/** Largest single PUT S3 accepts. */
const PUT_MAX = 5 * 1024 ** 3;

export function metadataOf(headers: Headers): { userMeta: Record<string, string>; httpMeta: Record<string, string> } {
  const userMeta: Record<string, string> = {};
  const httpMeta: Record<string, string> = {};
  let metaBytes = 0;
  for (const [name, value] of headers) {
    if (name.startsWith("x-amz-meta-")) {
      const k = name.slice("x-amz-meta-".length);
      userMeta[k] = value;
      metaBytes += new TextEncoder().encode(k + value).length;
    } else if (STORED_HEADERS.includes(name)) {
      // aws-chunked is transfer framing, not a property of the object.
      const v = name === "content-encoding" ? value.split(",").map((s) => s.trim()).filter((s) => s && s !== "aws-chunked").join(", ") : value;
      if (v) httpMeta[name] = v;
    }
  }
  if (metaBytes > USER_META_MAX) throw new S3Error("InvalidArgument", `user metadata is ${metaBytes} bytes; S3 allows ${USER_META_MAX}`);
  return { userMeta, httpMeta };
}

function declaredLength(ctx: RequestContext, streaming: boolean): number {
  const h = ctx.req.headers;
  const raw = streaming ? h.get("x-amz-decoded-content-length") : h.get("content-length");
  if (raw === null) {
    if (streaming) throw new S3Error("MissingContentLength", "x-amz-decoded-content-length is required with aws-chunked bodies");
    throw new S3Error("MissingContentLength", "You must provide the Content-Length HTTP header.");
  }
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new S3Error("InvalidArgument", `invalid length ${raw}`);
  if (n > PUT_MAX) throw new S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size (5 GiB for a single PUT)");
  return n;
}

function contentMd5(headers: Headers): string | null {
  const v = headers.get("content-md5");
  if (v === null) return null;
  let bytes: string;
  try {
    bytes = atob(v.trim());
  } catch {
    throw new S3Error("InvalidDigest", "The Content-MD5 you specified was invalid.");
  }
  if (bytes.length !== 16) throw new S3Error("InvalidDigest", "The Content-MD5 you specified was invalid.");
  return [...bytes].map((c) => c.charCodeAt(0).toString(16).padStart(2, "0")).join("");
}

export async function putObject(ctx: RequestContext, bucket: string, key: string): Promise<Response> {
  validateKey(key);
  const bucketCheck = requireBucket(ctx, bucket);
  bucketCheck.catch(() => {});
  const h = ctx.req.headers;
  const payloadHash = ctx.auth.payloadHash;
  const streaming = payloadHash.startsWith("STREAMING-");
  const length = declaredLength(ctx, streaming);
  const md5Expected = contentMd5(h);
  const { userMeta, httpMeta } = metadataOf(h);
  await bucketCheck;

  let body = ctx.req.body;
  if (streaming) {
    if (![STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER].includes(payloadHash)) {
      throw new S3Error("InvalidArgument", `unsupported x-amz-content-sha256 value ${payloadHash}`);
    }
    if (!body) throw new S3Error("IncompleteBody", "aws-chunked request has no body");
    body = decodeAwsChunked(body, {
      mode: payloadHash as AwsChunkedMode,
      decodedLength: length,
      auth: ctx.auth,
      trailerNames: (h.get("x-amz-trailer") ?? "").split(",").map((s) => s.trim().toLowerCase()).filter(Boolean),
    }).stream;
  }
  const signedHash = /^[0-9a-f]{64}$/i.test(payloadHash) ? payloadHash.toLowerCase() : null;
  const result = await ingest(ctx.env, ctx.cfg, body, signedHash !== null, length);
  if (result.size !== length) {
    throw new S3Error("IncompleteBody", `You did not provide the number of bytes specified by the Content-Length HTTP header (${result.size} of ${length})`);
  }
  if (signedHash !== null && result.sha256 !== signedHash) {
    throw new S3Error("XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed.", {
      ClientComputedContentSHA256: signedHash,
      S3ComputedContentSHA256: result.sha256 ?? "",
    });
  }
  if (md5Expected !== null && md5Expected !== result.md5) {
    throw new S3Error("BadDigest", "The Content-MD5 you specified did not match what we received.");
  }

  const place = await placeOf(ctx, bucket, key);
  const vbody: VersionBody = {
    tenant: ctx.tenant,
    bucket,
    key,
    size: result.size,
    etag: result.md5,
    contentType: h.get("content-type") ?? "binary/octet-stream",
    userMeta,
    httpMeta,
    chunks: result.chunks,
    inline: result.inline ? base64Encode(result.inline) : null,
    deleteMarker: false,
    creator: ctx.auth.accessKey,
  };
  // The manifest goes to its targets while the last chunks are still being saved; the group
  // commits the version only once `chunksStored` resolves (a callback over RPC into this request).
  const chunksStored = () => result.stored;
  await Promise.all([
    result.stored,
    groupStub(ctx.env, place.group).putVersion(place.group, place.nhid, place.shard, vbody, result.chunks.length > 0 ? chunksStored : null),
  ]);
  return new Response(null, { status: 200, headers: { etag: `"${result.md5}"` } });
}
