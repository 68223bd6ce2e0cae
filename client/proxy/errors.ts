// Errors the proxy answers itself, in S3's XML form, with the status S3 gives each code. The
// codes and statuses are the gateway's own table, so a refusal reads the same whether the
// proxy or the cluster made it.

import type { ServerResponse } from "node:http";
import { statusOf, type S3ErrorCode } from "../../workers/gateway/s3/errors.ts";

export class ProxyError extends Error {
  readonly code: string;
  readonly status: number;

  constructor(code: string, message: string, status?: number) {
    super(message);
    this.code = code;
    // A code the table does not know came from further away (the session, the network): 500.
    this.status = status ?? (statusOf(code as S3ErrorCode) as number | undefined) ?? 500;
  }
}

function xmlEscape(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;" })[c]!);
}

export function errorXml(code: string, message: string, resource: string, requestId: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${xmlEscape(code)}</Code><Message>${xmlEscape(message)}</Message><Resource>${xmlEscape(resource)}</Resource><RequestId>${xmlEscape(requestId)}</RequestId></Error>`;
}

/** Answer with an S3 error, if the response has not started; otherwise all that is left is to cut the connection. */
export function sendError(res: ServerResponse, e: ProxyError, resource: string, requestId: string, method: string): number {
  if (res.headersSent) {
    res.destroy(e);
    return res.statusCode;
  }
  const body = method === "HEAD" ? "" : errorXml(e.code, e.message, resource, requestId);
  res.writeHead(e.status, { "content-type": "application/xml", "content-length": Buffer.byteLength(body), "x-amz-request-id": requestId });
  res.end(body);
  return e.status;
}
