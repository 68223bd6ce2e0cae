// JSON in and out for the extension API (snapshots, queries). Errors stay S3's XML errors, so
// every client parses failures one way.

import { S3Error } from "../../../common/s3/errors.ts";
import { readBounded } from "../../shared/read-bounded.ts";

/** Request bodies here are definitions, never data: a small cap keeps them in memory safely. */
const JSON_MAX_BYTES = 256 * 1024;

export async function readJson(req: Request): Promise<Record<string, unknown>> {
  const bytes = await readBounded(req, JSON_MAX_BYTES, () => new S3Error("InvalidRequest", `a JSON body is at most ${JSON_MAX_BYTES} bytes`));
  if (bytes.length === 0) return {};
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes));
  } catch (e) {
    throw new S3Error("MalformedJSON", `The request body is not valid JSON: ${String(e)}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new S3Error("MalformedJSON", "The request body must be a JSON object");
  return v as Record<string, unknown>;
}

export function jsonResponse(value: unknown, status = 200): Response {
  return new Response(JSON.stringify(value, null, 1), { status, headers: { "content-type": "application/json" } });
}

export function bad(field: string, why: string): S3Error {
  return new S3Error("InvalidArgument", `${field}: ${why}`, { ArgumentName: field });
}

export function optionalString(o: Record<string, unknown>, field: string): string | undefined {
  const v = o[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw bad(field, "must be a string");
  return v;
}

export function optionalArray(o: Record<string, unknown>, field: string): unknown[] | undefined {
  const v = o[field];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw bad(field, "must be an array");
  return v;
}
