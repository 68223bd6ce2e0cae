// One editing session, as a Durable Object of its own (a new one per session). The session is
// the connection, and a Worker invocation is the wrong owner for it: when the client goes, the
// invocation's work is cut off, so the pending versions' leases could not be released on
// close. An object lives on after its socket closes, aborts what the session held, and is what
// Cloudflare means a long-lived WebSocket to be served by.
//
// The HTTP form (for clients that cannot hold a WebSocket) is the same object addressed by its
// id: each request carries one command, the pending versions live in the object's storage
// between requests, and a session not used for SESSION_TTL_SECONDS expires by alarm and aborts.

import { DurableObject } from "cloudflare:workers";
import { decodeClientCommand, isCommandError } from "../../../common/session-decode.ts";
import { configOf, type Env } from "../../shared/env.ts";
import type { RequestContext } from "../s3/context.ts";
import { S3Error, statusOf, type S3ErrorCode } from "../../../common/s3/errors.ts";
import { SessionCommands } from "./commands.ts";
import { LEASE_TTL_MS, PendingVersion, type PendingState, type SessionScope } from "./pending.ts";
import { PagedText } from "../../shared/paged-text.ts";
import { EditSession } from "./socket.ts";

/** Set by the gateway after it authenticated the request; the object is reachable only through it. */
const TENANT = "x-edgestore-session-tenant";
const ACCESS_KEY = "x-edgestore-session-access-key";
const OP = "x-edgestore-session-op";
/** The command of an HTTP-form request (JSON); a write's payload is the body. */
const COMMAND = "x-edgestore-command";

/** An HTTP session unused this long (SESSION_TTL_SECONDS, default 300) expires and aborts what it holds. */
function sessionTtlMs(env: Env): number {
  const s = Number(env.SESSION_TTL_SECONDS ?? "300");
  return (Number.isFinite(s) && s > 0 ? s : 300) * 1000;
}

export class EditSessionHost extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly pending: PagedText;
  private commands: SessionCommands | null = null;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec("CREATE TABLE IF NOT EXISTS session (k INTEGER PRIMARY KEY CHECK (k = 0), tenant TEXT NOT NULL, access_key TEXT NOT NULL, holder TEXT NOT NULL, expires INTEGER NOT NULL)");
    // Each pending version's state, by transaction: it carries a chunk list, past what one row may hold.
    this.pending = new PagedText(this.sql, "pending_pages");
    // A session open across the change from one row per pending version keeps its versions.
    if (this.sql.exec("PRAGMA table_info(pending)").toArray().length > 0) {
      for (const r of this.sql.exec("SELECT txn, state FROM pending").toArray()) this.pending.put(String(r.txn), String(r.state));
      this.sql.exec("DROP TABLE pending");
    }
  }

  override async fetch(req: Request): Promise<Response> {
    const tenant = req.headers.get(TENANT);
    const accessKey = req.headers.get(ACCESS_KEY);
    if (tenant === null || accessKey === null) return new Response("sessions are opened through the gateway", { status: 400 });
    const scope: SessionScope = { env: this.env, cfg: configOf(this.env), tenant, accessKey };
    if (req.headers.get("upgrade")?.toLowerCase() === "websocket") return this.socket(scope);
    // One command at a time, in arrival order, as on a socket.
    const run = this.chain.then(() => this.http(req, scope));
    this.chain = run.catch(() => {});
    return run;
  }

  private socket(scope: SessionScope): Response {
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    server.accept();
    // Since the standard-binary-type compatibility flag the runtime hands binary frames over as
    // Blobs, whose bytes come back asynchronously (and could overtake each other): ask for buffers.
    (server as WebSocket & { binaryType: string }).binaryType = "arraybuffer";
    const session = new EditSession(scope, server);
    this.ctx.waitUntil(session.done);
    return new Response(null, { status: 101, webSocket: client });
  }

  private async http(req: Request, scope: SessionScope): Promise<Response> {
    try {
      const op = req.headers.get(OP);
      if (op === "create") {
        const ttl = sessionTtlMs(this.env);
        this.sql.exec("INSERT INTO session (k, tenant, access_key, holder, expires) VALUES (0, ?, ?, ?, ?)", scope.tenant, scope.accessKey, crypto.randomUUID(), Date.now() + ttl);
        await this.ctx.storage.setAlarm(Date.now() + Math.min(ttl, LEASE_TTL_MS / 3));
        return Response.json({ session: this.ctx.id.toString(), expiresInSeconds: ttl / 1000 }, { status: 201 });
      }
      const commands = this.load(scope);
      if (op === "end") {
        await commands.abortAll();
        this.clear();
        return new Response(null, { status: 204 });
      }
      const raw = req.headers.get(COMMAND);
      if (raw === null) throw new S3Error("InvalidRequest", `an HTTP session request carries its command in ${COMMAND}`);
      const cmd = decodeClientCommand(raw);
      if (isCommandError(cmd)) throw new S3Error(cmd.code, cmd.code === "MalformedJSON" ? `${COMMAND} is one JSON command` : cmd.message);
      try {
        const answer = await commands.execute(cmd, cmd.op === "write" ? (req.body ?? new Response(new Uint8Array(0)).body) : null);
        return Response.json(answer);
      } finally {
        this.save(commands);
      }
    } catch (e) {
      const err = e instanceof S3Error ? e : new S3Error("InternalError", String(e));
      return Response.json({ op: "error", code: err.code, message: err.message }, { status: err.status });
    }
  }

  /** This session's commands, used now (its expiry moves on); NoSuchSession if it ended, expired or belongs to another tenant. */
  private load(scope: SessionScope): SessionCommands {
    const row = this.sql.exec("SELECT tenant, holder, expires FROM session WHERE k = 0").toArray()[0];
    if (!row || String(row.tenant) !== scope.tenant || Number(row.expires) < Date.now()) throw new S3Error("NoSuchSession", "There is no such session: it ended, expired, or was never opened");
    this.sql.exec("UPDATE session SET expires = ? WHERE k = 0", Date.now() + sessionTtlMs(this.env));
    return this.restore(scope, String(row.holder));
  }

  /** The pending versions, from memory or, after the object was evicted, from storage. */
  private restore(scope: SessionScope, holder: string): SessionCommands {
    if (!this.commands) {
      this.commands = new SessionCommands(scope, holder);
      for (const txn of this.pending.owners()) {
        // Written by save from the session's own pending versions: the cast only names what it wrote.
        this.commands.pending.set(txn, PendingVersion.fromState(scope, JSON.parse(this.pending.get(txn)!) as PendingState));
      }
    }
    return this.commands;
  }

  private save(commands: SessionCommands): void {
    this.pending.deleteUnder("");
    for (const [txn, p] of commands.pending) this.pending.put(txn, JSON.stringify(p.toState()));
  }

  private clear(): void {
    this.pending.deleteUnder("");
    this.sql.exec("DELETE FROM session");
    this.commands = null;
  }

  /** Keep the HTTP session's leases, or end the session once it has not been used for its TTL. */
  override async alarm(): Promise<void> {
    const row = this.sql.exec("SELECT tenant, access_key, holder, expires FROM session WHERE k = 0").toArray()[0];
    if (!row) return;
    const scope: SessionScope = { env: this.env, cfg: configOf(this.env), tenant: String(row.tenant), accessKey: String(row.access_key) };
    const commands = this.restore(scope, String(row.holder));
    if (Number(row.expires) < Date.now()) {
      await commands.abortAll();
      this.clear();
      return;
    }
    await commands.renew();
    // Wake at the expiry (as it stands now) or in time to renew the leases, whichever is first.
    await this.ctx.storage.setAlarm(Math.max(Date.now() + 10, Math.min(Number(row.expires), Date.now() + LEASE_TTL_MS / 3)));
  }
}

/** GET /_session with a WebSocket upgrade, authenticated: hand the socket to a new session object. */
export async function openSession(ctx: RequestContext): Promise<Response> {
  if (ctx.req.headers.get("upgrade")?.toLowerCase() !== "websocket") throw new S3Error("InvalidRequest", "An editing session is a WebSocket: send Upgrade: websocket (or use the HTTP form, POST /_sessions)");
  const stub = ctx.env.SESSIONS.get(ctx.env.SESSIONS.newUniqueId());
  return stub.fetch(new Request(ctx.url.toString(), { headers: { upgrade: "websocket", [TENANT]: ctx.tenant, [ACCESS_KEY]: ctx.auth.accessKey } }));
}

function sessionStub(ctx: RequestContext, id: string): DurableObjectStub {
  try {
    return ctx.env.SESSIONS.get(ctx.env.SESSIONS.idFromString(id));
  } catch {
    throw new S3Error("NoSuchSession", "There is no such session: it ended, expired, or was never opened");
  }
}

async function forward(ctx: RequestContext, stub: DurableObjectStub, op: string, body: ReadableStream | null): Promise<Response> {
  const headers: Record<string, string> = { [TENANT]: ctx.tenant, [ACCESS_KEY]: ctx.auth.accessKey, [OP]: op };
  const cmd = ctx.req.headers.get(COMMAND);
  if (cmd !== null) headers[COMMAND] = cmd;
  const res = await stub.fetch(new Request(ctx.url.toString(), { method: "POST", headers, body, duplex: "half" } as RequestInit));
  if (res.ok) return res;
  const e = (await res.json()) as { code: S3ErrorCode; message: string };
  throw new S3Error(statusOf(e.code) ? e.code : "InternalError", e.message);
}

/** POST /_sessions: a new HTTP-form session, answered with its id. */
export function createHttpSession(ctx: RequestContext): Promise<Response> {
  return forward(ctx, ctx.env.SESSIONS.get(ctx.env.SESSIONS.newUniqueId()), "create", null);
}

/**
 * POST /_sessions/{id}: one command (x-edgestore-command), a write's payload as the body. The
 * payload goes to the session unread here, so it must be sent UNSIGNED-PAYLOAD: a signed hash
 * would go unchecked, and that is refused rather than ignored.
 */
export function sessionCommand(ctx: RequestContext, id: string): Promise<Response> {
  const hash = ctx.auth.payloadHash;
  if (ctx.req.body && hash !== "UNSIGNED-PAYLOAD" && hash !== EMPTY_SHA256) {
    throw new S3Error("InvalidRequest", "Send an HTTP session's write payload with x-amz-content-sha256: UNSIGNED-PAYLOAD");
  }
  return forward(ctx, sessionStub(ctx, id), "command", ctx.req.body);
}

const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/** DELETE /_sessions/{id}: end the session, aborting what it holds. */
export function endHttpSession(ctx: RequestContext, id: string): Promise<Response> {
  return forward(ctx, sessionStub(ctx, id), "end", null);
}
