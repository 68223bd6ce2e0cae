// A Durable Object's SQLite database may hold 10 GB on Cloudflare; past that every write to it
// fails, deletes included. Each group and shard therefore keeps to a budget below the limit
// (DO_STORAGE_BUDGET_BYTES, 9 GiB by default): it reports what it holds (status page, metrics),
// warns from 80 % of the budget, and a group refuses new versions and parts once at the budget,
// while deletes, which are what frees room, still go through. docs/operations.md says what an
// operator does then.

import { refusal, type Refusal } from "./refusal.ts";

/** Cloudflare's limit on one Durable Object's SQLite storage. */
export const DO_STORAGE_LIMIT_BYTES = 10_000_000_000;
/** From this share of its budget an object's status warns. */
export const STORAGE_WARN_SHARE = 0.8;

export interface StorageUse {
  bytes: number;
  budget: number;
}

export class StorageBudget {
  private readonly sql: SqlStorage;
  private readonly budget: number;
  private readonly what: string;

  /** `what` names the object in a refusal ("group 3"). */
  constructor(sql: SqlStorage, budget: number, what: string) {
    this.sql = sql;
    this.budget = budget;
    this.what = what;
  }

  use(): StorageUse {
    return { bytes: this.sql.databaseSize, budget: this.budget };
  }

  /** A refusal once the object holds its budget; null while it has room. */
  full(): Refusal | null {
    const bytes = this.sql.databaseSize;
    if (bytes < this.budget) return null;
    return refusal("ServiceUnavailable", `This part of the namespace is full: ${this.what} holds ${bytes} bytes of metadata, its budget is ${this.budget}. Deletes still work; the operator must add groups (docs/operations.md, "Storage budgets").`);
  }
}
