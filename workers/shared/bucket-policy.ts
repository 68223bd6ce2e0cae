// The subset of S3 bucket policies this store enforces: statements that let anyone read objects
// of the bucket, or of some prefixes of it (Effect Allow, Principal "*", Action s3:GetObject,
// Resource arn:aws:s3:::bucket/prefix*). Anything a policy could say beyond that (Deny, other
// principals or actions, conditions) is refused when the policy is put, never stored and
// ignored: a bucket's owner must not believe a policy protects what it does not.

import { S3Error } from "../../common/s3/errors.ts";

/** What a stored policy allows: anonymous GET and HEAD of keys under these prefixes ("" for every key). */
export interface PublicRead {
  prefixes: string[];
}

const POLICY_MAX = 20 * 1024;
const malformed = (why: string) => new S3Error("MalformedPolicy", why);
const unsupported = (why: string) => new S3Error("NotImplemented", `This policy cannot be enforced here: ${why}. Only Allow statements granting s3:GetObject to Principal "*" on the bucket's objects are supported`);

const listOf = (v: unknown): unknown[] => (Array.isArray(v) ? v : [v]);

/** Parse and check a policy document for `bucket`; what it grants. */
export function publicReadOf(text: string, bucket: string): PublicRead {
  if (new TextEncoder().encode(text).length > POLICY_MAX) throw new S3Error("PolicyTooLarge", `A bucket policy is at most ${POLICY_MAX} bytes`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw malformed("Policies must be valid JSON and the first byte must be '{'");
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw malformed("Policies must be valid JSON and the first byte must be '{'");
  const { Statement } = doc as { Statement?: unknown };
  if (Statement === undefined) throw malformed("Missing required field Statement");
  const prefixes: string[] = [];
  for (const s of listOf(Statement)) {
    if (typeof s !== "object" || s === null) throw malformed("Statement is not an object");
    const st = s as Record<string, unknown>;
    if (st.Effect !== "Allow") throw unsupported(`Effect ${JSON.stringify(st.Effect)}`);
    if (st.Condition !== undefined || st.NotAction !== undefined || st.NotResource !== undefined || st.NotPrincipal !== undefined) throw unsupported("conditions and Not* elements");
    const principal = st.Principal;
    const anyone = principal === "*" || (typeof principal === "object" && principal !== null && listOf((principal as { AWS?: unknown }).AWS).every((p) => p === "*"));
    if (!anyone) throw unsupported(`Principal ${JSON.stringify(principal)}`);
    const actions = listOf(st.Action);
    if (actions.length === 0 || !actions.every((a) => a === "s3:GetObject")) throw unsupported(`Action ${JSON.stringify(st.Action)}`);
    for (const r of listOf(st.Resource)) {
      const arn = `arn:aws:s3:::${bucket}/`;
      if (typeof r !== "string" || !r.startsWith(arn)) throw malformed(`Policy has invalid resource: ${JSON.stringify(r)} (this bucket's objects are ${arn}...)`);
      const pattern = r.slice(arn.length);
      if (!pattern.endsWith("*") || pattern.slice(0, -1).includes("*") || pattern.includes("?")) throw unsupported(`Resource ${r}: a key prefix followed by one *`);
      prefixes.push(pattern.slice(0, -1));
    }
  }
  if (prefixes.length === 0) throw malformed("Policy grants nothing");
  return { prefixes };
}

/** Whether `key` is readable by anyone under `read`. */
export function isPublicKey(read: PublicRead | undefined, key: string): boolean {
  return read !== undefined && read.prefixes.some((p) => key.startsWith(p));
}
