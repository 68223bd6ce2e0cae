// Where a target's chunks are on disk, read without the running target (tests, forensics): the
// index rows through a read-only connection to its database, the bytes straight from the pack.

import { closeSync, existsSync, openSync, readSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { asChid, type Chid } from "../../common/ids.ts";
import { packName } from "./pack-files.ts";
import { RECORD_HEADER } from "./record.ts";

export interface ChunkOnDisk {
  chid: Chid;
  /** The pack file holding it. */
  path: string;
  /** Where its bytes begin in that file. */
  offset: number;
  length: number;
}

/** Every chunk indexed in the data directory `dataDir` (none if it has no database yet). */
export function chunksOnDisk(dataDir: string, only: Chid | null = null): ChunkOnDisk[] {
  const file = join(dataDir, "index.sqlite");
  if (!existsSync(file)) return [];
  const db = new DatabaseSync(file, { readOnly: true });
  try {
    const has = db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'chunks'").get();
    if (!has) return [];
    const rows = only === null ? db.prepare("SELECT chid, pack, pos, length FROM chunks").all() : db.prepare("SELECT chid, pack, pos, length FROM chunks WHERE chid = ?").all(only);
    return rows.map((r) => ({ chid: asChid(r.chid), path: join(dataDir, "packs", packName(Number(r.pack))), offset: Number(r.pos) + RECORD_HEADER, length: Number(r.length) }));
  } finally {
    db.close();
  }
}

export function chunkOnDisk(dataDir: string, chid: Chid): ChunkOnDisk | null {
  return chunksOnDisk(dataDir, chid)[0] ?? null;
}

/** The bytes of a chunk as they are on disk (possibly damaged). */
export function readOnDisk(c: ChunkOnDisk): Buffer {
  const out = Buffer.alloc(c.length);
  const fd = openSync(c.path, "r");
  try {
    for (let at = 0; at < c.length; ) {
      const n = readSync(fd, out, at, c.length - at, c.offset + at);
      if (n === 0) break;
      at += n;
    }
  } finally {
    closeSync(fd);
  }
  return out;
}
