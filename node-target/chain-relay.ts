// What a target keeps of chains it is part of beyond the writes it was selected for: frames a
// peer passed on before this target's group told it of their chain (kept, bounded, until the
// word comes or the transaction ends), and items it only relays (it holds or refused them, but
// sits in their chain, so their frames still come here and must still go on).

import { decodeFrame, type ChainHop } from "../common/protocol.ts";
import type { Hop } from "./peer-link.ts";

/** Frames a peer passed on before this target's select-put arrived, kept up to this much in all. */
const EARLY_MAX = 32 * 1024 * 1024;
/** A relay whose frames have not all come this long after it was set up is forgotten. */
const RELAY_TTL_MS = 60_000;

/** A frame kept for its chain's word, and whether it went on already. */
interface Kept {
  data: Buffer;
  passedOn: boolean;
}

export class ChainRelay {
  /** Frames kept by "chain/txn/item". */
  private readonly early = new Map<string, Kept[]>();
  private earlyBytes = 0;
  /** Items passed on without being written here, by "txn/item". */
  private readonly relays = new Map<string, ChainHop & { at: number }>();
  /** Passes a frame on to the next of a hop (nothing at a chain's end). */
  private readonly passOn: (hop: Hop, data: Buffer) => Promise<void>;

  constructor(passOn: (hop: Hop, data: Buffer) => Promise<void>) {
    this.passOn = passOn;
  }

  /** The frames kept for (chain, txn, item), each not yet passed on now passed on down the chain as the group told it. */
  takeEarly(told: ChainHop, txn: number, item: number): { data: Buffer; passed: Promise<void> }[] {
    const key = `${told.chain}/${txn}/${item}`;
    const kept = this.early.get(key);
    if (!kept) return [];
    this.early.delete(key);
    return kept.map(({ data, passedOn }) => {
      this.earlyBytes -= data.length;
      return { data, passed: passedOn ? Promise.resolve() : this.passOn({ chain: told.chain, rest: told.forward }, data) };
    });
  }

  /** Keep a peer's frame that came before its chain's word (dropped past EARLY_MAX: the group resends what no save came for). */
  keepEarly(hop: Hop, at: { txn: number; item: number; passedOn: boolean }, frame: Buffer): void {
    if (this.earlyBytes + frame.length > EARLY_MAX) return;
    const key = `${hop.chain}/${at.txn}/${at.item}`;
    const kept = this.early.get(key) ?? [];
    // Kept past this call, so copied: a received frame lives in a block that is reused.
    kept.push({ data: Buffer.from(frame), passedOn: at.passedOn });
    this.early.set(key, kept);
    this.earlyBytes += frame.length;
  }

  /**
   * An item of a chain placed without bids that this target will not write (it holds it, or
   * refused it): its frames still come here, and must still go on down the chain.
   */
  relayOnly(txn: number, item: number, hop: ChainHop): void {
    const now = Date.now();
    // Relays whose frames never came (the group gave up on them) are forgotten in time.
    for (const [k, r] of this.relays) if (now - r.at > RELAY_TTL_MS) this.relays.delete(k);
    this.relays.set(`${txn}/${item}`, { ...hop, at: now });
    // Frames that came before this word go on now (and are not written here).
    for (const frame of this.takeEarly(hop, txn, item)) if (decodeFrame(frame.data).header.last) this.relays.delete(`${txn}/${item}`);
  }

  /** The relay of (txn, item), if this target relays it (down `chain`, when a peer's frame names one). */
  relayOf(txn: number, item: number, chain: string | null): ChainHop | null {
    const r = this.relays.get(`${txn}/${item}`);
    return r && (chain === null || r.chain === chain) ? r : null;
  }

  /** The relay's last frame went by. */
  relayed(txn: number, item: number): void {
    this.relays.delete(`${txn}/${item}`);
  }

  /** A transaction ended: what was kept for it goes. */
  dropTxn(txn: number): void {
    for (const [key, frames] of this.early) {
      if (key.split("/")[1] !== String(txn)) continue;
      for (const f of frames) this.earlyBytes -= f.data.length;
      this.early.delete(key);
    }
  }

  /** The link to the group went: every transaction on it ended. */
  clear(): void {
    this.early.clear();
    this.earlyBytes = 0;
    this.relays.clear();
  }
}
