// Every request the proxy does not turn into an editing session goes to the cluster as it
// came, re-signed with the proxy's cluster key pair: method, path, query (less a presigned
// URL's signature), headers, and the body streamed both ways, never held whole.
//
// The body's signature is the only thing that cannot pass unchanged. A signed SHA-256 is kept
// (the gateway checks the bytes against it) and so is the unsigned aws-chunked framing (the
// gateway decodes it and checks its trailing checksum). Signed aws-chunked chunks chain from
// the local client's signature, so they are decoded and verified here and sent on as plain
// UNSIGNED-PAYLOAD bytes of the decoded length; the last piece waits until the framing, the
// trailer and its checksum have all checked out, so the cluster never receives a whole body
// that failed them and cannot commit it.

import { request as httpRequest, type Agent, type IncomingMessage, type ServerResponse } from "node:http";
import { request as httpsRequest } from "node:https";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { parseTrailerNames } from "../../common/s3/aws-chunked.ts";
import { S3Error } from "../../common/s3/errors.ts";
import { storedContentEncoding } from "../../common/s3/put-object.ts";
import { signRequest } from "../../common/s3/sign-request.ts";
import { EMPTY_SHA256, STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER, UNSIGNED_PAYLOAD } from "../../common/s3/sigv4.ts";
import { parseQuery } from "../../common/s3/uri.ts";
import type { AuthContext } from "../../common/s3/verify-request.ts";
import type { Credentials } from "../extensions.ts";
import { PRESIGN_PARAMS } from "./auth.ts";
import { decodeBody } from "./aws-chunked.ts";
import { awaitedLater } from "../../common/deferred.ts";

export interface Upstream {
  creds: Credentials;
  agent: Agent;
}

export interface Transfer {
  status: number;
  /** Body bytes from the local client, and to it. */
  clientIn: number;
  clientOut: number;
  /** Body bytes to the cluster, and from it. */
  upstreamSent: number;
  upstreamReceived: number;
}

/** Hop-by-hop headers, the client's signature, and what the proxy sets itself. */
const DROP_REQUEST = new Set(["host", "authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token", "connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "expect", "content-length"]);
const DROP_RESPONSE = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "trailer"]);

/** The request's query without a presigned URL's X-Amz-* parameters, encoded as it came. */
export function upstreamQuery(rawQuery: string): string {
  const kept = rawQuery.split("&").filter((part) => {
    if (part === "") return false;
    const name = parseQuery(part)[0]?.[0] ?? "";
    return !PRESIGN_PARAMS.includes(name);
  });
  return kept.length === 0 ? "" : `?${kept.join("&")}`;
}

/** The request's headers as one string each, lowercase names. */
export function headerMap(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headersDistinct)) if (v) out[k] = v.join(",");
  return out;
}

/** Pieces of `source`, each passed on only once the next one (or the clean end) has arrived. */
async function* holdLast(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let held: Uint8Array | null = null;
  for await (const d of source) {
    if (held) yield held;
    held = d;
  }
  if (held) yield held;
}

async function* counted(source: AsyncIterable<Uint8Array>, add: (n: number) => void): AsyncGenerator<Uint8Array> {
  for await (const d of source) {
    add(d.length);
    yield d;
  }
}

/** A signed request to the cluster; resolves with its response, once the body (if any) is on its way. */
export async function sendUpstream(
  up: Upstream,
  o: { method: string; pathAndQuery: string; headers: Record<string, string>; payloadHash: string; body: AsyncIterable<Uint8Array> | null },
): Promise<IncomingMessage> {
  const url = new URL(o.pathAndQuery, up.creds.endpoint);
  const headers: Record<string, string> = { ...o.headers, host: url.host };
  const auth = await signRequest({ method: o.method, url, headers, payloadHash: o.payloadHash, accessKey: up.creds.accessKeyId, secretKey: up.creds.secretAccessKey, region: up.creds.region });
  const send = url.protocol === "https:" ? httpsRequest : httpRequest;
  const req = send({ method: o.method, hostname: url.hostname, port: url.port, path: url.pathname + url.search, headers: { ...headers, ...auth }, agent: up.agent });
  const response = new Promise<IncomingMessage>((resolve, reject) => {
    req.once("response", resolve);
    req.once("error", (e) => reject(new S3Error("ServiceUnavailable", `the proxy could not reach the cluster: ${e.message}`)));
  });
  awaitedLater(response);
  if (!o.body) {
    req.end();
    return response;
  }
  const pumped = pipeline(Readable.from(o.body), req);
  // An early answer (an error before the whole body was sent) is the answer, and the body's
  // failure after it is not looked at; a body that failed its checks here is the proxy's own
  // error, and the cut request commits nothing.
  pumped.catch(() => {});
  return Promise.race([response, pumped.then(() => response)]);
}

/** Copy the cluster's response to the client, streaming its body. */
export async function relay(upRes: IncomingMessage, res: ServerResponse): Promise<number> {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(upRes.headers)) if (v !== undefined && !DROP_RESPONSE.has(k)) headers[k] = v;
  res.writeHead(upRes.statusCode ?? 502, headers);
  let n = 0;
  await pipeline(
    upRes,
    new Transform({
      transform(d: Buffer, _enc, cb) {
        n += d.length;
        cb(null, d);
      },
    }),
    res,
  );
  return n;
}

export async function forward(req: IncomingMessage, res: ServerResponse, up: Upstream, verified: AuthContext | null): Promise<Transfer> {
  const rawUrl = req.url ?? "/";
  const q = rawUrl.indexOf("?");
  const pathAndQuery = (q < 0 ? rawUrl : rawUrl.slice(0, q)) + upstreamQuery(q < 0 ? "" : rawUrl.slice(q + 1));
  const all = headerMap(req);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(all)) if (!DROP_REQUEST.has(k)) headers[k] = v;
  const hasBody = (all["content-length"] !== undefined && all["content-length"] !== "0") || all["transfer-encoding"] !== undefined;
  const clientHash = verified?.payloadHash ?? all["x-amz-content-sha256"] ?? (hasBody ? UNSIGNED_PAYLOAD : EMPTY_SHA256);
  const t: Transfer = { status: 0, clientIn: 0, clientOut: 0, upstreamSent: 0, upstreamReceived: 0 };

  // Not destroyed when the body stops early: the client is still owed an answer.
  let body: AsyncIterable<Uint8Array> | null = hasBody ? counted(req.iterator({ destroyOnReturn: false }) as AsyncIterable<Uint8Array>, (n) => (t.clientIn += n)) : null;
  let payloadHash = clientHash;
  if (clientHash === STREAMING_SIGNED || clientHash === STREAMING_SIGNED_TRAILER) {
    const decodedLength = all["x-amz-decoded-content-length"] === undefined ? null : Number(all["x-amz-decoded-content-length"]);
    if (decodedLength === null || !Number.isSafeInteger(decodedLength)) throw new S3Error("MissingContentLength", "x-amz-decoded-content-length is required with aws-chunked bodies");
    const src = body ?? (async function* () {})();
    // The decoder checks the length, every signature and the trailing checksum before it ends.
    body = holdLast(decodeBody(src, { mode: clientHash, signing: verified, decodedLength, trailerNames: parseTrailerNames(all["x-amz-trailer"]) }).body);
    const encoding = storedContentEncoding(headers["content-encoding"] ?? "");
    if (encoding) headers["content-encoding"] = encoding;
    else delete headers["content-encoding"];
    delete headers["x-amz-decoded-content-length"];
    delete headers["x-amz-trailer"];
    headers["content-length"] = String(decodedLength);
    payloadHash = UNSIGNED_PAYLOAD;
  } else {
    if (all["content-length"] !== undefined) headers["content-length"] = all["content-length"];
    else if (hasBody) headers["transfer-encoding"] = "chunked";
    if (clientHash !== STREAMING_UNSIGNED_TRAILER && !/^[0-9a-f]{64}$/.test(clientHash)) payloadHash = hasBody ? UNSIGNED_PAYLOAD : EMPTY_SHA256;
  }
  const upRes = await sendUpstream(up, { method: req.method ?? "GET", pathAndQuery, headers, payloadHash, body: body ? counted(body, (n) => (t.upstreamSent += n)) : null });
  t.status = upRes.statusCode ?? 502;
  t.upstreamReceived = t.clientOut = await relay(upRes, res);
  return t;
}
