// Data directories written by earlier versions kept one file per item: chunks under
// chunks/<aa>/<chid>, version manifests under vms/<aa>/<nhid>/<uvid>-<chid>. At open, each file
// whose name parses and whose bytes hash to it moves into the packs or the manifest log, and the
// tree is dropped. A file that fails either check is logged and left out: it was never a copy
// this target could serve.

import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { isChid, isNhid, isUvid } from "../common/ids.ts";
import { log } from "./log.ts";
import type { PackFiles } from "./packs/pack-files.ts";
import type { VmLog } from "./vm-log.ts";

/** Files `depth` directories below `root`, with the names on the way to each (its own last). */
async function* filesBelow(root: string, depth: number, names: string[] = []): AsyncGenerator<{ path: string; names: string[] }> {
  for (const name of await readdir(join(root, ...names))) {
    if (depth === 0) yield { path: join(root, ...names, name), names: [...names, name] };
    else yield* filesBelow(root, depth - 1, [...names, name]);
  }
}

function hashes(bytes: Uint8Array, hex: string): boolean {
  return createHash("sha256").update(bytes).digest("hex") === hex;
}

/** Move chunks/<aa>/<chid> files into the packs. */
export async function importChunkFiles(dir: string, packs: PackFiles): Promise<void> {
  const root = join(dir, "chunks");
  if (!existsSync(root)) return;
  let moved = 0;
  for await (const { path, names } of filesBelow(root, 1)) {
    const chid = names[1]!;
    const bytes = await readFile(path);
    if (!isChid(chid) || !hashes(bytes, chid)) {
      log("error", "corrupt chunk file not imported", { path });
      continue;
    }
    await packs.append({ chid, parts: [bytes], length: bytes.length });
    moved++;
  }
  await rm(root, { recursive: true, force: true });
  log("info", "chunk files moved into packs", { count: moved });
}

/** Move vms/<aa>/<nhid>/<uvid>-<chid> files into the manifest log. */
export async function importManifestFiles(dir: string, vms: VmLog): Promise<void> {
  const root = join(dir, "vms");
  if (!existsSync(root)) return;
  let moved = 0;
  for await (const { path, names } of filesBelow(root, 2)) {
    const nhid = names[1]!;
    const [uvid = "", chid = ""] = names[2]!.split("-");
    const bytes = await readFile(path);
    if (!isNhid(nhid) || !isUvid(uvid) || !isChid(chid) || !hashes(bytes, chid)) {
      log("error", "corrupt manifest file not imported", { path });
      continue;
    }
    await vms.put(nhid, uvid, chid, bytes);
    moved++;
  }
  await rm(root, { recursive: true, force: true });
  log("info", "manifest files moved into the manifest log", { count: moved });
}
