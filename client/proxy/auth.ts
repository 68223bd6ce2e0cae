// Who may use the proxy: local applications holding its own key pair, which is not the
// cluster's (the proxy re-signs everything it sends upstream with that one). A request is
// checked as the gateway checks one (common/s3/verify-request.ts), from the path, query and
// header values exactly as the client sent them, since that is what it signed.

import type { IncomingMessage } from "node:http";
import { verifySigV4, type AuthContext } from "../../common/s3/verify-request.ts";

export interface LocalKey {
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

/** A presigned URL's own query parameters: they authenticate the client, and are not passed on. */
export const PRESIGN_PARAMS = ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token"];

/** Verify a local client's request against the proxy's key pair; throws S3Error as the gateway would. */
export function verifyLocal(req: IncomingMessage, key: LocalKey): Promise<AuthContext> {
  const rawUrl = req.url ?? "/";
  const q = rawUrl.indexOf("?");
  const headers = req.headersDistinct;
  return verifySigV4(
    {
      method: req.method ?? "GET",
      path: q < 0 ? rawUrl : rawUrl.slice(0, q),
      search: q < 0 ? "" : rawUrl.slice(q + 1),
      header: (name) => headers[name] ?? [],
      headerNames: () => Object.keys(headers),
    },
    { region: key.region, lookupSecret: (accessKey) => (accessKey === key.accessKeyId ? key.secretAccessKey : null) },
  );
}
