// One editing session, as a Durable Object of its own (a new one per connection). The session
// is the connection, and a Worker invocation is the wrong owner for it: when the client goes,
// the invocation's work is cut off, so the pending versions' leases could not be released on
// close. An object lives on after its socket closes, aborts what the session held, and is
// what Cloudflare means a long-lived WebSocket to be served by.

import { DurableObject } from "cloudflare:workers";
import { configOf, type Env } from "../../shared/env.ts";
import { S3Error } from "../s3/errors.ts";
import type { RequestContext } from "../s3/context.ts";
import { EditSession } from "./socket.ts";

/** Set by the gateway after it authenticated the upgrade; the object is reachable only through it. */
const TENANT = "x-edgestore-session-tenant";
const ACCESS_KEY = "x-edgestore-session-access-key";

export class EditSessionHost extends DurableObject<Env> {
  override async fetch(req: Request): Promise<Response> {
    const tenant = req.headers.get(TENANT);
    const accessKey = req.headers.get(ACCESS_KEY);
    if (tenant === null || accessKey === null) return new Response("sessions are opened through the gateway", { status: 400 });
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    server.accept();
    // Since the standard-binary-type compatibility flag the runtime hands binary frames over as
    // Blobs, whose bytes come back asynchronously (and could overtake each other): ask for buffers.
    (server as WebSocket & { binaryType: string }).binaryType = "arraybuffer";
    const session = new EditSession({ env: this.env, cfg: configOf(this.env), tenant, accessKey }, server);
    this.ctx.waitUntil(session.done);
    return new Response(null, { status: 101, webSocket: client });
  }
}

/** GET /_session with a WebSocket upgrade, authenticated: hand the socket to a new session object. */
export async function openSession(ctx: RequestContext): Promise<Response> {
  if (ctx.req.headers.get("upgrade")?.toLowerCase() !== "websocket") throw new S3Error("InvalidRequest", "An editing session is a WebSocket: send Upgrade: websocket");
  const stub = ctx.env.SESSIONS.get(ctx.env.SESSIONS.newUniqueId());
  return stub.fetch(new Request(ctx.url.toString(), { headers: { upgrade: "websocket", [TENANT]: ctx.tenant, [ACCESS_KEY]: ctx.auth.accessKey } }));
}
