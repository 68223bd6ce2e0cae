// The gateway's side of SigV4 verification (common/s3/verify-request.ts): a workerd Request as
// the verifier reads it. Two runtime rewrites are undone here so that signatures over them verify.

import { verifySigV4, type AuthContext, type SignedRequest, type VerifyOptions } from "../../../common/s3/verify-request.ts";

/** Verifies a SigV4-signed S3 request; throws S3Error as verifySigV4 does. */
export function verifyRequest(req: Request, url: URL, opts: VerifyOptions): Promise<AuthContext> {
  return verifySigV4(signedRequestOf(req, url), opts);
}

function signedRequestOf(req: Request, url: URL): SignedRequest {
  return {
    method: req.method,
    path: url.pathname,
    search: url.search,
    header(name) {
      const v = name === "accept-encoding" ? clientAcceptEncoding(req) : req.headers.get(name);
      // The Host header is not always exposed on a constructed Request; the URL carries it.
      if (v === null && name === "host") return [url.host];
      return v === null ? [] : [v];
    },
    headerNames: () => req.headers.keys(),
  };
}

/**
 * The Accept-Encoding the client sent. The Workers runtime replaces the header with its own
 * ("br, gzip") before the Worker sees it and keeps the original in `request.cf`; clients such as
 * rclone sign the header, so only the original verifies. "" in `cf` means the client sent none.
 */
function clientAcceptEncoding(req: Request): string | null {
  const original = (req as { cf?: { clientAcceptEncoding?: string } }).cf?.clientAcceptEncoding;
  if (original !== undefined) return original;
  return req.headers.get("accept-encoding");
}
