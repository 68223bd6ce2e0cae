// Public reads: a bucket policy that lets anyone GET some of a bucket's objects (the subset in
// shared/bucket-policy.ts), the public access block that can forbid it, and the anonymous
// requests it lets through. Bucket names are per tenant, so a bucket made public claims its
// name across tenants in the account registry; an anonymous request finds its bucket's owner
// there. Anonymous requests may read (GET, HEAD) and nothing else.

import { S3Error } from "../../../common/s3/errors.ts";
import type { AuthContext } from "../../../common/s3/verify-request.ts";
import { isPublicKey, publicReadOf } from "../../shared/bucket-policy.ts";
import { registryStub, tenantStub, type Env } from "../../shared/env.ts";
import { readBounded } from "../../shared/read-bounded.ts";
import type { BucketInfo, PublicBlock } from "../../tenant/rpc.ts";
import type { Endpoint } from "../router.ts";
import { bucketInfo, forgetBucket } from "./bucket-cache.ts";
import { requireBucket, type RequestContext } from "./context.ts";
import { childText, parseXml, readXmlBody } from "./xml-read.ts";
import { xmlResponse } from "./xml.ts";

const POLICY_BODY_MAX = 20 * 1024;
/** Who owns a public bucket name, remembered this long in each isolate (as bucket info is). */
const OWNER_CACHE_MS = 1_000;
const owners = new Map<string, { tenant: string | null; until: number }>();

export async function putBucketPolicy(ctx: RequestContext, bucket: string): Promise<Response> {
  const info = await requireBucket(ctx, bucket);
  const text = new TextDecoder().decode(await readBounded(ctx.req, POLICY_BODY_MAX, () => new S3Error("PolicyTooLarge", `A bucket policy is at most ${POLICY_BODY_MAX} bytes`)));
  const read = publicReadOf(text, bucket);
  if (info.publicBlock?.blockPublicPolicy) throw new S3Error("AccessDenied", "Access Denied: the bucket's public access block (BlockPublicPolicy) forbids a public policy");
  if (!(await registryStub(ctx.env).claimPublicBucket(bucket, ctx.tenant))) {
    throw new S3Error("BucketAlreadyExists", "Another tenant's public bucket has this name: public bucket names are shared by all tenants", { BucketName: bucket });
  }
  await tenantStub(ctx.env, ctx.tenant).setBucketPolicy(bucket, { text, read });
  forgetBucket(ctx.tenant, bucket);
  owners.delete(bucket);
  return new Response(null, { status: 204 });
}

export async function getBucketPolicy(ctx: RequestContext, bucket: string): Promise<Response> {
  await requireBucket(ctx, bucket);
  const text = await tenantStub(ctx.env, ctx.tenant).getBucketPolicy(bucket);
  if (text === null) throw new S3Error("NoSuchBucketPolicy", "The bucket policy does not exist", { BucketName: bucket });
  return new Response(text, { headers: { "content-type": "application/json" } });
}

export async function deleteBucketPolicy(ctx: RequestContext, bucket: string): Promise<Response> {
  await requireBucket(ctx, bucket);
  await tenantStub(ctx.env, ctx.tenant).setBucketPolicy(bucket, null);
  await registryStub(ctx.env).releasePublicBucket(bucket, ctx.tenant);
  forgetBucket(ctx.tenant, bucket);
  owners.delete(bucket);
  return new Response(null, { status: 204 });
}

const BLOCK_FIELDS = [
  ["BlockPublicAcls", "blockPublicAcls"],
  ["IgnorePublicAcls", "ignorePublicAcls"],
  ["BlockPublicPolicy", "blockPublicPolicy"],
  ["RestrictPublicBuckets", "restrictPublicBuckets"],
] as const;

export async function putPublicAccessBlock(ctx: RequestContext, bucket: string): Promise<Response> {
  await requireBucket(ctx, bucket);
  const malformed = () => new S3Error("MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema");
  const root = parseXml(await readXmlBody(ctx.req, 4096, malformed), malformed);
  if (root.name !== "PublicAccessBlockConfiguration") throw malformed();
  const block = Object.fromEntries(BLOCK_FIELDS.map(([xml, field]) => [field, (childText(root, xml) ?? "false").trim().toLowerCase() === "true"])) as unknown as PublicBlock;
  await tenantStub(ctx.env, ctx.tenant).setPublicAccessBlock(bucket, block);
  forgetBucket(ctx.tenant, bucket);
  return new Response(null, { status: 200 });
}

export async function getPublicAccessBlock(ctx: RequestContext, bucket: string): Promise<Response> {
  const info = await requireBucket(ctx, bucket);
  const b = info.publicBlock;
  if (!b) throw new S3Error("NoSuchPublicAccessBlockConfiguration", "The public access block configuration was not found", { BucketName: bucket });
  return xmlResponse("PublicAccessBlockConfiguration", Object.fromEntries(BLOCK_FIELDS.map(([xml, field]) => [xml, b[field]])));
}

export async function deletePublicAccessBlock(ctx: RequestContext, bucket: string): Promise<Response> {
  await requireBucket(ctx, bucket);
  await tenantStub(ctx.env, ctx.tenant).setPublicAccessBlock(bucket, null);
  forgetBucket(ctx.tenant, bucket);
  return new Response(null, { status: 204 });
}

/** Whether a request carries no credential at all (no Authorization header, no presigned query). */
export function isAnonymous(req: Request, url: URL): boolean {
  return !req.headers.has("authorization") && !url.searchParams.has("X-Amz-Credential") && !url.searchParams.has("X-Amz-Signature");
}

async function ownerOf(env: Env, bucket: string): Promise<string | null> {
  const hit = owners.get(bucket);
  if (hit && hit.until > Date.now()) return hit.tenant;
  const tenant = await registryStub(env).publicBucketTenant(bucket);
  owners.set(bucket, { tenant, until: Date.now() + OWNER_CACHE_MS });
  if (owners.size > 4096) owners.delete(owners.keys().next().value!);
  return tenant;
}

let anonymousKey: Promise<CryptoKey> | null = null;

/**
 * An anonymous read's caller: no access key, and a signing key nobody holds (an anonymous
 * request has no signature to chain from; reads never use one).
 */
async function anonymousAuth(): Promise<AuthContext> {
  anonymousKey ??= crypto.subtle.importKey("raw", crypto.getRandomValues(new Uint8Array(32)), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return { accessKey: "anonymous", payloadHash: "UNSIGNED-PAYLOAD", signingKey: await anonymousKey, scope: "", amzDate: "", seedSignature: "", presigned: false, signedHeaders: [] };
}

/**
 * Who may make an anonymous request, and as which tenant: a GET or HEAD of a key a public
 * bucket's policy opens (and its public access block does not restrict). Anything else is
 * refused as S3 refuses an anonymous request.
 */
export async function anonymousReader(env: Env, ep: Endpoint): Promise<{ tenant: string; auth: AuthContext }> {
  const denied = new S3Error("AccessDenied", "Access Denied");
  if ((ep.op !== "GetObject" && ep.op !== "HeadObject") || ep.read.snapshot !== null) throw denied;
  const tenant = await ownerOf(env, ep.bucket);
  if (tenant === null) throw denied;
  const info: BucketInfo | null = await bucketInfo({ env, tenant }, ep.bucket);
  if (!info || info.publicBlock?.restrictPublicBuckets || !isPublicKey(info.publicRead, ep.key)) throw denied;
  return { tenant, auth: await anonymousAuth() };
}
