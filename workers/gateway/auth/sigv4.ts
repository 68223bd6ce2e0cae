// SigV4 verification of incoming S3 requests, header form and presigned (query) form. Errors
// carry the codes and messages S3 itself uses, because SDKs key retries and clock correction
// (RequestTimeTooSkewed) off them.

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
} from "../../../common/sigv4.ts";
import { S3Error } from "../../../common/s3/errors.ts";

export const STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
export const STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
export const STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";

/** Everything later stages need: who signed, and what the aws-chunked decoder chains from. */
export interface AuthContext {
  accessKey: string;
  /** Lowercase hex SHA-256 of the body, UNSIGNED-PAYLOAD, or one of the STREAMING-* values. */
  payloadHash: string;
  /** Derived kSigning for the request's scope, as an HMAC key. */
  signingKey: CryptoKey;
  /** `yyyyMMdd/region/s3/aws4_request` */
  scope: string;
  /** The request timestamp as signed, `yyyyMMdd'T'HHmmss'Z'`. */
  amzDate: string;
  /** The request's signature; chunk signatures chain from it. */
  seedSignature: string;
  presigned: boolean;
  /** Lowercase names of the signed headers. */
  signedHeaders: string[];
}

export interface VerifyOptions {
  /** The region this endpoint serves; the credential scope must name it. */
  region: string;
  lookupSecret: (accessKey: string) => Promise<string | null> | string | null;
  now?: Date;
}

const MAX_SKEW_MS = 15 * 60 * 1000;
const PAYLOAD_HASH_RE = /^[0-9a-fA-F]{64}$/;
const SIGNATURE_RE = /^[0-9a-f]{64}$/;
const STREAMING_VALUES = new Set([STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER]);
const PRESIGN_PARAMS = [
  "X-Amz-Algorithm",
  "X-Amz-Credential",
  "X-Amz-Date",
  "X-Amz-Expires",
  "X-Amz-SignedHeaders",
  "X-Amz-Signature",
] as const;

interface Parsed {
  accessKey: string;
  date: string;
  region: string;
  service: string;
  terminator: string;
  signedHeaders: string[];
  signature: string;
}

function headerMalformed(reason: string, details: Record<string, string> = {}): S3Error {
  return new S3Error("AuthorizationHeaderMalformed", `The authorization header is malformed; ${reason}`, details);
}

function queryMalformed(reason: string): S3Error {
  return new S3Error("AuthorizationQueryParametersError", reason);
}

function unsupportedMechanism(): S3Error {
  return new S3Error(
    "InvalidRequest",
    "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.",
  );
}

function parseAuthorizationHeader(header: string): Parsed {
  const h = header.trim();
  const sp = h.indexOf(" ");
  const algorithm = sp < 0 ? h : h.slice(0, sp);
  if (algorithm !== ALGORITHM) {
    if (algorithm === "AWS" || algorithm === "AWS4-ECDSA-P256-SHA256") throw unsupportedMechanism();
    throw headerMalformed(`the authorization mechanism "${algorithm}" is not supported; expecting "${ALGORITHM}"`);
  }
  const fields = new Map<string, string>();
  for (const part of sp < 0 ? [] : h.slice(sp + 1).split(",")) {
    const p = part.trim();
    if (p === "") continue;
    const eq = p.indexOf("=");
    if (eq < 0) throw headerMalformed(`the authorization component "${p}" is malformed.`);
    fields.set(p.slice(0, eq).trim(), p.slice(eq + 1).trim());
  }
  const credential = fields.get("Credential");
  const signedHeaders = fields.get("SignedHeaders");
  const signature = fields.get("Signature");
  if (credential === undefined || signedHeaders === undefined || signature === undefined) {
    throw headerMalformed("the authorization header requires three components: Credential, SignedHeaders, and Signature.");
  }
  const cred = parseCredential(credential);
  if (!cred) {
    throw headerMalformed(`the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".`);
  }
  return { ...cred, signedHeaders: splitSignedHeaders(signedHeaders), signature };
}

function checkScope(p: Parsed, requestDay: string, opts: VerifyOptions, presigned: boolean): void {
  const bad = (reason: string, details: Record<string, string> = {}) =>
    presigned ? queryMalformed(`Error parsing the X-Amz-Credential parameter; ${reason}`) : headerMalformed(reason, details);
  if (!/^\d{8}$/.test(p.date)) throw bad(`incorrect date format "${p.date}". This date in the credential must be in the format "yyyyMMdd".`);
  if (p.region !== opts.region) {
    throw bad(`the region '${p.region}' is wrong; expecting '${opts.region}'`, { Region: opts.region });
  }
  if (p.service !== "s3") throw bad(`incorrect service "${p.service}". This endpoint belongs to "s3".`);
  if (p.terminator !== "aws4_request") throw bad(`incorrect terminal "${p.terminator}". This endpoint uses "aws4_request".`);
  if (p.date !== requestDay) {
    throw bad(`Invalid credential date "${p.date}". This date is not the same as X-Amz-Date: "${requestDay}".`);
  }
}

/**
 * Verifies a SigV4-signed S3 request and returns who signed it. Throws S3Error with S3's codes:
 * AccessDenied (anonymous, expired, unsigned x-amz-* or x-edgestore-* headers), InvalidAccessKeyId,
 * SignatureDoesNotMatch, RequestTimeTooSkewed, AuthorizationHeaderMalformed,
 * AuthorizationQueryParametersError, InvalidRequest, InvalidArgument.
 * The body is not read: payloadHash says what the body must hash to (or how it is framed).
 */
export async function verifyRequest(req: Request, url: URL, opts: VerifyOptions): Promise<AuthContext> {
  const now = opts.now ?? new Date();
  const authorization = req.headers.get("authorization");
  const query = parseQuery(url.search);
  const presigned = query.some(([k]) => k === "X-Amz-Algorithm" || k === "X-Amz-Credential" || k === "X-Amz-Signature");
  if (authorization !== null && presigned) {
    throw new S3Error(
      "InvalidArgument",
      "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified",
    );
  }
  if (authorization !== null) return verifyHeaderForm(req, url, query, authorization, opts, now);
  if (presigned) return verifyQueryForm(req, url, query, opts, now);
  if (query.some(([k]) => k === "AWSAccessKeyId") && query.some(([k]) => k === "Signature")) throw unsupportedMechanism();
  throw new S3Error("AccessDenied", "Anonymous access is not allowed");
}

async function verifyHeaderForm(
  req: Request,
  url: URL,
  query: [string, string][],
  authorization: string,
  opts: VerifyOptions,
  now: Date,
): Promise<AuthContext> {
  const p = parseAuthorizationHeader(authorization);

  const contentSha = req.headers.get("x-amz-content-sha256");
  if (contentSha === null) {
    throw new S3Error("InvalidRequest", "Missing required header for this request: x-amz-content-sha256");
  }
  if (!PAYLOAD_HASH_RE.test(contentSha) && contentSha !== UNSIGNED_PAYLOAD && !STREAMING_VALUES.has(contentSha)) {
    throw new S3Error(
      "InvalidArgument",
      "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, or a valid sha256 value.",
      { ArgumentName: "x-amz-content-sha256", ArgumentValue: contentSha },
    );
  }

  // x-amz-date wins over Date; the string to sign carries whichever was used, in ISO basic form.
  const amzDateHeader = req.headers.get("x-amz-date");
  const dateHeader = req.headers.get("date");
  let requestTime: Date | null = null;
  if (amzDateHeader !== null) requestTime = parseAmzDate(amzDateHeader.trim());
  else if (dateHeader !== null) {
    const t = Date.parse(dateHeader);
    requestTime = Number.isNaN(t) ? null : new Date(t);
  }
  if (!requestTime) throw new S3Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header");
  const amzDate = amzDateOf(requestTime);
  if (Math.abs(requestTime.getTime() - now.getTime()) > MAX_SKEW_MS) {
    throw new S3Error("RequestTimeTooSkewed", "The difference between the request time and the current time is too large.", {
      RequestTime: amzDateHeader ?? dateHeader ?? "",
      ServerTime: now.toISOString(),
      MaxAllowedSkewMilliseconds: String(MAX_SKEW_MS),
    });
  }
  checkScope(p, amzDate.slice(0, 8), opts, false);
  checkSignedHeaders(req, p.signedHeaders, false);

  const canonicalQuery = canonicalQueryString(query);
  return finish(req, url, p, canonicalQuery, contentSha, amzDate, opts, false);
}

async function verifyQueryForm(
  req: Request,
  url: URL,
  query: [string, string][],
  opts: VerifyOptions,
  now: Date,
): Promise<AuthContext> {
  const get = (name: string): string | undefined => query.find(([k]) => k === name)?.[1];
  for (const name of PRESIGN_PARAMS) {
    if (get(name) === undefined) {
      throw queryMalformed(
        "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.",
      );
    }
  }
  if (get("X-Amz-Algorithm") !== ALGORITHM) throw queryMalformed(`X-Amz-Algorithm only supports "${ALGORITHM}"`);
  const amzDate = get("X-Amz-Date")!;
  const requestTime = parseAmzDate(amzDate);
  if (!requestTime) throw queryMalformed(`X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd'T'HHmmss'Z'"`);
  const expiresText = get("X-Amz-Expires")!;
  if (!/^\d+$/.test(expiresText)) throw queryMalformed("X-Amz-Expires should be a number");
  const expires = Number(expiresText);
  if (expires > MAX_PRESIGN_EXPIRES) {
    throw queryMalformed(`X-Amz-Expires must be less than a week (in seconds) that is ${MAX_PRESIGN_EXPIRES}`);
  }
  const cred = parseCredential(get("X-Amz-Credential")!);
  if (!cred) {
    throw queryMalformed(
      `Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".`,
    );
  }
  const p: Parsed = { ...cred, signedHeaders: splitSignedHeaders(get("X-Amz-SignedHeaders")!), signature: get("X-Amz-Signature")! };
  checkScope(p, amzDate.slice(0, 8), opts, true);

  if (requestTime.getTime() - now.getTime() > MAX_SKEW_MS) throw new S3Error("AccessDenied", "Request is not valid yet");
  const expiry = requestTime.getTime() + expires * 1000;
  if (now.getTime() > expiry) {
    throw new S3Error("AccessDenied", "Request has expired", {
      "X-Amz-Expires": expiresText,
      Expires: new Date(expiry).toISOString(),
      ServerTime: now.toISOString(),
    });
  }
  checkSignedHeaders(req, p.signedHeaders, true);

  // A client may pin the body with X-Amz-Content-Sha256 in the query; otherwise it is unsigned.
  const pinned = query.find(([k]) => k.toLowerCase() === "x-amz-content-sha256")?.[1];
  const payloadHash = pinned !== undefined && (PAYLOAD_HASH_RE.test(pinned) || pinned === UNSIGNED_PAYLOAD) ? pinned : UNSIGNED_PAYLOAD;
  const canonicalQuery = canonicalQueryString(query.filter(([k]) => k !== "X-Amz-Signature"));
  return finish(req, url, p, canonicalQuery, payloadHash, amzDate, opts, true);
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

function checkSignedHeaders(req: Request, signed: string[], presigned: boolean): void {
  if (!signed.includes("host")) {
    if (presigned) throw queryMalformed("Query-string authentication version 4 requires the host header to be signed.");
    throw headerMalformed("the SignedHeaders must include host.");
  }
  // As S3: every x-amz-* header sent must be covered by the signature, so nobody on the path
  // can add e.g. x-amz-copy-source or x-amz-acl to a signed request. The same for this
  // gateway's own x-edgestore-* headers, which change what a request does (a read as of an
  // earlier time, fewer copies): the holder of a presigned URL must not widen it with them.
  const signedSet = new Set(signed);
  const unsigned: string[] = [];
  for (const [name] of req.headers) {
    if (!(name.startsWith("x-amz-") || name.startsWith("x-edgestore-")) || signedSet.has(name)) continue;
    if (presigned && name === "x-amz-content-sha256") continue;
    unsigned.push(name);
  }
  if (unsigned.length > 0) {
    throw new S3Error("AccessDenied", "There were headers present in the request which were not signed", {
      HeadersNotSigned: unsigned.join(", "),
    });
  }
}

async function finish(
  req: Request,
  url: URL,
  p: Parsed,
  canonicalQuery: string,
  payloadHash: string,
  amzDate: string,
  opts: VerifyOptions,
  presigned: boolean,
): Promise<AuthContext> {
  const secret = await opts.lookupSecret(p.accessKey);
  if (secret === null || secret === undefined) {
    throw new S3Error("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.", {
      AWSAccessKeyId: p.accessKey,
    });
  }

  const headerPairs: [string, string][] = p.signedHeaders.map((name) => {
    const v = name === "accept-encoding" ? clientAcceptEncoding(req) : req.headers.get(name);
    // The Host header is not always exposed on a constructed Request; the URL carries it.
    if (v === null && name === "host") return [name, url.host];
    return [name, v ?? ""];
  });
  const creq = canonicalRequest(req.method.toUpperCase(), canonicalUri(url.pathname), canonicalQuery, headerPairs, payloadHash);
  const scope = credentialScope(p.date, p.region, "s3");
  const sts = await stringToSign(amzDate, scope, creq);
  const signingKey = await cachedSigningKey(secret, p.date, p.region);
  const expected = await signHex(signingKey, sts);
  if (!SIGNATURE_RE.test(p.signature) || !constantTimeEqual(expected, p.signature)) {
    throw new S3Error(
      "SignatureDoesNotMatch",
      "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
      { AWSAccessKeyId: p.accessKey, StringToSign: sts, SignatureProvided: p.signature, CanonicalRequest: creq },
    );
  }
  return {
    accessKey: p.accessKey,
    payloadHash: PAYLOAD_HASH_RE.test(payloadHash) ? payloadHash.toLowerCase() : payloadHash,
    signingKey,
    scope,
    amzDate,
    seedSignature: expected,
    presigned,
    signedHeaders: p.signedHeaders,
  };
}
