// Who may use the proxy: local applications holding its own key pair, which is not the
// cluster's (the proxy re-signs everything it sends upstream with that one). SigV4 as S3
// checks it, header form and presigned URLs, built from common/sigv4.ts; the canonical request
// is made from the path and query exactly as the client sent them, since that is what it signed.

import {
  ALGORITHM,
  MAX_PRESIGN_EXPIRES,
  UNSIGNED_PAYLOAD,
  amzDateOf,
  cachedSigningKey,
  canonicalQueryString,
  canonicalRequest,
  canonicalUri,
  constantTimeEqual,
  credentialScope,
  parseAmzDate,
  parseCredential,
  parseQuery,
  signHex,
  splitSignedHeaders,
  stringToSign,
} from "../../common/sigv4.ts";
import { S3Error } from "../../common/s3/errors.ts";

export interface LocalKey {
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

/** What the body checks and the aws-chunked decoder need from a verified signature. */
export interface Verified {
  payloadHash: string;
  signingKey: CryptoKey;
  scope: string;
  amzDate: string;
  /** The request's signature: aws-chunked chunk signatures chain from it. */
  seedSignature: string;
  presigned: boolean;
}

const MAX_SKEW_MS = 15 * 60 * 1000;
export const PRESIGN_PARAMS = ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token"];

const signatureMismatch = () => new S3Error("SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your key and signing method.");

interface Signed {
  accessKey: string;
  date: string;
  region: string;
  service: string;
  terminator: string;
  signedHeaders: string[];
  signature: string;
}

function authorizationOf(header: string): Signed {
  const h = header.trim();
  if (!h.startsWith(`${ALGORITHM} `)) throw new S3Error("InvalidRequest", "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.");
  const fields = new Map<string, string>();
  for (const part of h.slice(ALGORITHM.length + 1).split(",")) {
    const eq = part.indexOf("=");
    if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const cred = parseCredential(fields.get("Credential") ?? "");
  const signedHeaders = fields.get("SignedHeaders");
  const signature = fields.get("Signature");
  if (!cred || signedHeaders === undefined || signature === undefined) throw new S3Error("AuthorizationHeaderMalformed", "The authorization header is malformed");
  return { ...cred, signedHeaders: splitSignedHeaders(signedHeaders), signature };
}

function checkScope(s: Signed, key: LocalKey, amzDate: string): void {
  if (s.accessKey !== key.accessKeyId) throw new S3Error("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.");
  if (s.region !== key.region) throw new S3Error("AuthorizationHeaderMalformed", `the region '${s.region}' is wrong; expecting '${key.region}'`);
  if (s.service !== "s3" || s.terminator !== "aws4_request" || s.date !== amzDate.slice(0, 8)) throw new S3Error("AuthorizationHeaderMalformed", "The authorization header is malformed; the credential scope does not match the request");
  if (!s.signedHeaders.includes("host")) throw new S3Error("AuthorizationHeaderMalformed", "The authorization header is malformed; the SignedHeaders must include host.");
}

/**
 * Verify a local client's request against the proxy's key pair. `rawUrl` is the request target
 * as received (path and query, undecoded); `headers` each header's values as received.
 * Throws S3Error.
 */
export async function verifyLocal(method: string, rawUrl: string, headers: Record<string, string[] | undefined>, key: LocalKey, now = new Date()): Promise<Verified> {
  const q = rawUrl.indexOf("?");
  const rawPath = q < 0 ? rawUrl : rawUrl.slice(0, q);
  const query = parseQuery(q < 0 ? "" : rawUrl.slice(q + 1));
  const param = (name: string) => query.find(([k]) => k === name)?.[1];
  const one = (name: string) => headers[name]?.[0];
  const authorization = one("authorization");
  const presigned = param("X-Amz-Signature") !== undefined || param("X-Amz-Algorithm") !== undefined;

  let signed: Signed;
  let amzDate: string;
  let payloadHash: string;
  let canonicalQuery: string;
  if (authorization !== undefined && !presigned) {
    signed = authorizationOf(authorization);
    const sent = one("x-amz-date") ?? one("date");
    const t = sent === undefined ? null : (parseAmzDate(sent.trim()) ?? (Number.isNaN(Date.parse(sent)) ? null : new Date(Date.parse(sent))));
    if (!t) throw new S3Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header");
    if (Math.abs(t.getTime() - now.getTime()) > MAX_SKEW_MS) throw new S3Error("RequestTimeTooSkewed", "The difference between the request time and the current time is too large.");
    amzDate = amzDateOf(t);
    const hash = one("x-amz-content-sha256");
    if (hash === undefined) throw new S3Error("InvalidRequest", "Missing required header for this request: x-amz-content-sha256");
    payloadHash = hash;
    canonicalQuery = canonicalQueryString(query);
  } else if (presigned && authorization === undefined) {
    const cred = parseCredential(param("X-Amz-Credential") ?? "");
    const date = param("X-Amz-Date") ?? "";
    const t = parseAmzDate(date);
    const expires = Number(param("X-Amz-Expires"));
    if (!cred || !t || param("X-Amz-Algorithm") !== ALGORITHM || !Number.isInteger(expires) || expires < 0 || expires > MAX_PRESIGN_EXPIRES) {
      throw new S3Error("AuthorizationQueryParametersError", "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.");
    }
    if (now.getTime() > t.getTime() + expires * 1000) throw new S3Error("AccessDenied", "Request has expired");
    if (t.getTime() - now.getTime() > MAX_SKEW_MS) throw new S3Error("AccessDenied", "Request is not valid yet");
    signed = { ...cred, signedHeaders: splitSignedHeaders(param("X-Amz-SignedHeaders") ?? ""), signature: param("X-Amz-Signature") ?? "" };
    amzDate = date;
    payloadHash = UNSIGNED_PAYLOAD;
    canonicalQuery = canonicalQueryString(query.filter(([k]) => k !== "X-Amz-Signature"));
  } else if (authorization !== undefined) {
    throw new S3Error("InvalidArgument", "Only one auth mechanism allowed");
  } else {
    throw new S3Error("AccessDenied", "Anonymous access is not allowed");
  }
  checkScope(signed, key, amzDate);

  const pairs: [string, string][] = [];
  for (const name of signed.signedHeaders) for (const v of headers[name] ?? [""]) pairs.push([name, v]);
  const creq = canonicalRequest(method.toUpperCase(), canonicalUri(rawPath), canonicalQuery, pairs, payloadHash);
  const scope = credentialScope(signed.date, signed.region, "s3");
  const signingKey = await cachedSigningKey(key.secretAccessKey, signed.date, signed.region);
  const expected = await signHex(signingKey, await stringToSign(amzDate, scope, creq));
  if (!constantTimeEqual(expected, signed.signature)) throw signatureMismatch();
  return { payloadHash: /^[0-9a-fA-F]{64}$/.test(payloadHash) ? payloadHash.toLowerCase() : payloadHash, signingKey, scope, amzDate, seedSignature: expected, presigned };
}
