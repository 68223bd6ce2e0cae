// A TCP relay that delays what it carries by a fixed time each way: a WAN link's round trip,
// made on this machine (its kernel has no netem). Tests and `bench:wan` put it between a
// network namespace holding targets and the gateway on loopback, or between the S3 proxy and
// the gateway. Bytes are delivered in order, each piece `oneWayMs` after it arrived, and, with
// a rate, no sooner than the link could have sent it (each connection its own link); a
// direction holding more than its window in flight stops reading its source until it drains,
// as a real link's buffers would push back. The delay can change while connections are open
// (the next pieces take the new one).
// Test-only: production targets dial the gateway directly.

import { createConnection, createServer, type Server, type Socket } from "node:net";
import { joinSockets } from "./socket-pair.ts";

/** Bytes a direction holds before it stops reading: large enough for 1 Gbit/s at 200 ms. */
const WINDOW = 32 * 1024 * 1024;

/** A link's speed and delay, as a direction reads them for each piece. */
interface Link {
  oneWayMs: number;
  /** Bytes per ms; null: as fast as the machine. */
  rate: number | null;
}

class DelayedPipe {
  private readonly queue: { at: number; data: Buffer }[] = [];
  private queued = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly from: Socket;
  private readonly to: Socket;
  private readonly link: () => Link;
  /** When the rate-limited link finishes sending what it was given so far. */
  private linkFree = 0;

  constructor(from: Socket, to: Socket, link: () => Link) {
    this.from = from;
    this.to = to;
    this.link = link;
    from.on("data", (d: Buffer) => this.take(d));
    from.on("end", () => this.push(() => to.end()));
    to.on("drain", () => this.resumeIfRoom());
  }

  private take(data: Buffer): void {
    const { oneWayMs, rate } = this.link();
    const now = performance.now();
    let sent = now;
    if (rate !== null) sent = this.linkFree = Math.max(this.linkFree, now) + data.length / rate;
    this.queue.push({ at: sent + oneWayMs, data });
    this.queued += data.length;
    // A rate-limited link buffers what it can send in two round trips, as a router would.
    const window = rate === null ? WINDOW : Math.max(256 * 1024, rate * oneWayMs * 4);
    if (this.queued + this.to.writableLength > window) this.from.pause();
    this.arm();
  }

  /** An end of stream goes after the bytes before it, at the same delay. */
  private push(then: () => void): void {
    const wait = () => (this.queue.length === 0 ? then() : setTimeout(wait, 1));
    setTimeout(wait, this.link().oneWayMs);
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
    const { oneWayMs, rate } = this.link();
    const window = rate === null ? WINDOW : Math.max(256 * 1024, rate * oneWayMs * 4);
    if (this.from.isPaused() && this.queued + this.to.writableLength <= window / 2) this.from.resume();
  }
}

export class DelayRelay {
  private readonly server: Server;
  private readonly open = new Set<Socket>();
  /** The delay each way, in ms: half the round trip it adds. */
  oneWayMs: number;
  /** Each connection's rate each way, bytes per ms (null: unlimited). */
  rate: number | null;
  /** Bytes the gateway sent towards the site: what crossed the link to it. */
  sentToSite = 0;
  /** Bytes the site sent towards the gateway: what crossed the link from it (an upload's cost). */
  sentFromSite = 0;
  port = 0;
  host = "";

  private constructor(target: { host: string; port: number }, oneWayMs: number, rate: number | null) {
    this.oneWayMs = oneWayMs;
    this.rate = rate;
    this.server = createServer((client) => {
      const upstream = createConnection(target);
      client.setNoDelay(true);
      upstream.setNoDelay(true);
      upstream.on("data", (d: Buffer) => {
        this.sentToSite += d.length;
      });
      client.on("data", (d: Buffer) => {
        this.sentFromSite += d.length;
      });
      joinSockets(this.open, client, upstream, (a, b) => new DelayedPipe(a, b, () => ({ oneWayMs: this.oneWayMs, rate: this.rate })));
    });
  }

  /** A relay to `url`'s host and port, listening on `host` (a free port), adding `rttMs` to every round trip, at `mbit` each way if given. */
  static async to(url: string, o: { host: string; rttMs: number; mbit?: number | null }): Promise<DelayRelay> {
    const u = new URL(url);
    const r = new DelayRelay({ host: u.hostname, port: Number(u.port) }, o.rttMs / 2, o.mbit ? (o.mbit * 1e6) / 8 / 1000 : null);
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
