// SigV4 verification of incoming S3 requests, header form and presigned (query) form, for the
// gateway and the proxy alike: each hands over its request as a SignedRequest and says where
// secrets come from. Errors carry the codes and messages S3 itself uses, because SDKs key
// retries and clock correction (RequestTimeTooSkewed) off them.

import { S3Error } from "./errors.ts";
import {
  ALGORITHM,
  MAX_PRESIGN_EXPIRES,
  STREAMING_MODES,
  UNSIGNED_PAYLOAD,
  amzDateOf,
  cachedSigningKey,
  canonicalRequest,
  constantTimeEqual,
  credentialScope,
  parseAmzDate,
  parseCredential,
  signHex,
  splitSignedHeaders,
  stringToSign,
  type CredentialFields,
} from "./sigv4.ts";
import { canonicalQueryString, canonicalUri, parseQuery } from "./uri.ts";

/** A request as the verifier reads it: what each runtime's own request object is turned into. */
export interface SignedRequest {
  method: string;
  /** The path as the client sent it, still percent-encoded: the canonical URI is made from it. */
  path: string;
  /** The query string as sent ("?" optional). */
  search: string;
  /** Every value the client sent for a header (lowercase name), in order; empty when absent. */
  header(name: string): readonly string[];
  /** Lowercase names of the headers present. */
  headerNames(): Iterable<string>;
}

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
const PRESIGN_PARAMS = [
  "X-Amz-Algorithm",
  "X-Amz-Credential",
  "X-Amz-Date",
  "X-Amz-Expires",
  "X-Amz-SignedHeaders",
  "X-Amz-Signature",
] as const;

/** What a request claims about its signature, parsed and checked for form, before any secret is used. */
interface Claim extends CredentialFields {
  signedHeaders: string[];
  signature: string;
  amzDate: string;
  payloadHash: string;
  canonicalQuery: string;
  presigned: boolean;
}

/** The request with what every check needs alongside it. */
interface Incoming {
  req: SignedRequest;
  query: [string, string][];
  region: string;
  now: Date;
}

function first(req: SignedRequest, name: string): string | undefined {
  return req.header(name)[0];
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

function parseAuthorizationHeader(header: string): CredentialFields & { signedHeaders: string[]; signature: string } {
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

function checkScope(c: CredentialFields, requestDay: string, region: string, presigned: boolean): void {
  const bad = (reason: string, details: Record<string, string> = {}) =>
    presigned ? queryMalformed(`Error parsing the X-Amz-Credential parameter; ${reason}`) : headerMalformed(reason, details);
  if (!/^\d{8}$/.test(c.date)) throw bad(`incorrect date format "${c.date}". This date in the credential must be in the format "yyyyMMdd".`);
  if (c.region !== region) {
    throw bad(`the region '${c.region}' is wrong; expecting '${region}'`, { Region: region });
  }
  if (c.service !== "s3") throw bad(`incorrect service "${c.service}". This endpoint belongs to "s3".`);
  if (c.terminator !== "aws4_request") throw bad(`incorrect terminal "${c.terminator}". This endpoint uses "aws4_request".`);
  if (c.date !== requestDay) {
    throw bad(`Invalid credential date "${c.date}". This date is not the same as X-Amz-Date: "${requestDay}".`);
  }
}

/**
 * Verifies a SigV4-signed S3 request and returns who signed it. Throws S3Error with S3's codes:
 * AccessDenied (anonymous, expired, unsigned x-amz-* or x-edgestore-* headers), InvalidAccessKeyId,
 * SignatureDoesNotMatch, RequestTimeTooSkewed, AuthorizationHeaderMalformed,
 * AuthorizationQueryParametersError, InvalidRequest, InvalidArgument.
 * The body is not read: payloadHash says what the body must hash to (or how it is framed).
 */
export async function verifySigV4(req: SignedRequest, opts: VerifyOptions): Promise<AuthContext> {
  const authorization = first(req, "authorization");
  const query = parseQuery(req.search);
  const presigned = query.some(([k]) => k === "X-Amz-Algorithm" || k === "X-Amz-Credential" || k === "X-Amz-Signature");
  if (authorization !== undefined && presigned) {
    throw new S3Error(
      "InvalidArgument",
      "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified",
    );
  }
  const incoming: Incoming = { req, query, region: opts.region, now: opts.now ?? new Date() };
  if (authorization !== undefined) return finish(incoming, headerClaim(incoming, authorization), opts);
  if (presigned) return finish(incoming, queryClaim(incoming), opts);
  if (query.some(([k]) => k === "AWSAccessKeyId") && query.some(([k]) => k === "Signature")) throw unsupportedMechanism();
  throw new S3Error("AccessDenied", "Anonymous access is not allowed");
}

function headerClaim({ req, query, region, now }: Incoming, authorization: string): Claim {
  const p = parseAuthorizationHeader(authorization);

  const contentSha = first(req, "x-amz-content-sha256");
  if (contentSha === undefined) {
    throw new S3Error("InvalidRequest", "Missing required header for this request: x-amz-content-sha256");
  }
  if (!PAYLOAD_HASH_RE.test(contentSha) && contentSha !== UNSIGNED_PAYLOAD && !STREAMING_MODES.includes(contentSha)) {
    throw new S3Error(
      "InvalidArgument",
      "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, or a valid sha256 value.",
      { ArgumentName: "x-amz-content-sha256", ArgumentValue: contentSha },
    );
  }

  // x-amz-date wins over Date; the string to sign carries whichever was used, in ISO basic form.
  const amzDateHeader = first(req, "x-amz-date");
  const dateHeader = first(req, "date");
  let requestTime: Date | null = null;
  if (amzDateHeader !== undefined) requestTime = parseAmzDate(amzDateHeader.trim());
  else if (dateHeader !== undefined) {
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
  checkScope(p, amzDate.slice(0, 8), region, false);
  checkSignedHeaders(req, p.signedHeaders, false);
  return { ...p, amzDate, payloadHash: contentSha, canonicalQuery: canonicalQueryString(query), presigned: false };
}

function queryClaim({ req, query, region, now }: Incoming): Claim {
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
  checkScope(cred, amzDate.slice(0, 8), region, true);

  if (requestTime.getTime() - now.getTime() > MAX_SKEW_MS) throw new S3Error("AccessDenied", "Request is not valid yet");
  const expiry = requestTime.getTime() + expires * 1000;
  if (now.getTime() > expiry) {
    throw new S3Error("AccessDenied", "Request has expired", {
      "X-Amz-Expires": expiresText,
      Expires: new Date(expiry).toISOString(),
      ServerTime: now.toISOString(),
    });
  }
  const signedHeaders = splitSignedHeaders(get("X-Amz-SignedHeaders")!);
  checkSignedHeaders(req, signedHeaders, true);

  // A client may pin the body with X-Amz-Content-Sha256 in the query; otherwise it is unsigned.
  const pinned = query.find(([k]) => k.toLowerCase() === "x-amz-content-sha256")?.[1];
  const payloadHash = pinned !== undefined && (PAYLOAD_HASH_RE.test(pinned) || pinned === UNSIGNED_PAYLOAD) ? pinned : UNSIGNED_PAYLOAD;
  return {
    ...cred,
    signedHeaders,
    signature: get("X-Amz-Signature")!,
    amzDate,
    payloadHash,
    canonicalQuery: canonicalQueryString(query.filter(([k]) => k !== "X-Amz-Signature")),
    presigned: true,
  };
}

function checkSignedHeaders(req: SignedRequest, signed: string[], presigned: boolean): void {
  if (!signed.includes("host")) {
    if (presigned) throw queryMalformed("Query-string authentication version 4 requires the host header to be signed.");
    throw headerMalformed("the SignedHeaders must include host.");
  }
  // As S3: every x-amz-* header sent must be covered by the signature, so nobody on the path
  // can add e.g. x-amz-copy-source or x-amz-acl to a signed request. The same for this
  // system's own x-edgestore-* headers, which change what a request does (a read as of an
  // earlier time, fewer copies): the holder of a presigned URL must not widen it with them.
  const signedSet = new Set(signed);
  const unsigned: string[] = [];
  for (const name of req.headerNames()) {
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

async function finish({ req }: Incoming, c: Claim, opts: VerifyOptions): Promise<AuthContext> {
  const secret = await opts.lookupSecret(c.accessKey);
  if (secret === null || secret === undefined) {
    throw new S3Error("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.", {
      AWSAccessKeyId: c.accessKey,
    });
  }

  const headerPairs: [string, string][] = [];
  for (const name of c.signedHeaders) {
    const values = req.header(name);
    if (values.length === 0) headerPairs.push([name, ""]);
    for (const v of values) headerPairs.push([name, v]);
  }
  const creq = canonicalRequest({
    method: req.method.toUpperCase(),
    uri: canonicalUri(req.path),
    query: c.canonicalQuery,
    headers: headerPairs,
    payloadHash: c.payloadHash,
  });
  const scope = credentialScope(c.date, c.region, "s3");
  const sts = await stringToSign(c.amzDate, scope, creq);
  const signingKey = await cachedSigningKey(secret, c.date, c.region);
  const expected = await signHex(signingKey, sts);
  if (!SIGNATURE_RE.test(c.signature) || !constantTimeEqual(expected, c.signature)) {
    throw new S3Error(
      "SignatureDoesNotMatch",
      "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
      { AWSAccessKeyId: c.accessKey, StringToSign: sts, SignatureProvided: c.signature, CanonicalRequest: creq },
    );
  }
  return {
    accessKey: c.accessKey,
    payloadHash: PAYLOAD_HASH_RE.test(c.payloadHash) ? c.payloadHash.toLowerCase() : c.payloadHash,
    signingKey,
    scope,
    amzDate: c.amzDate,
    seedSignature: expected,
    presigned: c.presigned,
    signedHeaders: c.signedHeaders,
  };
}
