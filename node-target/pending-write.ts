// A write in progress: bytes are hashed as they arrive and kept (a chunk's in pool blocks, a
// manifest's as they are) until the last one; then the hash is checked against the name, and
// only a match is put in place: a chunk as a record of the next pack batch, a manifest as a row
// of the manifest log. Nothing of a failed or abandoned write is ever on disk under its name.

import { createHash, type Hash } from "node:crypto";
import type { Chid, Nhid, Uvid } from "../common/ids.ts";
import type { StoredRef } from "../common/protocol.ts";
import { BLOCK, type BlockPool } from "./block-io.ts";
import type { Placed } from "./packs/pack-index.ts";

/** What a write needs from its store. */
export interface WriteHost {
  pool: BlockPool;
  /** Append a verified chunk to the packs; resolves once it is durable and indexed. */
  placeChunk(chid: Chid, parts: readonly Uint8Array[], length: number): Promise<Placed | null>;
  placeManifest(nhid: Nhid, uvid: Uvid, chid: Chid, bytes: Uint8Array): Promise<void>;
  /** Resolves once no delete of this chunk is in progress (a new copy must not land under one). */
  removed(chid: Chid): Promise<void>;
  landed(w: PendingWrite, ms: number): void;
  ended(w: PendingWrite): void;
}

export class PendingWrite {
  private received = 0;
  private readonly blocks: Buffer[] = [];
  private readonly hash: Hash = createHash("sha256");
  private readonly kept: Uint8Array | null;
  private readonly host: WriteHost;
  readonly ref: StoredRef;
  readonly size: number;
  /**
   * Its group reclaimed this item while it was being written: the write began before the
   * reclaim (the group's messages arrive in order), so it is a stale copy (a repair or a put
   * the group has given up on) and must not land after the reclaim found nothing to delete.
   */
  doomed = false;
  /** The chunk was stored here already when this copy landed (two writes of one chunk raced): not a new chunk. */
  replaced = false;
  /** While the bytes are put in place, past the last look at `doomed`: what a reclaim waits for. */
  placing: Promise<void> | null = null;

  constructor(host: WriteHost, ref: StoredRef, size: number) {
    this.host = host;
    this.ref = ref;
    this.size = size;
    this.kept = ref.kind === "vm" ? new Uint8Array(size) : null;
  }

  get chid(): Chid {
    return this.ref.chid;
  }

  async write(offset: number, bytes: Uint8Array): Promise<void> {
    if (offset !== this.received) throw new Error(`out-of-order frame: expected offset ${this.received}, got ${offset}`);
    if (this.received + bytes.length > this.size) throw new Error(`item larger than announced ${this.size} bytes`);
    this.hash.update(bytes);
    if (this.kept) {
      this.kept.set(bytes, this.received);
      this.received += bytes.length;
      return;
    }
    for (let at = 0; at < bytes.length; ) {
      const inBlock = this.received % BLOCK;
      if (inBlock === 0 && this.blocks.length * BLOCK === this.received) this.blocks.push(await this.host.pool.acquire());
      const n = Math.min(BLOCK - inBlock, bytes.length - at);
      this.blocks[this.blocks.length - 1]!.set(bytes.subarray(at, at + n), inBlock);
      this.received += n;
      at += n;
    }
  }

  /** Verify and put in place; resolves once durable. Throws (and leaves nothing behind) on any mismatch. */
  async commit(): Promise<void> {
    try {
      if (this.received !== this.size) throw new Error(`short item: got ${this.received} of ${this.size} bytes`);
      const actual = this.hash.digest("hex");
      if (actual !== this.ref.chid) throw new Error(`hash mismatch: bytes hash to ${actual}`);
      const t0 = performance.now();
      const ref = this.ref;
      if (ref.kind === "vm") {
        await this.land(() => this.host.placeManifest(ref.nhid, ref.uvid, ref.chid, this.kept!));
      } else {
        await this.host.removed(ref.chid);
        const parts = this.blocks.map((b, i) => b.subarray(0, Math.min(BLOCK, this.size - i * BLOCK)));
        await this.land(async () => {
          this.replaced = (await this.host.placeChunk(ref.chid, parts, this.size))?.replaced === true;
        });
      }
      this.host.landed(this, performance.now() - t0);
    } finally {
      this.release();
      this.host.ended(this);
    }
  }

  /** Put the bytes in place unless a reclaim came first; a reclaim arriving from here on waits for it. */
  private async land(place: () => Promise<void>): Promise<void> {
    if (this.doomed) throw new Error(`${this.ref.kind === "vm" ? "manifest" : "chunk"} ${this.ref.chid} was reclaimed by its group while being written`);
    this.placing = place();
    await this.placing;
  }

  async abort(): Promise<void> {
    this.release();
    this.host.ended(this);
  }

  private release(): void {
    for (const b of this.blocks.splice(0)) this.host.pool.release(b);
  }
}
