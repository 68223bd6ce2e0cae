// How the proxy answers an error: S3's XML body and status, written by common/s3/ as the
// gateway's are. Its own refusals are S3Errors; an error its session with the cluster reported
// is passed on with the code it came with, which need not be one of S3's.

import type { ServerResponse } from "node:http";
import { isS3ErrorCode, S3Error } from "../../common/s3/errors.ts";
import { errorDocument } from "../../common/s3/xml.ts";

/** An error from further away (the cluster's session, the network), relayed with its own code. */
export class RelayedError extends Error {
  readonly code: string;
  readonly status: number;

  constructor(code: string, message: string) {
    super(message);
    this.code = code;
    // A code S3's table does not know is nothing the client could act on: 500.
    this.status = 500;
  }
}

/** A relayed code as the S3Error of that code when S3 has one, so its status is S3's. */
export function relayed(code: string, message: string): S3Error | RelayedError {
  return isS3ErrorCode(code) ? new S3Error(code, message) : new RelayedError(code, message);
}

/** The request an error answers: what S3 names in the error document, and whether it may have a body. */
export interface Answering {
  resource: string;
  requestId: string;
  method: string;
}

/** Answer with an S3 error, if the response has not started; otherwise all that is left is to cut the connection. */
export function sendError(res: ServerResponse, e: S3Error | RelayedError, { resource, requestId, method }: Answering): number {
  if (res.headersSent) {
    res.destroy(e);
    return res.statusCode;
  }
  const body = method === "HEAD" ? "" : errorDocument(e, resource, requestId);
  const headers = e instanceof S3Error ? e.headers : {};
  res.writeHead(e.status, { ...headers, "content-type": "application/xml", "content-length": Buffer.byteLength(body), "x-amz-request-id": requestId });
  res.end(body);
  return e.status;
}
