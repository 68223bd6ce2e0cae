// Acks of saved items, gathered over one turn of the event loop and sent as one `saved` per
// transaction: items written together (a batch's frames, a pack's group commit) cost the group
// one message, not one each.

import type { WsClient as WebSocket } from "./ws-client.ts";
import type { SavedMsg } from "../common/protocol.ts";

export class AckBatch {
  private pending = new Map<WebSocket, Map<number, number[]>>();
  private scheduled = false;
  private readonly send: (ws: WebSocket, msg: SavedMsg) => void;

  constructor(send: (ws: WebSocket, msg: SavedMsg) => void) {
    this.send = send;
  }

  saved(ws: WebSocket, txn: number, item: number): void {
    const byTxn = this.pending.get(ws) ?? new Map<number, number[]>();
    this.pending.set(ws, byTxn);
    const items = byTxn.get(txn);
    if (items) items.push(item);
    else byTxn.set(txn, [item]);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    const all = this.pending;
    this.pending = new Map();
    for (const [ws, byTxn] of all) {
      // A socket closed meanwhile: its transactions ended with it, and the group retries them.
      if (!ws.open) continue;
      for (const [txn, items] of byTxn) this.send(ws, { t: "saved", txn, items });
    }
  }
}
