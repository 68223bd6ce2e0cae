// What a manifest shard answers over RPC. Stubs are typed by this interface rather than by the
// ManifestShard class (shard.ts `implements` it), so shared/env.ts can name the binding without
// importing the object, which itself needs env.ts.

import type { Uvid } from "../../common/ids.ts";
import type { StorageUse } from "../shared/storage-budget.ts";
import type { VersionAt } from "./as-of.ts";
import type { ListPage, ListQuery } from "./listing.ts";
import type { ShardRecord, SourceCutoff } from "./records.ts";
import type { SelectCursor, Selection, SelectPage } from "./select.ts";
import type { SourceState } from "./sources.ts";
import type { UploadPage, UploadQuery } from "./uploads.ts";
import type { Usage } from "./usage.ts";
import type { VersionPage, VersionQuery } from "./versions.ts";
import type { NamePart } from "./name-part.ts";
import type { HandOverPage, ShardSplitProgress } from "./split.ts";
import type { SplitTable } from "./apply.ts";
import type { RowKey } from "./table-pages.ts";

/** What a pass did, for logs and the benchmark. */
export interface LifecycleProgress {
  passStarted: number | null;
  bucketsLeft: number;
  keysWalked: number;
  actionsDone: number;
  nextPassAt: number;
}

/** shard.ts says what each call does. */
export interface ShardRpc extends Rpc.DurableObjectBranded {
  /** `stray`: a record's name is another shard's (the group sends it by an older count). */
  applyRecords(records: ShardRecord[], source: SourceCutoff): Promise<{ refused: string; stray?: true } | null>;
  applyForwarded(records: ShardRecord[], part: NamePart): Promise<void>;
  listVersions(q: VersionQuery, bound?: Uvid, part?: NamePart): Promise<VersionPage>;
  listUploads(q: UploadQuery, part?: NamePart): Promise<UploadPage>;
  list(q: ListQuery, bound?: Uvid, part?: NamePart): Promise<ListPage>;
  versionAt(tenant: string, bucket: string, key: string, bound: Uvid): Promise<VersionAt | null>;
  settle(shard: number, bound: Uvid, waitMs: number, only?: number): Promise<{ lagging: number[] }>;
  select(sel: Selection, after: SelectCursor | null, limit: number, part?: NamePart): Promise<SelectPage>;
  sourceStates(): Promise<SourceState[]>;
  stats(): Promise<{ versions: number; bytes: number; sources: number; storage: StorageUse; split: ShardSplitProgress }>;
  tenantUsage(tenant: string): Promise<Usage>;
  hasObjects(tenant: string, bucket: string, part?: NamePart): Promise<boolean>;
  handOverPage(part: NamePart, table: SplitTable, after: RowKey | null): Promise<HandOverPage>;
  handedOver(part: NamePart): Promise<void>;
  runLifecycle(): Promise<void>;
  lifecycleProgress(): Promise<LifecycleProgress>;
}
