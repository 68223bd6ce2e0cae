// The client side of SigV4: signing a request's headers, and presigning a URL. Used by the
// CLI, the editing-session client, the proxy's upstream requests and the benchmarks.
import { ALGORITHM, UNSIGNED_PAYLOAD, amzDateOf, cachedSigningKey, canonicalHeaders, canonicalRequest, credentialScope, signHex, stringToSign } from "./sigv4.ts";
import { canonicalQueryString, canonicalUri, parseQuery, uriEncode } from "./uri.ts";

/** Headers a signer leaves out because proxies and HTTP stacks add or rewrite them. */
const UNSIGNABLE = new Set([
  "authorization",
  "connection",
  "expect",
  "keep-alive",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "user-agent",
  "x-amzn-trace-id",
]);

export interface SignRequestInput {
  method: string;
  url: string | URL;
  /** Headers that will be sent; all but hop-by-hop ones are signed. `host` defaults to url.host. */
  headers?: Record<string, string>;
  /** Hex SHA-256 of the body, UNSIGNED-PAYLOAD or a STREAMING-* value. */
  payloadHash: string;
  accessKey: string;
  secretKey: string;
  region: string;
  service?: string;
  date?: Date;
}

export interface SignedHeaders {
  authorization: string;
  "x-amz-date": string;
  "x-amz-content-sha256": string;
}

/** The client's headers a signature covers, lowercased, with `host` always among them. */
function headersToSign(headers: Record<string, string> | undefined, url: URL, setBySigner: string[]): [string, string][] {
  const pairs: [string, string][] = [];
  let hasHost = false;
  for (const [name, value] of Object.entries(headers ?? {})) {
    const n = name.toLowerCase();
    if (UNSIGNABLE.has(n) || setBySigner.includes(n)) continue;
    if (n === "host") hasHost = true;
    pairs.push([n, value]);
  }
  if (!hasHost) pairs.push(["host", url.host]);
  return pairs;
}

/** Header-form SigV4: returns the headers to add to the request. */
export async function signRequest(input: SignRequestInput): Promise<SignedHeaders> {
  const url = typeof input.url === "string" ? new URL(input.url) : input.url;
  const service = input.service ?? "s3";
  const amzDate = amzDateOf(input.date ?? new Date());
  const scope = credentialScope(amzDate.slice(0, 8), input.region, service);
  const pairs = headersToSign(input.headers, url, ["x-amz-date", "x-amz-content-sha256"]);
  pairs.push(["x-amz-date", amzDate], ["x-amz-content-sha256", input.payloadHash]);
  const creq = canonicalRequest({
    method: input.method.toUpperCase(),
    uri: canonicalUri(url.pathname),
    query: canonicalQueryString(parseQuery(url.search)),
    headers: pairs,
    payloadHash: input.payloadHash,
  });
  const key = await cachedSigningKey(input.secretKey, amzDate.slice(0, 8), input.region, service);
  const signature = await signHex(key, await stringToSign(amzDate, scope, creq));
  return {
    authorization: `${ALGORITHM} Credential=${input.accessKey}/${scope}, SignedHeaders=${canonicalHeaders(pairs).signedHeaders}, Signature=${signature}`,
    "x-amz-date": amzDate,
    "x-amz-content-sha256": input.payloadHash,
  };
}

export interface PresignInput {
  method: string;
  url: string | URL;
  accessKey: string;
  secretKey: string;
  region: string;
  service?: string;
  date?: Date;
  /** Seconds, at most 604800. */
  expiresIn: number;
  /** Extra headers the eventual request will carry and that are to be signed. */
  headers?: Record<string, string>;
}

/** Query-form SigV4 (payload UNSIGNED-PAYLOAD): returns the URL with the X-Amz-* parameters. */
export async function presignUrl(input: PresignInput): Promise<string> {
  const url = new URL(typeof input.url === "string" ? input.url : input.url.href);
  const service = input.service ?? "s3";
  const amzDate = amzDateOf(input.date ?? new Date());
  const scope = credentialScope(amzDate.slice(0, 8), input.region, service);
  const pairs = headersToSign(input.headers, url, []);
  const added: [string, string][] = [
    ["X-Amz-Algorithm", ALGORITHM],
    ["X-Amz-Credential", `${input.accessKey}/${scope}`],
    ["X-Amz-Date", amzDate],
    ["X-Amz-Expires", String(input.expiresIn)],
    ["X-Amz-SignedHeaders", canonicalHeaders(pairs).signedHeaders],
  ];
  const creq = canonicalRequest({
    method: input.method.toUpperCase(),
    uri: canonicalUri(url.pathname),
    query: canonicalQueryString([...parseQuery(url.search), ...added]),
    headers: pairs,
    payloadHash: UNSIGNED_PAYLOAD,
  });
  const key = await cachedSigningKey(input.secretKey, amzDate.slice(0, 8), input.region, service);
  const signature = await signHex(key, await stringToSign(amzDate, scope, creq));
  added.push(["X-Amz-Signature", signature]);
  const extra = added.map(([k, v]) => `${k}=${uriEncode(v, true)}`).join("&");
  const existing = url.search.length > 1 ? url.search.slice(1) + "&" : "";
  url.search = "?" + existing + extra;
  return url.href;
}
