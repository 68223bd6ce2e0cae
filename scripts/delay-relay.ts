// A TCP relay that delays what it carries by a fixed time each way: a WAN link's round trip,
// made on this machine (its kernel has no netem). Tests and `bench:wan` put it between a
// network namespace holding targets and the gateway on loopback. Bytes are delivered in order,
// each piece `oneWayMs` after it arrived; a direction holding more than `window` bytes in
// flight stops reading its source until it drains, as a real link's buffers would push back.
// The delay can change while connections are open (the next pieces take the new one).
// Test-only: production targets dial the gateway directly.

import { createConnection, createServer, type Server, type Socket } from "node:net";
import { joinSockets } from "./socket-pair.ts";

/** Bytes a direction holds before it stops reading: large enough for 1 Gbit/s at 200 ms. */
const WINDOW = 32 * 1024 * 1024;

class DelayedPipe {
  private readonly queue: { at: number; data: Buffer }[] = [];
  private queued = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly from: Socket;
  private readonly to: Socket;
  private readonly delay: () => number;

  constructor(from: Socket, to: Socket, delay: () => number) {
    this.from = from;
    this.to = to;
    this.delay = delay;
    from.on("data", (d: Buffer) => this.take(d));
    from.on("end", () => this.push(() => to.end()));
    to.on("drain", () => this.resumeIfRoom());
  }

  private take(data: Buffer): void {
    this.queue.push({ at: performance.now() + this.delay(), data });
    this.queued += data.length;
    if (this.queued + this.to.writableLength > WINDOW) this.from.pause();
    this.arm();
  }

  /** An end of stream goes after the bytes before it, at the same delay. */
  private push(then: () => void): void {
    const wait = () => (this.queue.length === 0 ? then() : setTimeout(wait, 1));
    setTimeout(wait, this.delay());
  }

  private arm(): void {
    if (this.timer || this.queue.length === 0) return;
    this.timer = setTimeout(() => this.flush(), Math.max(0, this.queue[0]!.at - performance.now()));
  }

  private flush(): void {
    this.timer = null;
    const now = performance.now();
    while (this.queue.length > 0 && this.queue[0]!.at <= now + 0.5) {
      const { data } = this.queue.shift()!;
      this.queued -= data.length;
      if (!this.to.destroyed) this.to.write(data);
    }
    this.resumeIfRoom();
    this.arm();
  }

  private resumeIfRoom(): void {
    if (this.from.isPaused() && this.queued + this.to.writableLength <= WINDOW / 2) this.from.resume();
  }
}

export class DelayRelay {
  private readonly server: Server;
  private readonly open = new Set<Socket>();
  /** The delay each way, in ms: half the round trip it adds. */
  oneWayMs: number;
  /** Bytes the gateway sent towards the site: what crossed the link to it. */
  sentToSite = 0;
  port = 0;
  host = "";

  private constructor(target: { host: string; port: number }, oneWayMs: number) {
    this.oneWayMs = oneWayMs;
    this.server = createServer((client) => {
      const upstream = createConnection(target);
      client.setNoDelay(true);
      upstream.setNoDelay(true);
      upstream.on("data", (d: Buffer) => {
        this.sentToSite += d.length;
      });
      joinSockets(this.open, client, upstream, (a, b) => new DelayedPipe(a, b, () => this.oneWayMs));
    });
  }

  /** A relay to `url`'s host and port, listening on `host` (a free port), adding `rttMs` to every round trip. */
  static async to(url: string, o: { host: string; rttMs: number }): Promise<DelayRelay> {
    const u = new URL(url);
    const r = new DelayRelay({ host: u.hostname, port: Number(u.port) }, o.rttMs / 2);
    await new Promise<void>((resolve) => r.server.listen(0, o.host, resolve));
    r.port = (r.server.address() as { port: number }).port;
    r.host = o.host;
    return r;
  }

  get url(): string {
    return `http://${this.host}:${this.port}`;
  }

  set rttMs(ms: number) {
    this.oneWayMs = ms / 2;
  }

  async close(): Promise<void> {
    for (const s of this.open) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
