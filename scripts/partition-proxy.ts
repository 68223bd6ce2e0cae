// A TCP proxy on loopback that can cut a target off from the gateway and let it back: what a
// network partition looks like from both ends, without touching either process. Tests point a
// target's --gateway at it; cut() resets every connection through it and every new one until
// heal(). It also counts the bytes each way, so a test can see which targets served a read, and
// how many bytes the edge sent them.
// Test-only: production targets dial the gateway directly.

import { createConnection, createServer, type Server, type Socket } from "node:net";
import { joinSockets } from "./socket-pair.ts";

export class PartitionProxy {
  private readonly server: Server;
  private readonly open = new Set<Socket>();
  private cutOff = false;
  port = 0;
  /** Bytes the target side sent through the proxy (payload, bids, acks alike). */
  sentByTarget = 0;
  /** Bytes the gateway sent the target through it: what crossed the edge towards it. */
  sentToTarget = 0;

  private constructor(target: { host: string; port: number }) {
    this.server = createServer((client) => {
      if (this.cutOff) {
        client.resetAndDestroy();
        return;
      }
      const upstream = createConnection(target);
      client.on("data", (d: Buffer) => {
        this.sentByTarget += d.length;
      });
      upstream.on("data", (d: Buffer) => {
        this.sentToTarget += d.length;
      });
      joinSockets(this.open, client, upstream, (a, b) => a.pipe(b));
    });
  }

  /** A proxy to `url`'s host and port, listening on a free loopback port. */
  static async to(url: string): Promise<PartitionProxy> {
    const u = new URL(url);
    const p = new PartitionProxy({ host: u.hostname, port: Number(u.port) });
    await new Promise<void>((resolve) => p.server.listen(0, "127.0.0.1", resolve));
    p.port = (p.server.address() as { port: number }).port;
    return p;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Reset every connection through the proxy, and refuse new ones until heal(). */
  cut(): void {
    this.cutOff = true;
    for (const s of this.open) s.resetAndDestroy();
  }

  heal(): void {
    this.cutOff = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
