// Background scrub (issue 6, point 3): re-read and re-hash every chunk file and version manifest
// this target holds, at a bounded rate, so damage is found while good copies still exist
// elsewhere, not when a client finally reads the last one. A copy that fails its hash is
// quarantined by the store (ChunkStore.readVerified) and reported to the item's group, which
// restores the replica count from a good copy. The rate bounds the disk bandwidth taken from
// client traffic, and while clients keep the target busy the scrub goes at a sixteenth of it:
// re-hashing competes with them for the same cores (at the default rate, a fifth of a target's
// CPU during a large PUT on the dev machine). A pass over everything is followed by a pause.

import type { StoredRef } from "../common/protocol.ts";
import { log } from "./log.ts";
import type { ChunkStore } from "./store.ts";

export interface ScrubOptions {
  /** Bytes re-read per second, at most. */
  rate: number;
  /** Pause between full passes. */
  pauseMs: number;
  /** Clients wrote or read on this target lately: the scrub slows down. */
  busy?: () => boolean;
}

/** The share of the rate a scrub keeps while clients are busy. */
const BUSY_SHARE = 1 / 16;

/** Where a damaged copy is reported: true once its group has been told. */
export type ReportDamage = (ref: StoredRef, reason: string) => boolean;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

export class Scrubber {
  private readonly store: ChunkStore;
  private readonly report: ReportDamage;
  private readonly opts: ScrubOptions;
  /** Damage found while its group's link was down: told on the next chance. */
  private readonly unreported = new Map<string, { ref: StoredRef; reason: string }>();
  private stopped = false;
  passes = 0;

  constructor(store: ChunkStore, report: ReportDamage, opts: ScrubOptions) {
    this.store = store;
    this.report = report;
    this.opts = opts;
  }

  start(): void {
    void this.loop().catch((e) => log("error", "scrub stopped", { error: String(e) }));
  }

  stop(): void {
    this.stopped = true;
  }

  private async loop(): Promise<void> {
    // The first pass waits too: a target that just started is busy rejoining its groups.
    await sleep(this.opts.pauseMs);
    while (!this.stopped) {
      const t0 = Date.now();
      const r = await this.pass();
      this.passes++;
      log("info", "scrub pass", { items: r.items, bytes: r.bytes, damaged: r.damaged, ms: Date.now() - t0 });
      if (!this.stopped) await sleep(this.opts.pauseMs);
    }
  }

  private async pass(): Promise<{ items: number; bytes: number; damaged: number }> {
    let nextAt = Date.now();
    const r = { items: 0, bytes: 0, damaged: 0 };
    const check = async (ref: StoredRef) => {
      if (this.stopped) return;
      this.retryReports();
      // Deleted since the pass listed it (its group reclaimed it): gone on purpose, not damaged.
      if (!this.store.has(ref)) return;
      const bytes = await this.store.readVerified(ref).catch(() => null);
      r.items++;
      if (bytes) r.bytes += bytes.length;
      else {
        r.damaged++;
        this.damaged(ref, "scrub: the stored bytes do not match their hash, or are unreadable");
      }
      // Never faster than the rate (a sixteenth of it while clients are busy): wait until the bytes read so far are due.
      const rate = this.opts.busy?.() ? this.opts.rate * BUSY_SHARE : this.opts.rate;
      nextAt = Math.max(nextAt, Date.now() - 1000) + ((bytes?.length ?? 0) / rate) * 1000;
      if (nextAt > Date.now()) await sleep(nextAt - Date.now());
    };
    for await (const ref of this.store.storedRefs()) {
      if (this.stopped) break;
      await check(ref);
    }
    return r;
  }

  private damaged(ref: StoredRef, reason: string): void {
    log("error", "scrub found a damaged copy", { kind: ref.kind, chid: ref.chid, reason });
    if (!this.report(ref, reason)) this.unreported.set(`${ref.kind}:${ref.chid}`, { ref, reason });
  }

  private retryReports(): void {
    for (const [k, d] of this.unreported) if (this.report(d.ref, d.reason)) this.unreported.delete(k);
  }
}
