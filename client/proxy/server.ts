// The co-deployed S3 proxy: a Node HTTP server next to unchanged S3 applications (on loopback)
// that speaks plain S3 to them and the chunk-aware protocol to the cluster. A PutObject goes
// through an editing session (put.ts), so re-uploading a changed object sends only the chunks
// the stored version lacks; every other request is forwarded re-signed (forward.ts). Local
// clients sign with the proxy's own key pair, or, without one, the proxy trusts loopback.
// One JSON object per request is logged: method, path, status, and the bytes each way on both
// sides, which is the figure the proxy is for.

import { Agent, createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { newRequestId, S3Error } from "../../common/s3/errors.ts";
import type { AuthContext } from "../../common/s3/verify-request.ts";
import type { Credentials } from "../extensions.ts";
import { verifyLocal, type LocalKey } from "./auth.ts";
import { RelayedError, sendError } from "./errors.ts";
import { forward, headerMap, type Transfer, type Upstream } from "./forward.ts";
import { planPut, sessionPut } from "./put.ts";
import { SessionPool } from "./sessions.ts";

export interface ProxyOptions {
  /** The cluster's endpoint and the key pair the proxy signs with there. */
  cluster: Credentials;
  /** The key pair local clients sign with; null: no check (only for a proxy on loopback). */
  local: LocalKey | null;
  /** Smaller PUTs are forwarded: below one minimum chunk there is nothing to deduplicate. */
  minSessionBytes?: number;
  /** Probe window of the streaming sync (PendingEdit.syncStream). */
  window?: number;
  /** Where log entries go; default one JSON line each on stdout. */
  log?: (entry: Record<string, unknown>) => void;
}

export const DEFAULT_MIN_SESSION_BYTES = 256 * 1024;

export function jsonLines(entry: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`);
}


/** "localhost", "127.0.0.1:8080", "[::1]:9000": a Host a loopback client sends, with or without a port. */
export function isLoopbackHost(host: string): boolean {
  const name = host.startsWith("[") ? host.slice(1, host.indexOf("]")) : host.replace(/:\d+$/, "");
  return name === "localhost" || name === "::1" || /^127(\.\d{1,3}){3}$/.test(name);
}

export class S3Proxy {
  readonly server: Server;
  private readonly up: Upstream;
  private readonly pool: SessionPool;
  private readonly local: LocalKey | null;
  private readonly minSessionBytes: number;
  private readonly window: number | undefined;
  private readonly log: (entry: Record<string, unknown>) => void;

  constructor(o: ProxyOptions) {
    this.up = { creds: o.cluster, agent: new Agent({ keepAlive: true, maxSockets: 64 }) };
    this.pool = new SessionPool(o.cluster);
    this.local = o.local;
    this.minSessionBytes = o.minSessionBytes ?? DEFAULT_MIN_SESSION_BYTES;
    this.window = o.window;
    this.log = o.log ?? jsonLines;
    this.server = createServer((req, res) => void this.handle(req, res));
    // A large PUT over a slow link takes longer than Node's default 5-minute request timeout.
    this.server.requestTimeout = 0;
    this.server.on("clientError", (err, socket) => {
      if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n");
      this.log({ level: "warn", event: "client-error", message: err.message });
    });
  }

  listen(port: number, host = "127.0.0.1"): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => {
        this.server.off("error", reject);
        const a = this.server.address() as AddressInfo;
        this.log({ level: "info", event: "listening", host: a.address, port: a.port, cluster: this.up.creds.endpoint, auth: this.local ? "sigv4" : "trust-loopback" });
        resolve(a);
      });
    });
  }

  async close(): Promise<void> {
    await new Promise<void>((r) => {
      this.server.close(() => r());
      this.server.closeAllConnections();
    });
    await this.pool.close();
    this.up.agent.destroy();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const t0 = performance.now();
    const requestId = newRequestId();
    const method = req.method ?? "GET";
    const rawUrl = req.url ?? "/";
    const path = rawUrl.split("?")[0]!;
    const entry: Record<string, unknown> = { level: "info", event: "request", requestId, method, path, query: rawUrl.includes("?") ? rawUrl.slice(rawUrl.indexOf("?") + 1).replace(/X-Amz-Signature=[^&]*/g, "X-Amz-Signature=…") : undefined };
    let status = 0;
    let moved: Partial<Transfer> & Record<string, unknown> = {};
    try {
      // Trusting loopback means trusting whatever runs on this machine, not any web page a
      // browser here opens: a page whose host name was rebound to 127.0.0.1 sends its own Host.
      if (!this.local && !isLoopbackHost(req.headers.host ?? "")) throw new S3Error("AccessDenied", "a --trust-loopback proxy answers only requests addressed to a loopback host");
      const verified: AuthContext | null = this.local ? await verifyLocal(req, this.local) : null;
      const headers = headerMap(req);
      const plan = planPut(req, headers, verified, this.minSessionBytes);
      const r = plan ? await sessionPut(req, res, plan, { pool: this.pool, up: this.up, verified, window: this.window, requestId, headers }) : null;
      if (r === null || r === "fallback") moved = { ...(await forward(req, res, this.up, verified)), route: r === "fallback" ? "forwarded (key leased)" : "forwarded" };
      else moved = { ...r };
      status = moved.status ?? res.statusCode;
    } catch (e) {
      const pe = e instanceof S3Error || e instanceof RelayedError ? e : new S3Error("InternalError", String((e as Error)?.message ?? e));
      status = sendError(res, pe, { resource: path, requestId, method });
      moved = { ...((e as { transfer?: Partial<Transfer> }).transfer ?? {}) };
      entry.level = status >= 500 ? "error" : "info";
      entry.error = { code: pe.code, message: pe.message };
    }
    // A body left unread (refused part-way, or answered early) would stall the next request on
    // this keep-alive connection: Node drains only bodies nobody started reading.
    if (!req.complete) req.resume();
    const { status: _s, clientIn, clientOut, upstreamSent, upstreamReceived, ...rest } = moved;
    this.log({
      ...entry,
      status,
      ms: Math.round(performance.now() - t0),
      clientBytesIn: clientIn ?? 0,
      clientBytesOut: clientOut ?? 0,
      upstreamBytesSent: upstreamSent ?? 0,
      upstreamBytesReceived: upstreamReceived ?? 0,
      ...rest,
    });
  }
}
