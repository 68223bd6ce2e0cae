// The policy document of a browser form upload (POST Object): base64 JSON naming when it
// expires and the conditions every form field must meet. As S3 checks it: every field the form
// sends (but the signature, the policy itself, the file and x-ignore-* fields) must be named by
// a condition, and every condition must hold; content-length-range bounds the file's size.

import { S3Error } from "../../../common/s3/errors.ts";

export interface PostPolicy {
  expiration: number;
  /** Bounds on the file's size, if the policy sets them. */
  length: { min: number; max: number } | null;
  /** Checks the fields (names lower-cased) against the conditions; throws AccessDenied naming the first that fails. */
  check(fields: ReadonlyMap<string, string>, bucket: string): void;
}

type Condition = { kind: "eq" | "starts-with"; field: string; value: string } | { kind: "length"; min: number; max: number };

const denied = (why: string) => new S3Error("AccessDenied", `Invalid according to Policy: ${why}`);
const malformedPolicy = (why: string) => new S3Error("InvalidPolicyDocument", `Invalid Policy: ${why}`);

/** Fields a policy need not name. */
const EXEMPT = new Set(["x-amz-signature", "policy", "file"]);

function conditionOf(c: unknown): Condition {
  if (Array.isArray(c)) {
    const [op, a, b] = c as unknown[];
    if (op === "content-length-range") {
      if (typeof a !== "number" || typeof b !== "number" || a < 0 || b < a) throw malformedPolicy("content-length-range takes two whole numbers, min then max");
      return { kind: "length", min: a, max: b };
    }
    if ((op === "eq" || op === "starts-with") && typeof a === "string" && a.startsWith("$") && typeof b === "string") return { kind: op, field: a.slice(1).toLowerCase(), value: b };
    throw malformedPolicy(`unknown condition ${JSON.stringify(c)}`);
  }
  if (typeof c === "object" && c !== null) {
    const entries = Object.entries(c);
    if (entries.length === 1 && typeof entries[0]![1] === "string") return { kind: "eq", field: entries[0]![0].toLowerCase(), value: entries[0]![1] };
  }
  throw malformedPolicy(`unknown condition ${JSON.stringify(c)}`);
}

export function parsePolicy(base64: string): PostPolicy {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(Uint8Array.from(atob(base64), (ch) => ch.charCodeAt(0))));
  } catch {
    throw malformedPolicy("the policy is not base64-encoded JSON");
  }
  if (typeof doc !== "object" || doc === null) throw malformedPolicy("the policy is not a JSON object");
  const { expiration, conditions } = doc as { expiration?: unknown; conditions?: unknown };
  const expires = typeof expiration === "string" ? Date.parse(expiration) : NaN;
  if (!Number.isFinite(expires)) throw malformedPolicy("expiration is an ISO 8601 time");
  if (!Array.isArray(conditions)) throw malformedPolicy("conditions is a list");
  const conds = conditions.map(conditionOf);
  const lengths = conds.filter((c): c is Extract<Condition, { kind: "length" }> => c.kind === "length");
  return {
    expiration: expires,
    length: lengths.length > 0 ? { min: Math.max(...lengths.map((l) => l.min)), max: Math.min(...lengths.map((l) => l.max)) } : null,
    check(fields, bucket) {
      const value = (field: string) => (field === "bucket" ? bucket : (fields.get(field) ?? null));
      for (const c of conds) {
        if (c.kind === "length") continue;
        const v = value(c.field);
        const ok = v !== null && (c.kind === "eq" ? v === c.value : v.startsWith(c.value));
        if (!ok) throw denied(`Policy Condition failed: ["${c.kind}", "$${c.field}", "${c.value}"]`);
      }
      const named = new Set(conds.flatMap((c) => (c.kind === "length" ? [] : [c.field])));
      for (const name of fields.keys()) {
        if (EXEMPT.has(name) || name.startsWith("x-ignore-") || named.has(name)) continue;
        throw denied(`Extra input fields: ${name}`);
      }
    },
  };
}
