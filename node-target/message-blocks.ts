// Reused 1 MiB blocks that received messages (group frames, peer records) are gathered into: a
// fresh Buffer per message made the target's garbage collector its busiest part (a full
// mark-compact every ~11 MB received). Whoever takes a block gives it back once done with it.

export const MESSAGE_BLOCK = 1024 * 1024;
const KEPT = 64;
const free: Buffer[] = [];

export function takeBlock(): Buffer {
  return free.pop() ?? Buffer.allocUnsafeSlow(MESSAGE_BLOCK);
}

export function giveBlock(b: Buffer): void {
  if (b.length === MESSAGE_BLOCK && free.length < KEPT) free.push(b);
}
