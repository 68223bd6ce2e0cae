// What a tenant's snapshot catalog answers over RPC, and the data its calls carry. Stubs are
// typed by this interface rather than by the SnapshotCatalog class (catalog.ts `implements`
// it), so shared/env.ts can name the binding without importing the object, which itself needs
// env.ts.

import type { Mask, Qualifier } from "../manifest-shard/select.ts";
import type { PageRef, StoredBlob } from "./manifest.ts";

export type SnapshotState = "pending" | "committed";

export interface SnapshotDefinition {
  /** T, ms since the epoch: the snapshot holds the versions current at T. */
  at: number;
  masks: Mask[];
  qualifiers: Qualifier[];
}

export interface SnapshotInfo extends SnapshotDefinition {
  id: string;
  state: SnapshotState;
  created: number;
  /** Bumped by every edit, so a commit built from an older definition is refused. */
  revision: number;
  committed: number | null;
  /** Opaque, keyed: names the committed manifest without exposing any chunk id. */
  token: string | null;
  objects: number | null;
  bytes: number | null;
}

/** A committed snapshot's manifest location (internal: never sent to clients). */
export interface SnapshotLayout {
  root: StoredBlob;
  pages: PageRef[];
}

export interface Edit {
  at?: number;
  addMasks?: Mask[];
  dropMasks?: Mask[];
  addQualifiers?: Qualifier[];
  dropQualifiers?: Qualifier[];
}

export type CatalogRefusal = { refused: "NoSuchSnapshot" | "InvalidSnapshotState"; message: string };

/** catalog.ts says what each call does. */
export interface CatalogRpc extends Rpc.DurableObjectBranded {
  create(id: string, def: SnapshotDefinition): Promise<SnapshotInfo>;
  get(id: string): Promise<SnapshotInfo | null>;
  layout(id: string): Promise<{ info: SnapshotInfo; layout: SnapshotLayout } | null>;
  list(): Promise<SnapshotInfo[]>;
  edit(id: string, e: Edit): Promise<SnapshotInfo | CatalogRefusal>;
  commit(id: string, revision: number, done: { token: string; objects: number; bytes: number; layout: SnapshotLayout }): Promise<SnapshotInfo | CatalogRefusal>;
  remove(id: string, onlyPending: boolean): Promise<CatalogRefusal | null>;
}
