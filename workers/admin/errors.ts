// The admin API's errors: JSON `{ "error": code, "message": ... }` with an HTTP status, so that
// the CLI and scripts can act on the code and show the message.

import { readBounded } from "../shared/read-bounded.ts";

export class AdminError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body, null, 2) + "\n", { status, headers: { "content-type": "application/json" } });
}

export function errorJson(e: AdminError): Response {
  const res = json({ error: e.code, message: e.message }, e.status);
  if (e.status === 401) res.headers.set("www-authenticate", 'Bearer realm="edgestore-admin"');
  return res;
}

/** Admin bodies are small definitions (a tenant, a key's scope): a cap keeps them in memory safely. */
const BODY_MAX = 64 * 1024;

/** The request's JSON object body ({} when empty); 400 when it is not a JSON object, 413 past BODY_MAX. */
export async function bodyOf(req: Request): Promise<Record<string, unknown>> {
  const bytes = await readBounded(req, BODY_MAX, () => new AdminError(413, "BodyTooLarge", `an admin request body is at most ${BODY_MAX} bytes`));
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new AdminError(400, "MalformedJSON", "the request body is not UTF-8");
  }
  if (text.trim() === "") return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new AdminError(400, "MalformedJSON", "the request body is not valid JSON");
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new AdminError(400, "MalformedJSON", "the request body must be a JSON object");
  return v as Record<string, unknown>;
}
