// Two TCP sockets a test relay joins: what one side sends is carried to the other (`carry`:
// piped straight, or delayed), an error or close on either ends both, and `open` holds them
// while they live so the relay can cut them all at once.

import type { Socket } from "node:net";

export function joinSockets(open: Set<Socket>, client: Socket, upstream: Socket, carry: (from: Socket, to: Socket) => void): void {
  for (const [a, b] of [
    [client, upstream],
    [upstream, client],
  ] as const) {
    open.add(a);
    a.on("error", () => b.destroy());
    a.on("close", () => {
      open.delete(a);
      b.destroy();
    });
    carry(a, b);
  }
}
