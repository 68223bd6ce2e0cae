// CORS for browser apps: a bucket's rules (Put/Get/DeleteBucketCors, kept by the tenant's
// directory), the preflight OPTIONS a browser sends before a request it may not make on its own,
// and the Access-Control-* headers on the actual responses.
//
// Bucket names are per tenant, and a preflight carries no credentials: its tenant is the one
// whose access key a presigned URL names (X-Amz-Credential, in the preflight's URL as in the
// request's). A preflight for a request signed in a header has no key to go by, and is refused.

import { S3Error } from "../../../common/s3/errors.ts";
import type { Env } from "../../shared/env.ts";
import { tenantStub } from "../../shared/env.ts";
import { CORS_METHODS, CORS_RULES_MAX, corsHeaders, matchingRule, type CorsAsk, type CorsMethod, type CorsRule } from "../../shared/cors-rules.ts";
import type { BucketInfo } from "../../tenant/rpc.ts";
import { lookupCredential } from "../auth/credentials.ts";
import { bucketInfo, forgetBucket } from "./bucket-cache.ts";
import { requireBucket, type RequestContext } from "./context.ts";
import { childrenNamed, childText, parseXml, readXmlBody } from "./xml-read.ts";
import { xmlResponse } from "./xml.ts";

const CORS_BODY_MAX = 64 * 1024;

/** A CORSConfiguration document as S3 takes it: the rules, or the S3 error S3 gives. */
export function corsRulesOf(xml: string): CorsRule[] {
  const malformed = () => new S3Error("MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema");
  const root = parseXml(xml, malformed);
  if (root.name !== "CORSConfiguration") throw malformed();
  const rules = childrenNamed(root, "CORSRule").map((r): CorsRule => {
    const all = (name: string) => childrenNamed(r, name).map((c) => c.text.trim());
    const methods = all("AllowedMethod");
    for (const m of methods) if (!CORS_METHODS.includes(m as CorsMethod)) throw new S3Error("InvalidRequest", `Found unsupported HTTP method in CORS config. Unsupported method is ${m}`);
    const origins = all("AllowedOrigin");
    if (methods.length === 0 || origins.length === 0) throw malformed();
    for (const o of [...origins, ...all("AllowedHeader")]) {
      if (o.split("*").length > 2) throw new S3Error("InvalidRequest", `AllowedOrigin and AllowedHeader may hold at most one wildcard: "${o}"`);
    }
    const age = childText(r, "MaxAgeSeconds");
    if (age !== null && !/^\d+$/.test(age.trim())) throw malformed();
    return { id: childText(r, "ID"), allowedOrigins: origins, allowedMethods: methods as CorsMethod[], allowedHeaders: all("AllowedHeader"), exposeHeaders: all("ExposeHeader"), maxAgeSeconds: age === null ? null : Number(age.trim()) };
  });
  if (rules.length === 0) throw malformed();
  if (rules.length > CORS_RULES_MAX) throw new S3Error("InvalidRequest", `A CORS configuration holds at most ${CORS_RULES_MAX} rules`);
  return rules;
}

export async function putBucketCors(ctx: RequestContext, bucket: string): Promise<Response> {
  await requireBucket(ctx, bucket);
  const tooLarge = () => new S3Error("MaxMessageLengthExceeded", "Your request was too big.");
  const rules = corsRulesOf(await readXmlBody(ctx.req, CORS_BODY_MAX, tooLarge));
  await tenantStub(ctx.env, ctx.tenant).setBucketCors(bucket, rules);
  forgetBucket(ctx.tenant, bucket);
  return new Response(null, { status: 200 });
}

export async function getBucketCors(ctx: RequestContext, bucket: string): Promise<Response> {
  const info = await requireBucket(ctx, bucket);
  if (!info.cors) throw new S3Error("NoSuchCORSConfiguration", "The CORS configuration does not exist", { BucketName: bucket });
  return xmlResponse("CORSConfiguration", {
    CORSRule: info.cors.map((r) => ({ ID: r.id, AllowedHeader: r.allowedHeaders, AllowedMethod: r.allowedMethods, AllowedOrigin: r.allowedOrigins, ExposeHeader: r.exposeHeaders, MaxAgeSeconds: r.maxAgeSeconds })),
  });
}

export async function deleteBucketCors(ctx: RequestContext, bucket: string): Promise<Response> {
  await requireBucket(ctx, bucket);
  await tenantStub(ctx.env, ctx.tenant).setBucketCors(bucket, null);
  forgetBucket(ctx.tenant, bucket);
  return new Response(null, { status: 204 });
}

/** The Access-Control-* headers an actual request from a page gets, by its bucket's rules (none without an Origin or a matching rule). */
export function corsFor(req: Request, info: Pick<BucketInfo, "cors"> | null): Record<string, string> {
  const origin = req.headers.get("origin");
  if (origin === null || !info?.cors) return {};
  const ask: CorsAsk = { origin, method: req.method, headers: [] };
  const rule = matchingRule(info.cors, ask);
  return rule ? corsHeaders(rule, ask, false) : {};
}

const forbidden = (why: string) => new S3Error("AccessForbidden", `CORSResponse: ${why}`);

/** A browser's preflight for a request to `bucket`: allowed by a rule of the bucket, or 403. */
export async function preflight(req: Request, url: URL, target: { env: Env; bucket: string | null }): Promise<Response> {
  const origin = req.headers.get("origin");
  const method = req.headers.get("access-control-request-method");
  if (origin === null) throw new S3Error("BadRequest", "Insufficient information. Origin request header needed.");
  if (method === null) throw new S3Error("BadRequest", "Insufficient information. Access-Control-Request-Method request header needed.");
  if (target.bucket === null) throw forbidden("CORS is not enabled for this resource.");
  const credential = url.searchParams.get("X-Amz-Credential");
  const accessKey = credential?.split("/")[0] ?? null;
  const cred = accessKey ? await lookupCredential(target.env, accessKey) : null;
  if (!cred) throw forbidden("This CORS request names no tenant: send it to a presigned URL, whose X-Amz-Credential names one.");
  const info = await bucketInfo({ env: target.env, tenant: cred.tenant }, target.bucket);
  if (!info?.cors) throw forbidden("CORS is not enabled for this bucket.");
  const headers = (req.headers.get("access-control-request-headers") ?? "")
    .split(",")
    .map((h) => h.trim().toLowerCase())
    .filter((h) => h !== "");
  const ask: CorsAsk = { origin, method, headers };
  const rule = matchingRule(info.cors, ask);
  if (!rule) throw forbidden("This CORS request is not allowed. This is usually because the evaluation of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.");
  return new Response(null, { status: 200, headers: corsHeaders(rule, ask, true) });
}
