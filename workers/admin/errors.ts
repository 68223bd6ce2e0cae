// The admin API's errors: JSON `{ "error": code, "message": ... }` with an HTTP status, so that
// the CLI and scripts can act on the code and show the message.

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

/** The request's JSON object body ({} when empty); 400 when it is not a JSON object. */
export async function bodyOf(req: Request): Promise<Record<string, unknown>> {
  const text = await req.text();
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
