// What a target owes a group at the end of a turn of its event loop: acks of saved items, one
// `saved` per transaction, and the payload credit that fell due, carried on the first of them
// (or alone when nothing was saved). Items written together (a batch's frames, a pack's group
// commit) cost the group one message, not one each plus one for their credit.

import type { SavedMsg, CreditMsg } from "../common/protocol.ts";
import type { WsClient } from "./ws-client.ts";

interface Owed {
  acks: Map<number, number[]>;
  credit: number;
}

export class AckBatch {
  private pending = new Map<WsClient, Owed>();
  private scheduled = false;
  private readonly send: (ws: WsClient, msg: SavedMsg | CreditMsg) => void;

  constructor(send: (ws: WsClient, msg: SavedMsg | CreditMsg) => void) {
    this.send = send;
  }

  saved(ws: WsClient, txn: number, item: number): void {
    const acks = this.owed(ws).acks;
    const items = acks.get(txn);
    if (items) items.push(item);
    else acks.set(txn, [item]);
  }

  /** Credit to return to a group that takes it on acks (protocol 2). */
  credit(ws: WsClient, bytes: number): void {
    this.owed(ws).credit += bytes;
  }

  private owed(ws: WsClient): Owed {
    let o = this.pending.get(ws);
    if (!o) {
      o = { acks: new Map(), credit: 0 };
      this.pending.set(ws, o);
    }
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
    return o;
  }

  private flush(): void {
    this.scheduled = false;
    const all = this.pending;
    this.pending = new Map();
    for (const [ws, o] of all) {
      // A socket closed meanwhile: its transactions and its window ended with it, and the group retries them.
      if (!ws.open) continue;
      let credit = o.credit;
      for (const [txn, items] of o.acks) {
        this.send(ws, { t: "saved", txn, items, ...(credit > 0 ? { credit } : {}) });
        credit = 0;
      }
      if (credit > 0) this.send(ws, { t: "credit", bytes: credit });
    }
  }
}
