// Prometheus metrics of this target, served as text on a local port (--metrics-listen) for a
// scraper on the same host. prom-client gives the exposition format, histograms and the
// process's own metrics (CPU, memory, event-loop lag) without code of ours. Counters are
// bumped where things happen; what the store and the links already know (bytes stored, chunk
// count, queue depth, links up) is read when a scrape asks, so it is never out of step.

import { createServer, type Server } from "node:http";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { log } from "./log.ts";

export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: "edgestore_target_" });

const r = [registry];

export const metrics = {
  bids: new Counter({ name: "edgestore_target_put_bids_total", help: "Bids on put proposals, by answer (accept, have, refuse)", labelNames: ["bid"] as const, registers: r }),
  bidsWon: new Counter({ name: "edgestore_target_put_bids_won_total", help: "Accepted bids the group selected this target for", registers: r }),
  bidsLost: new Counter({ name: "edgestore_target_put_bids_lost_total", help: "Accepted bids the group did not select", registers: r }),
  written: new Counter({ name: "edgestore_target_written_bytes_total", help: "Bytes of chunks and manifests written and fsynced, by kind", labelNames: ["kind"] as const, registers: r }),
  served: new Counter({ name: "edgestore_target_served_bytes_total", help: "Bytes of stored items sent to groups", registers: r }),
  reclaimed: new Counter({ name: "edgestore_target_reclaimed_bytes_total", help: "Bytes deleted because their group reclaimed them", registers: r }),
  repair: new Counter({ name: "edgestore_target_repair_bytes_total", help: "Bytes written for repairs and re-replication (not client writes)", registers: r }),
  verifyFailures: new Counter({
    name: "edgestore_target_verify_failures_total",
    help: "Stored copies found damaged and quarantined, by who found it (scrub, read, check)",
    labelNames: ["by"] as const,
    registers: r,
  }),
  fsync: new Histogram({
    name: "edgestore_target_fsync_seconds",
    help: "Time of each fsync of a written item (file, then directory)",
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: r,
  }),
};

/** What a scrape reads from the running target. */
export interface LiveState {
  storedBytes(): number;
  chunks(): number;
  capacity(): number;
  freeBytes(): number;
  queueBytes(): number;
  groupLinks(): number;
}

export function watch(state: LiveState): void {
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers: r,
      collect() {
        this.set(read());
      },
    });
  gauge("edgestore_target_stored_bytes", "Bytes of chunk files and manifests stored", () => state.storedBytes());
  gauge("edgestore_target_chunks", "Chunk files stored", () => state.chunks());
  gauge("edgestore_target_capacity_bytes", "Bytes this target may use (--capacity)", () => state.capacity());
  gauge("edgestore_target_free_bytes", "Bytes this target may still take", () => state.freeBytes());
  gauge("edgestore_target_queue_bytes", "Bytes accepted in bids but not yet written (the queue new bids wait behind)", () => state.queueBytes());
  gauge("edgestore_target_group_links", "Negotiating groups this target has a live link to", () => state.groupLinks());
}

/** Serve GET /metrics on host:port (port 0: any); resolves to the address listened on. */
export async function serveMetrics(listen: string): Promise<{ server: Server; address: string }> {
  const at = listen.lastIndexOf(":");
  const host = at > 0 ? listen.slice(0, at) : "127.0.0.1";
  const port = Number(at >= 0 ? listen.slice(at + 1) : listen);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--metrics-listen wants host:port, got "${listen}"`);
  const server = createServer((req, res) => {
    if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("only GET /metrics is served here\n");
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
      (e: unknown) => res.writeHead(500, { "content-type": "text/plain" }).end(`${String(e)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const a = server.address() as { address: string; port: number };
  const address = `${a.address}:${a.port}`;
  log("info", "metrics listening", { address, path: "/metrics" });
  return { server, address };
}
