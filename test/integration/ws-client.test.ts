// The target's own WebSocket client (node-target/ws-client.ts) against the `ws` library's server,
// over plain TCP and over TLS (a self-signed certificate made with openssl for the test): the
// handshake with the target's headers, text and binary messages both ways at every length
// encoding, messages the server sends in fragments, pings, a refused upgrade and a close, and
// what a client must refuse from a server (written by hand, as `ws` would never send it).

import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocketServer, type WebSocket } from "ws";
import { WsClient } from "../../node-target/ws-client.ts";
import { pseudoRandom, removeDir } from "./helpers.ts";

interface Peer {
  url: string;
  server: Server;
  /** The server side of the last connection, and the request that opened it. */
  last: () => { ws: WebSocket; req: IncomingMessage };
}

async function start(tls: { key: Buffer; cert: Buffer } | null): Promise<Peer> {
  const server = tls ? createHttpsServer({ key: tls.key, cert: tls.cert }) : createHttpServer();
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
  let last: { ws: WebSocket; req: IncomingMessage } | null = null;
  server.on("upgrade", (req, socket, head) => {
    if (req.headers["x-refuse"]) {
      socket.end("HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n");
      return;
    }
    // A server that breaks the protocol: its answer written by hand, then the frame (hex) it was asked for.
    const raw = req.headers["x-raw-frame"];
    if (typeof raw === "string") {
      const accept = createHash("sha1").update(`${req.headers["sec-websocket-key"]}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64");
      const upgrade = req.headers["x-no-upgrade"] ? "" : "Upgrade: websocket\r\nConnection: Upgrade\r\n";
      socket.write(`HTTP/1.1 101 Switching Protocols\r\n${upgrade}Sec-WebSocket-Accept: ${accept}\r\n\r\n`);
      socket.write(Buffer.from(raw, "hex"));
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      last = { ws, req };
      // Echo: text back as text, binary back as binary.
      ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return { url: `${tls ? "wss" : "ws"}://127.0.0.1:${port}/_cluster/groups/3/connect?x=1`, server, last: () => last! };
}

interface Received {
  texts: string[];
  binaries: Buffer[];
  closed: { reason: string; status?: number } | null;
}

function dial(url: string, headers: Record<string, string> = {}): Promise<{ ws: WsClient; got: Received; next: () => Promise<void> }> {
  const ca = url.startsWith("wss:") ? tlsFiles!.cert : undefined;
  const got: Received = { texts: [], binaries: [], closed: null };
  let wake: (() => void) | null = null;
  const next = () => new Promise<void>((r) => (wake = r));
  return new Promise((resolve, reject) => {
    const ws = WsClient.connect(url, headers, {
      onOpen: () => resolve({ ws, got, next }),
      onText: (t) => {
        got.texts.push(t);
        wake?.();
      },
      onBinary: (d, done) => {
        got.binaries.push(Buffer.from(d));
        done();
        wake?.();
      },
      onClose: (reason, status) => {
        got.closed = { reason, ...(status !== undefined ? { status } : {}) };
        reject(new Error(`closed: ${reason}`));
        wake?.();
      },
    }, ca ? { ca } : {});
  });
}

let certDir: string;
let tlsFiles: { key: Buffer; cert: Buffer } | null = null;

beforeAll(() => {
  certDir = mkdtempSync(join(tmpdir(), "edgestore-ws-tls-"));
  const r = spawnSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(certDir, "key.pem"), "-out", join(certDir, "cert.pem"), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], { encoding: "utf8" });
  if (r.status === 0) tlsFiles = { key: readFileSync(join(certDir, "key.pem")), cert: readFileSync(join(certDir, "cert.pem")) };
});

afterAll(() => removeDir(certDir));

for (const mode of ["ws", "wss"] as const) {
  describe(`the target's WebSocket client over ${mode}://`, () => {
    let peer: Peer;
    beforeAll(async () => {
      // The client checks the server's certificate as usual; the test trusts its own (dial).
      if (mode === "wss" && !tlsFiles) throw new Error("openssl could not make a test certificate");
      peer = await start(mode === "wss" ? tlsFiles : null);
    });
    afterAll(() => peer.server.close());

    it("opens with the target's headers and path, and echoes text and binary at every length encoding", async () => {
      const { ws, got, next } = await dial(peer.url, { "x-target-id": "target-1", "x-join-secret": "s3cret" });
      expect(peer.last().req.headers["x-target-id"]).toBe("target-1");
      expect(peer.last().req.url).toBe("/_cluster/groups/3/connect?x=1");
      ws.send(JSON.stringify({ t: "hello" }));
      await next();
      expect(got.texts).toEqual(['{"t":"hello"}']);
      for (const [i, size] of [0, 1, 125, 126, 65_535, 65_536, 300_000, 1024 * 1024, 3 * 1024 * 1024 + 7].entries()) {
        const body = pseudoRandom(size, 40 + i);
        await ws.sendAsync(body);
        await next();
        expect(Buffer.compare(got.binaries.at(-1)!, Buffer.from(body))).toBe(0);
      }
      ws.close();
    });

    it("joins messages the server sends in fragments, and answers pings", async () => {
      const { ws, got, next } = await dial(peer.url);
      const server = peer.last().ws;
      const pongs: string[] = [];
      server.on("pong", (d) => pongs.push(String(d)));
      const a = pseudoRandom(70_000, 50);
      const b = pseudoRandom(30_000, 51);
      // A ping may come between the fragments of a message.
      server.send(a, { binary: true, fin: false });
      server.ping("are you there");
      server.send(b, { binary: true, fin: true });
      await next();
      expect(Buffer.compare(got.binaries.at(-1)!, Buffer.concat([a, b]))).toBe(0);
      server.ping("again");
      for (let i = 0; i < 50 && pongs.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
      expect(pongs).toEqual(["are you there", "again"]);
      server.send("one", { fin: false });
      server.send("two", { fin: true });
      await next();
      expect(got.texts.at(-1)).toBe("onetwo");
      ws.close();
    });

    it("fails the connection on what RFC 6455 says a client must not accept from a server", async () => {
      const text = (payload: Buffer, first = 0x81) => Buffer.concat([Buffer.from([first, payload.length]), payload]).toString("hex");
      const cases: [string, Record<string, string>, RegExp][] = [
        ["a 101 that is no WebSocket upgrade", { "x-raw-frame": "", "x-no-upgrade": "1" }, /without Upgrade: websocket/],
        ["a masked frame", { "x-raw-frame": "818400000000" + Buffer.from("ping").toString("hex") }, /masked frame from the server/],
        ["reserved bits", { "x-raw-frame": text(Buffer.from("{}"), 0xc1) }, /reserved bits set/],
        ["text that is not UTF-8", { "x-raw-frame": text(Buffer.from([0x7b, 0xff, 0xfe, 0x7d])) }, /not UTF-8/],
        ["a close frame with a one-byte body", { "x-raw-frame": text(Buffer.from([3]), 0x88) }, /one-byte body/],
      ];
      for (const [what, headers, why] of cases) {
        const reason = await dial(peer.url, headers).then(
          async ({ got, next }) => {
            if (!got.closed) await next();
            return got.closed?.reason ?? "still open";
          },
          (e: Error) => e.message,
        );
        expect(reason, what).toMatch(why);
      }
    });

    it("reports a refused upgrade with its status, and a close from the server", async () => {
      await expect(dial(peer.url, { "x-refuse": "1" })).rejects.toThrow(/refused with 403/);
      const { ws, got, next } = await dial(peer.url);
      peer.last().ws.close(1001, "going away");
      await next();
      expect(got.closed?.reason).toMatch(/closed by the server \(1001 going away\)/);
      expect(ws.open).toBe(false);
    });
  });
}
