// Serving a data directory (`node-target run`, and `node-target drain`, which is a run that
// leaves every group and ends once they have its data): open and check the store, dial the
// cluster and the groups, scrub in the background, and stop cleanly on a signal.

import { ClusterLink } from "./cluster-link.ts";
import { saveIdentity, type TargetIdentity } from "./config.ts";
import { log, setLogFields } from "./log.ts";
import { serveMetrics, watch } from "./metrics.ts";
import { loadPeerIdentity } from "./peer-identity.ts";
import { PeerLink } from "./peer-link.ts";
import { RunJournal } from "./run-journal.ts";
import { Scrubber } from "./scrub.ts";
import { ChunkStore } from "./store.ts";

export interface ServeOptions {
  dataDir: string;
  identity: TargetIdentity;
  gateway: string;
  credential: { key: string } | { joinSecret: string };
  directIo: boolean;
  scrubRate: number;
  scrubPause: number;
  peerListen?: string;
  peerAddress?: string;
  metricsListen?: string;
  draining: boolean;
  /** Draining: each group that has this target's data at R elsewhere; `complete` once all have. */
  onDrainProgress?: (drained: number, held: number, complete: boolean) => void;
}

/** Runs until `stop` (or a signal) and resolves once the stop is clean. */
export async function serve(o: ServeOptions): Promise<{ stop(reason: string): Promise<void>; stopped: Promise<void> }> {
  const { dataDir, identity } = o;
  setLogFields({ target: identity.id, location: identity.location });
  const store = new ChunkStore(dataDir, { directIo: o.directIo });
  await store.open();
  const journal = new RunJournal(dataDir, store);
  const metricsAt = o.metricsListen ? await serveMetrics(o.metricsListen) : null;
  const started = await journal.begin(metricsAt ? `http://${metricsAt.address}/metrics` : null);
  log("info", "target starting", { data_dir: dataDir, chunks: store.stats.chunks, bytes: store.stats.bytes, direct_io: store.io.direct, unclean: started.unclean, lost: started.lost });

  // Chain replication: frames from peers go to the group link they belong to (late-bound: the
  // links are the cluster link's, made below).
  let link: ClusterLink | null = null;
  const peer = o.peerListen
    ? await PeerLink.start({
        listen: o.peerListen,
        ...(o.peerAddress ? { advertise: o.peerAddress } : {}),
        identity: await loadPeerIdentity(dataDir, identity.id),
        onFrame: (group, frame, hop) => link?.groupLink(group)?.peerFrame(frame, hop) ?? Promise.resolve(),
        onBroken: ({ group, txn, item }, to, reason) => link?.groupLink(group)?.chainBroken(txn, item, to, reason),
      })
    : null;
  // Bytes accepted in bids but not yet written, shared by every group link (and read by metrics).
  const queue = { bytes: 0 };
  link = new ClusterLink(
    {
      gateway: o.gateway,
      credential: o.credential,
      id: identity.id,
      location: identity.location,
      capacity: identity.capacity,
      lost: started.lost,
      draining: o.draining,
      peer,
      ...(o.onDrainProgress ? { onDrainProgress: o.onDrainProgress } : {}),
    },
    { store, capacity: identity.capacity, queue },
    identity.groupCount ?? null,
    (groupCount) => void saveIdentity(dataDir, { ...identity, groupCount }),
  );
  watch({
    storedBytes: () => store.stats.bytes,
    chunks: () => store.stats.chunks,
    capacity: () => identity.capacity,
    freeBytes: () => store.freeBytes(identity.capacity),
    queueBytes: () => queue.bytes,
    groupLinks: () => link!.linksUp(),
  });
  const scrub =
    o.scrubRate > 0
      ? new Scrubber(store, (ref, reason) => link!.linkFor(ref.kind === "vm" ? ref.nhid : ref.chid)?.reportDamaged(ref, reason) ?? false, { rate: o.scrubRate, pauseMs: o.scrubPause, busy: () => Date.now() - store.lastTraffic < 1_000 })
      : null;
  scrub?.start();

  let done!: () => void;
  const stopped = new Promise<void>((r) => (done = r));
  let stopping: Promise<void> | null = null;
  const stop = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      log("info", "target stopping", { signal: reason });
      scrub?.stop();
      metricsAt?.server.close();
      link!.close();
      peer?.close();
      await store.close().catch((e: unknown) => log("warn", "store not closed cleanly", { error: String(e) }));
      // The journal's clean mark goes last: a stop cut short before it is checked as a crash.
      await journal.end().catch((e: unknown) => log("warn", "journal not closed", { error: String(e) }));
      done();
    })();
    return stopping;
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
  return { stop, stopped };
}
