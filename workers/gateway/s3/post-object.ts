// POST Object: a browser form uploads a file straight into a bucket, under a policy document the
// bucket's owner signed (post-policy.ts). The form carries its own credential: the access key in
// x-amz-credential names the tenant (bucket names are per tenant), its secret signs the policy.
// The fields are read first, the file streams into the store after them (data/form-data.ts),
// and the object is written as a PUT of the same fields would write it.

import { S3Error } from "../../../common/s3/errors.ts";
import { PUT_MAX } from "../../../common/s3/put-object.ts";
import { ALGORITHM, cachedSigningKey, constantTimeEqual, parseCredential, signHex } from "../../../common/s3/sigv4.ts";
import type { AuthContext } from "../../../common/s3/verify-request.ts";
import type { Env } from "../../shared/env.ts";
import { lookupCredential } from "../auth/credentials.ts";
import { readFormUpload, type FormUpload } from "../data/form-data.ts";
import { ingest } from "../data/ingest.ts";
import type { RequestContext } from "./context.ts";
import { requireBucket, requireScope, validateKey } from "./context.ts";
import type { KeyScope } from "../../shared/key-scope.ts";
import { commitObject, objectOptionsOf } from "./object-put.ts";
import { parsePolicy, type PostPolicy } from "./post-policy.ts";
import { requireRoom } from "./quota.ts";
import { xmlResponse } from "./xml.ts";
import { awaitedLater } from "../../../common/deferred.ts";
import { tagsOfXml } from "./tagging.ts";
import { OBJECT_TAGS_MAX } from "../../shared/tags.ts";
import { readStreamBounded } from "../../shared/read-bounded.ts";

/** S3's cap on the fields before the file. */
const FIELDS_MAX = 20 * 1024;
/** Fields that stand for a PUT's headers of the same name (as S3 takes them from a form). */
const AS_HEADERS = /^(content-type|cache-control|content-disposition|content-encoding|content-language|expires|x-amz-.*)$/;

/** A form upload whose policy and signature held: who sent it, its fields and its file still to read. */
export interface PostForm {
  auth: AuthContext;
  tenant: string;
  scope: KeyScope | null;
  upload: FormUpload;
  policy: PostPolicy;
}

/** A form's fields, read; the file not yet. */
export function readForm(req: Request, boundary: string): Promise<FormUpload> {
  if (!req.body) throw new S3Error("MalformedPOSTRequest", "The body of your POST request is not well-formed multipart/form-data.");
  return readFormUpload(req.body, boundary, FIELDS_MAX);
}

/** Check a form's credential, signature, policy and expiry. */
export async function verifiedForm(upload: FormUpload, at: { env: Env; bucket: string }): Promise<PostForm> {
  const f = upload.fields;
  const field = (name: string) => {
    const v = f.get(name);
    if (v === undefined) throw new S3Error("InvalidArgument", `Bucket POST must contain a field named '${name}'.`, { ArgumentName: name });
    return v;
  };
  if (field("x-amz-algorithm") !== ALGORITHM) throw new S3Error("InvalidArgument", `x-amz-algorithm must be ${ALGORITHM}`, { ArgumentName: "x-amz-algorithm" });
  const credential = parseCredential(field("x-amz-credential"));
  if (!credential || credential.service !== "s3") throw new S3Error("InvalidArgument", "x-amz-credential is not a credential this gateway signs with", { ArgumentName: "x-amz-credential" });
  if (credential.region !== at.env.S3_REGION) throw new S3Error("AuthorizationHeaderMalformed", `the region '${credential.region}' is wrong; expecting '${at.env.S3_REGION}'`, { Region: at.env.S3_REGION });
  const cred = await lookupCredential(at.env, credential.accessKey);
  if (!cred) throw new S3Error("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.");
  const policyText = field("policy");
  const signingKey = await cachedSigningKey(cred.secret, credential.date, credential.region);
  const signature = field("x-amz-signature");
  if (!constantTimeEqual(await signHex(signingKey, policyText), signature)) throw new S3Error("SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.");
  const policy = parsePolicy(policyText);
  if (Date.now() > policy.expiration) throw new S3Error("AccessDenied", "Invalid according to Policy: Policy expired.");
  policy.check(f, at.bucket);
  const auth: AuthContext = {
    accessKey: credential.accessKey,
    payloadHash: "UNSIGNED-PAYLOAD",
    signingKey,
    scope: `${credential.date}/${credential.region}/s3/aws4_request`,
    amzDate: field("x-amz-date"),
    seedSignature: signature,
    presigned: false,
    signedHeaders: [],
  };
  return { auth, tenant: cred.tenant, scope: cred.scope, upload, policy };
}

/** Store the form's file under its key, and answer as success_action_status (or _redirect) asks. */
/**
 * A refused form upload still reads what is left of a small form before answering: a client
 * that is still sending the file would otherwise find the connection closed under it (EPIPE)
 * and never see the error. Past this much it is cut off; an attacker gets nothing held open.
 */
const REFUSED_FORM_DRAIN = 1024 * 1024;

export async function postObject(ctx: RequestContext, bucket: string, form: PostForm): Promise<Response> {
  try {
    return await storeForm(ctx, bucket, form);
  } catch (e) {
    // Past the limit the read stops (the stream is cancelled); a stream ingest already took
    // (locked) or a client gone away fails here: either way the refusal is still the answer.
    await readStreamBounded(form.upload.file, REFUSED_FORM_DRAIN, () => new Error("refused form left unread")).catch(() => {});
    throw e;
  }
}

async function storeForm(ctx: RequestContext, bucket: string, form: PostForm): Promise<Response> {
  const f = form.upload.fields;
  const rawKey = f.get("key");
  if (rawKey === undefined) throw new S3Error("InvalidArgument", "Bucket POST must contain a field named 'key'.", { ArgumentName: "key" });
  const key = rawKey.replaceAll("${filename}", form.upload.filename ?? "");
  validateKey(key);
  requireScope(ctx, "write", bucket, key);
  const info = awaitedLater(requireBucket(ctx, bucket));
  // The form's fields stand for a PUT's headers: the same options, refusals and metadata.
  const h = new Headers();
  for (const [name, value] of f) if (AS_HEADERS.test(name)) h.set(name, value);
  const acl = f.get("acl");
  if (acl !== undefined) h.set("x-amz-acl", acl);
  const tagging = f.get("tagging");
  const opts = { ...objectOptionsOf(h, ctx.cfg), ...(tagging !== undefined ? { tags: tagsOfXml(tagging, OBJECT_TAGS_MAX) } : {}) };
  const max = Math.min(form.policy.length?.max ?? PUT_MAX, PUT_MAX);
  await info;
  const result = await ingest(ctx.env, ctx.cfg, form.upload.file, { sha256: false, sizeHint: PUT_MAX, checksum: null, replicas: opts.replicas, maxSize: max });
  if (form.policy.length && result.size < form.policy.length.min) throw new S3Error("EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size", { MinSizeAllowed: String(form.policy.length.min), ProposedSize: String(result.size) });
  await requireRoom(ctx, result.size);
  const headers = await commitObject(ctx, { bucket, key }, { opts, received: { result, checksum: null }, info });
  const redirect = f.get("success_action_redirect") ?? f.get("redirect");
  if (redirect) {
    const to = new URL(redirect);
    to.searchParams.set("bucket", bucket);
    to.searchParams.set("key", key);
    to.searchParams.set("etag", headers.etag!);
    return new Response(null, { status: 303, headers: { ...headers, location: to.toString() } });
  }
  const status = f.get("success_action_status");
  if (status === "201") return xmlResponse("PostResponse", { Location: `${ctx.url.origin}/${bucket}/${encodeURI(key)}`, Bucket: bucket, Key: key, ETag: headers.etag }, 201, headers);
  return new Response(null, { status: status === "200" ? 200 : 204, headers });
}
