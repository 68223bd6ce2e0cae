// The gateway's XML answers as Responses, and S3's timestamp forms. The documents themselves
// are written by common/s3/xml.ts, which the proxy shares.

import type { S3Error } from "../../../common/s3/errors.ts";
import { errorDocument, xmlDocument, type XmlNode } from "../../../common/s3/xml.ts";

export function xmlResponse(root: string, body: XmlNode, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(xmlDocument(root, body), { status, headers: { "content-type": "application/xml", ...headers } });
}

export function errorResponse(err: S3Error, resource: string, requestId: string, head: boolean): Response {
  const headers: Record<string, string> = { "x-amz-request-id": requestId, ...err.headers };
  if (head) return new Response(null, { status: err.status, headers });
  return new Response(errorDocument(err, resource, requestId), { status: err.status, headers: { "content-type": "application/xml", ...headers } });
}

/** S3 timestamps: ISO 8601 with milliseconds, UTC. */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}

/** Last-Modified header form. */
export function httpTime(ms: number): string {
  return new Date(ms).toUTCString();
}
