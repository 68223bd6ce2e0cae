// PutObject through an editing session: the proxy's reason to exist. The body is chunked here
// as it arrives, each chunk is probed against the version it replaces, and only the chunks
// that version lacks cross the wide-area link; the rest are written by reference. The new
// version commits only after every check the request asked for (signed SHA-256, Content-MD5,
// x-amz-checksum-*, length) passed, and is answered as S3 answers a PUT.
//
// A PUT is taken this way only when a session can do everything it asks: anything else (a
// copy, ACLs, tags, encryption, object lock, If-Match, a body too small to have chunks worth
// probing) is forwarded to the cluster unchanged, so S3's semantics never depend on which path
// a request took.

import type { IncomingMessage, ServerResponse } from "node:http";
import { parseTrailerNames } from "../../common/s3/aws-chunked.ts";
import { S3Error } from "../../common/s3/errors.ts";
import { PUT_MAX, STORED_HEADERS, storedContentEncoding } from "../../common/s3/put-object.ts";
import { EMPTY_SHA256, UNSIGNED_PAYLOAD, isStreamingMode } from "../../common/s3/sigv4.ts";
import { parseQuery, percentDecode } from "../../common/s3/uri.ts";
import type { AuthContext } from "../../common/s3/verify-request.ts";
import { SessionError, type EditingSession, type PendingEdit } from "../session.ts";
import { PRESIGN_PARAMS } from "./auth.ts";
import { decodeBody } from "./aws-chunked.ts";
import { BodyChecks } from "./body-checks.ts";
import { relayed, RelayedError } from "./errors.ts";
import { sendUpstream, type Transfer, type Upstream } from "./forward.ts";
import { beginCounted, CountingChannel, type SessionPool } from "./sessions.ts";
import { awaitedLater } from "../../common/deferred.ts";

/** Headers a session can honour, besides x-amz-meta-*; any other x-amz-* (or If-Match) sends the PUT to the cluster as it is. */
const HONOURED = new Set([
  "host", "authorization", "date", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token", "content-length", "transfer-encoding",
  "content-type", "content-md5", ...STORED_HEADERS, "x-amz-decoded-content-length", "x-amz-trailer", "x-amz-sdk-checksum-algorithm",
  "x-amz-checksum-algorithm", "x-amz-checksum-crc32", "x-amz-checksum-crc32c", "x-amz-checksum-crc64nvme", "x-amz-checksum-sha1",
  "x-amz-checksum-sha256", "x-amz-user-agent", "x-amz-storage-class", "if-none-match", "x-edgestore-replicas",
]);

export interface PutPlan {
  bucket: string;
  key: string;
  /** The object's length (decoded, for aws-chunked). */
  length: number;
  payloadHash: string;
  ifAbsent: boolean;
  replicas: number | null;
}

export interface PutOutcome extends Transfer {
  route: "session";
  size: number;
  chunks: number;
  reused: number;
  /** Payload bytes sent (what the commands and answers around them do not include). */
  payload: number;
}

/** The request as a chunk-aware PutObject, or null if it is anything else (or asks for what a session cannot do). */
export function planPut(req: IncomingMessage, headers: Record<string, string>, verified: AuthContext | null, minBytes: number): PutPlan | null {
  if (req.method !== "PUT") return null;
  const rawUrl = req.url ?? "/";
  const q = rawUrl.indexOf("?");
  const query = parseQuery(q < 0 ? "" : rawUrl.slice(q + 1));
  if (query.some(([k, v]) => !(k === "x-id" && v === "PutObject") && !PRESIGN_PARAMS.includes(k))) return null;
  const m = /^\/([^/]+)\/(.+)$/.exec(q < 0 ? rawUrl : rawUrl.slice(0, q));
  if (!m) return null;
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith("x-amz-meta-")) continue;
    if (HONOURED.has(name)) continue;
    if (name.startsWith("x-amz-") || name.startsWith("x-edgestore-") || name === "if-match") return null;
  }
  if (headers["x-amz-storage-class"] !== undefined && headers["x-amz-storage-class"] !== "STANDARD") return null;
  if (headers["if-none-match"] !== undefined && headers["if-none-match"].trim() !== "*") return null;
  const replicasText = headers["x-edgestore-replicas"];
  if (replicasText !== undefined && !/^\d+$/.test(replicasText)) return null;
  const payloadHash = verified?.payloadHash ?? headers["x-amz-content-sha256"] ?? UNSIGNED_PAYLOAD;
  const streaming = isStreamingMode(payloadHash);
  if (!streaming && payloadHash !== UNSIGNED_PAYLOAD && !/^[0-9a-f]{64}$/.test(payloadHash)) return null;
  const lengthText = streaming ? headers["x-amz-decoded-content-length"] : headers["content-length"];
  const length = lengthText === undefined ? NaN : Number(lengthText);
  // Too large: the cluster refuses it itself.
  if (!Number.isSafeInteger(length) || length < minBytes || length > PUT_MAX) return null;
  return {
    bucket: percentDecode(m[1]!),
    key: m[2]!.split("/").map(percentDecode).join("/"),
    length,
    payloadHash,
    ifAbsent: headers["if-none-match"] !== undefined,
    replicas: replicasText === undefined ? null : Number(replicasText),
  };
}

/** What a failed session PUT is answered with: a session's refusal under the code it carries. */
function asAnswerable(e: unknown): S3Error | RelayedError {
  if (e instanceof S3Error || e instanceof RelayedError) return e;
  if (e instanceof SessionError) return relayed(e.code, e.message.slice(e.code.length + 2));
  return new S3Error("InternalError", `the proxy's session with the cluster failed: ${String((e as Error)?.message ?? e)}`);
}

/** The base version's x-amz-meta-* names: S3's PutObject replaces metadata, a replace-mode session inherits it. */
async function baseMetaNames(up: Upstream, rawPath: string, versionId: string): Promise<string[]> {
  const res = await sendUpstream(up, { method: "HEAD", pathAndQuery: `${rawPath}?versionId=${encodeURIComponent(versionId)}`, headers: {}, payloadHash: EMPTY_SHA256, body: null });
  res.resume();
  if (res.statusCode !== 200) return [];
  return Object.keys(res.headers).filter((k) => k.startsWith("x-amz-meta-"));
}

/** What the new version's metadata is to be: exactly the request's, nothing left over from the base. */
function metadataEdit(headers: Record<string, string>, baseMeta: string[]): { set: Record<string, string>; del: string[] } {
  const set: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (k.startsWith("x-amz-meta-") || k === "content-type" || STORED_HEADERS.includes(k)) set[k] = v;
  if (set["content-encoding"] !== undefined) {
    const encoding = storedContentEncoding(set["content-encoding"]);
    if (encoding) set["content-encoding"] = encoding;
    else delete set["content-encoding"];
  }
  const del = [...baseMeta, "content-type", ...STORED_HEADERS].filter((k) => set[k] === undefined);
  return { set, del };
}

/** What the proxy hands a PUT besides the request itself: its sessions and upstream, and what it learned of the request. */
interface Ctx {
  pool: SessionPool;
  up: Upstream;
  verified: AuthContext | null;
  window: number | undefined;
  requestId: string;
  /** The request's headers, lower-cased (headerMap). */
  headers: Record<string, string>;
}

/** A PUT begun in a session: what it is to do, and the session, channel and pending version it holds. */
interface OpenPut {
  plan: PutPlan;
  s: EditingSession;
  ch: CountingChannel;
  e: PendingEdit;
}

/**
 * Run the PUT through a session and answer it. "fallback": the key is leased by another
 * session (an editing client, another proxy), and the PUT should go to the cluster as it is;
 * nothing of the body has been read then.
 */
export async function sessionPut(req: IncomingMessage, res: ServerResponse, plan: PutPlan, ctx: Ctx): Promise<PutOutcome | "fallback"> {
  return ctx.pool.inTurn(`${plan.bucket}/${plan.key}`, async () => {
    let { s, fresh } = await ctx.pool.acquire().catch((e) => {
      throw asAnswerable(e);
    });
    let ch = new CountingChannel(s);
    const begin = () => beginCounted(ch, { bucket: plan.bucket, key: plan.key, mode: "replace", base: "current", ...(plan.ifAbsent ? { ifAbsent: true } : {}), ...(plan.replicas !== null ? { replicas: plan.replicas } : {}) });
    let e: PendingEdit;
    try {
      e = await begin().catch(async (err) => {
        // An idle session may have been closed by the far end: one retry on a new one.
        if (fresh || !(err instanceof SessionError) || err.code !== "SessionClosed") throw err;
        ctx.pool.release(s, false);
        s = await ctx.pool.fresh();
        fresh = true;
        ch = new CountingChannel(s);
        return begin();
      });
    } catch (err) {
      const leased = err instanceof SessionError && err.code === "KeyLeased";
      ctx.pool.release(s, leased);
      if (leased) return "fallback";
      throw asAnswerable(err);
    }
    return run(req, res, ctx, { plan, s, ch, e });
  });
}

async function run(req: IncomingMessage, res: ServerResponse, ctx: Ctx, { plan, s, ch, e }: OpenPut): Promise<PutOutcome> {
  const { headers } = ctx;
  const rawUrl = req.url ?? "/";
  const rawPath = rawUrl.split("?")[0]!;
  let clientIn = 0;
  let reusable = false;
  try {
    const baseMeta = awaitedLater(e.baseVersionId === null ? Promise.resolve([]) : baseMetaNames(ctx.up, rawPath, e.baseVersionId));
    const trailerNames = parseTrailerNames(headers["x-amz-trailer"]);
    const checks = new BodyChecks((n) => headers[n], { payloadHash: plan.payloadHash, length: plan.length, trailerNames });
    // Not destroyed on an early stop: the client is still owed an answer on this connection.
    const raw = (async function* () {
      for await (const d of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
        clientIn += d.length;
        yield d as Uint8Array;
      }
    })();
    const decoded = isStreamingMode(plan.payloadHash) ? decodeBody(raw, { mode: plan.payloadHash, signing: ctx.verified, decodedLength: plan.length, trailerNames }) : null;
    const body = checks.tap(decoded ? decoded.body : raw);
    const r = await e.syncStream(body, ctx.window !== undefined ? { window: ctx.window } : {});
    const checksum = await checks.verify(decoded ? await decoded.trailers : {});
    const meta = metadataEdit(headers, await baseMeta);
    if (Object.keys(meta.set).length > 0 || meta.del.length > 0) await e.meta(meta.set, meta.del);
    const c = await e.commit();
    reusable = true;
    res.writeHead(200, {
      etag: c.etag,
      ...(c.versionId !== null ? { "x-amz-version-id": c.versionId } : {}),
      ...checksum,
      "x-amz-request-id": ctx.requestId,
      "x-edgestore-bytes-sent": String(ch.payload),
      "content-length": "0",
    });
    res.end();
    return { route: "session", status: 200, clientIn, clientOut: 0, upstreamSent: ch.sent, upstreamReceived: ch.received, size: r.size, chunks: r.chunks, reused: r.reused, payload: ch.payload };
  } catch (err) {
    // Nothing of the pending version was ever visible; dropping it leaves only unreferenced chunks.
    // (A commit that failed has already dropped it, so its abort is refused: the session is fine.)
    reusable = await e.abort().then(
      () => true,
      (a) => a instanceof SessionError && a.code !== "SessionClosed",
    );
    const pe = asAnswerable(err);
    throw Object.assign(pe, { transfer: { route: "session", clientIn, upstreamSent: ch.sent, upstreamReceived: ch.received } });
  } finally {
    ctx.pool.release(s, reusable);
  }
}
