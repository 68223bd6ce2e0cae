// A small file replaced whole and durably: written beside it, synced, renamed over it, and the
// directory synced, so a crash leaves the old content or the new, never a torn or lost file.

import { open, rename } from "node:fs/promises";
import { dirname } from "node:path";

export async function writeFileDurably(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, "w", 0o600);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  const dir = await open(dirname(path), "r");
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
