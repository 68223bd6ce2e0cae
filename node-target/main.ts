#!/usr/bin/env node
// node-target: the storage agent on a host. It dials the gateway (no inbound port), registers
// its data directory with the cluster, and serves the groups it is assigned to.

import { parseArgs } from "node:util";
import { serveMetrics, watch } from "./metrics.ts";
import { Scrubber } from "./scrub.ts";
import { ClusterLink } from "./cluster-link.ts";
import { PeerLink } from "./peer-link.ts";
import { initIdentity, loadIdentity, saveIdentity } from "./config.ts";
import { log, setLogFields } from "./log.ts";
import { RunJournal } from "./run-journal.ts";
import { ChunkStore } from "./store.ts";

const USAGE = `usage: node-target <command> [options]

commands:
  init   create (or update) a data directory's identity
  run    serve a data directory (initialising it first if --location is given)

options:
  --data-dir <path>     data directory (required)
  --location <path>     failure-domain path, e.g. /local/zone-a/rack-1/host-1/disk-0
  --capacity <bytes>    bytes this target may use (default 100 GiB)
  --gateway <url>       gateway URL (default http://127.0.0.1:8787, env GATEWAY_URL)
  --join-secret <s>     shared join secret (env JOIN_SECRET)
  --no-direct-io        buffered file I/O even where O_DIRECT works (default: direct where it works)
  --scrub-rate <B/s>    re-verify stored data at most this fast (default 4194304; 0: no scrub)
  --scrub-pause <ms>    pause between full scrub passes (default 3600000)
  --peer-listen <h:p>   accept chunk frames from other targets here (chain replication: the
                        group sends a chunk once and the targets pass it on); port 0: any
  --peer-address <h:p>  the address other targets dial, if not the one listened on
  --metrics-listen <h:p>
                        serve Prometheus metrics at http://h:p/metrics (port 0: any; the address
                        is logged as "metrics listening"); keep it on 127.0.0.1 or a private network
  --drain               decommission: leave every group's membership (each is given another
                        member) and serve what this target holds while the groups copy it to
                        their members; stop it once they have (docs/durability.md)
  --help                show this help
`;

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      "data-dir": { type: "string" },
      location: { type: "string" },
      "metrics-listen": { type: "string" },
      capacity: { type: "string" },
      gateway: { type: "string" },
      "join-secret": { type: "string" },
      "no-direct-io": { type: "boolean" },
      "scrub-rate": { type: "string" },
      "scrub-pause": { type: "string" },
      drain: { type: "boolean" },
      "peer-listen": { type: "string" },
      "peer-address": { type: "string" },
      help: { type: "boolean" },
    },
  });
  const command = positionals[0];
  if (values.help || !command) {
    process.stdout.write(USAGE);
    process.exit(values.help ? 0 : 2);
  }
  const dataDir = values["data-dir"];
  if (!dataDir) throw new Error("--data-dir is required");
  const capacity = Number(values.capacity ?? 100 * 2 ** 30);

  let identity = await loadIdentity(dataDir);
  if (command === "init" || (values.location && (!identity || identity.location !== values.location || identity.capacity !== capacity))) {
    if (!values.location) throw new Error("--location is required to initialise a data directory");
    identity = await initIdentity(dataDir, values.location, capacity);
  }
  if (command === "init") {
    process.stdout.write(JSON.stringify(identity) + "\n");
    return;
  }
  if (command !== "run") throw new Error(`unknown command ${command}\n${USAGE}`);
  if (!identity) throw new Error(`${dataDir} is not initialised: run 'node-target init --location ...' first`);

  setLogFields({ target: identity.id, location: identity.location });
  const store = new ChunkStore(dataDir, { directIo: !values["no-direct-io"] });
  await store.open();
  const journal = new RunJournal(dataDir, store);
  const started = await journal.begin();
  log("info", "target starting", { data_dir: dataDir, chunks: store.stats.chunks, bytes: store.stats.bytes, direct_io: store.io.direct, unclean: started.unclean, lost: started.lost });

  const joinSecret = values["join-secret"] ?? process.env.JOIN_SECRET;
  if (!joinSecret) throw new Error("--join-secret or JOIN_SECRET is required");
  // Chain replication: frames from peers go to the group link they belong to (late-bound: the
  // links are the cluster link's, made below).
  let link: ClusterLink | null = null;
  const peer = values["peer-listen"]
    ? await PeerLink.start(
        values["peer-listen"],
        values["peer-address"],
        (group, frame, hop) => link?.groupLink(group)?.peerFrame(frame, hop) ?? Promise.resolve(),
        (group, txn, item, to, reason) => link?.groupLink(group)?.chainBroken(txn, item, to, reason),
      )
    : null;
  // Bytes accepted in bids but not yet written, shared by every group link (and read by metrics).
  const queue = { bytes: 0 };
  link = new ClusterLink(
    {
      gateway: values.gateway ?? process.env.GATEWAY_URL ?? "http://127.0.0.1:8787",
      joinSecret,
      id: identity.id,
      location: identity.location,
      capacity: identity.capacity,
      lost: started.lost,
      draining: values.drain ?? false,
      peer,
    },
    { store, capacity: identity.capacity, queue },
    identity.groupCount ?? null,
    (groupCount) => void saveIdentity(dataDir, { ...identity!, groupCount }),
  );
  watch({
    storedBytes: () => store.stats.bytes,
    chunks: () => store.stats.chunks,
    capacity: () => identity!.capacity,
    freeBytes: () => store.freeBytes(identity!.capacity),
    queueBytes: () => queue.bytes,
    groupLinks: () => link!.linksUp(),
  });
  const served = values["metrics-listen"] ? await serveMetrics(values["metrics-listen"]) : null;
  const scrubRate = Number(values["scrub-rate"] ?? 4 * 1024 * 1024);
  const scrubPause = Number(values["scrub-pause"] ?? 3_600_000);
  if (!(scrubRate >= 0) || !(scrubPause >= 0)) throw new Error("--scrub-rate and --scrub-pause are non-negative numbers");
  const scrub = scrubRate > 0 ? new Scrubber(store, (ref, reason) => link!.linkFor(ref.kind === "vm" ? ref.nhid : ref.chid)?.reportDamaged(ref, reason) ?? false, { rate: scrubRate, pauseMs: scrubPause }) : null;
  scrub?.start();
  const stop = (sig: string) => {
    log("info", "target stopping", { signal: sig });
    scrub?.stop();
    served?.server.close();
    link!.close();
    peer?.close();
    // The journal's clean mark goes last: a stop cut short before it is checked as a crash.
    void journal
      .end()
      .catch((e) => log("warn", "journal not closed", { error: String(e) }))
      .finally(() => {
        store.close();
        setTimeout(() => process.exit(0), 50).unref();
      });
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
}

main().catch((e) => {
  log("error", "fatal", { error: e instanceof Error ? e.message : String(e) });
  process.exit(1);
});
