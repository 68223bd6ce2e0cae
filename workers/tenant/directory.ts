// A tenant's directory: its buckets. One object per tenant, so bucket names are scoped to
// the tenant (two tenants may each have a bucket "photos"); see docs/architecture.md.

import { DurableObject } from "cloudflare:workers";
import type { Env } from "../shared/env.ts";
import type { Versioning } from "../shared/versioning.ts";
import type { BucketInfo, TenantRpc } from "./rpc.ts";
import { tagsOfJson, tagsToJson, type Tag } from "../shared/tags.ts";
import type { CorsRule } from "../shared/cors-rules.ts";
import { listOfJson, listToJson } from "../shared/stored-list.ts";
import type { PublicRead } from "../shared/bucket-policy.ts";
import type { BucketLifecycle, PublicBlock } from "./rpc.ts";
import type { LifecycleRule } from "../shared/lifecycle-rules.ts";

/** A column this object wrote as JSON, read back; null when empty. */
function jsonOf<T>(v: unknown): T | null {
  // Written by this object from checked values: the cast only names what it wrote.
  return typeof v === "string" ? (JSON.parse(v) as T) : null;
}

export class TenantDirectory extends DurableObject<Env> implements TenantRpc {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec("CREATE TABLE IF NOT EXISTS buckets (name TEXT PRIMARY KEY, created INTEGER NOT NULL)");
    const columns = this.sql.exec("PRAGMA table_info(buckets)").toArray().map((c) => String(c.name));
    if (!columns.includes("versioning")) this.sql.exec("ALTER TABLE buckets ADD COLUMN versioning TEXT NOT NULL DEFAULT 'Unversioned'");
    if (!columns.includes("tags")) this.sql.exec("ALTER TABLE buckets ADD COLUMN tags TEXT");
    if (!columns.includes("cors")) this.sql.exec("ALTER TABLE buckets ADD COLUMN cors TEXT");
    for (const c of ["policy", "public_read", "public_block", "lifecycle"]) if (!columns.includes(c)) this.sql.exec(`ALTER TABLE buckets ADD COLUMN ${c} TEXT`);
  }

  private infoOf(r: Record<string, SqlStorageValue>): BucketInfo {
    const cors = listOfJson<CorsRule>(r.cors);
    const publicRead = jsonOf<PublicRead>(r.public_read);
    const publicBlock = jsonOf<PublicBlock>(r.public_block);
    return { name: String(r.name), created: Number(r.created), versioning: String(r.versioning) as Versioning, ...(cors ? { cors } : {}), ...(publicRead ? { publicRead } : {}), ...(publicBlock ? { publicBlock } : {}) };
  }

  /** Create a bucket; false if it already exists. */
  async createBucket(name: string): Promise<boolean> {
    const before = this.sql.exec("SELECT 1 FROM buckets WHERE name = ?", name).toArray().length;
    if (before > 0) return false;
    this.sql.exec("INSERT INTO buckets (name, created) VALUES (?, ?)", name, Date.now());
    return true;
  }

  async getBucket(name: string): Promise<BucketInfo | null> {
    const row = this.sql.exec("SELECT name, created, versioning, cors, public_read, public_block FROM buckets WHERE name = ?", name).toArray()[0];
    return row ? this.infoOf(row) : null;
  }

  async listBuckets(): Promise<BucketInfo[]> {
    return this.sql.exec("SELECT name, created, versioning, cors, public_read, public_block FROM buckets ORDER BY name").toArray().map((r) => this.infoOf(r));
  }

  /** Enabled or Suspended; a bucket never returns to Unversioned. False if there is no such bucket. */
  async setVersioning(name: string, status: "Enabled" | "Suspended"): Promise<boolean> {
    return this.sql.exec("UPDATE buckets SET versioning = ? WHERE name = ?", status, name).rowsWritten > 0;
  }

  /** The bucket's tag set (empty: none set); null if there is no such bucket. */
  async getBucketTags(name: string): Promise<Tag[] | null> {
    const row = this.sql.exec("SELECT tags FROM buckets WHERE name = ?", name).toArray()[0];
    return row ? tagsOfJson(row.tags) : null;
  }

  /** Replace the bucket's tag set (empty: remove it); false if there is no such bucket. */
  async setBucketTags(name: string, tags: Tag[]): Promise<boolean> {
    return this.sql.exec("UPDATE buckets SET tags = ? WHERE name = ?", tagsToJson(tags), name).rowsWritten > 0;
  }

  /** Replace the bucket's CORS rules (null: remove them); false if there is no such bucket. */
  async setBucketCors(name: string, rules: CorsRule[] | null): Promise<boolean> {
    return this.sql.exec("UPDATE buckets SET cors = ? WHERE name = ?", listToJson(rules), name).rowsWritten > 0;
  }

  /** The bucket's policy as it was put; null if it has none (or there is no such bucket). */
  async getBucketPolicy(name: string): Promise<string | null> {
    const row = this.sql.exec("SELECT policy FROM buckets WHERE name = ?", name).toArray()[0];
    return row && typeof row.policy === "string" ? row.policy : null;
  }

  /** Replace the bucket's policy and what it grants (null: remove it); false if there is no such bucket. */
  async setBucketPolicy(name: string, policy: { text: string; read: PublicRead } | null): Promise<boolean> {
    return this.sql.exec("UPDATE buckets SET policy = ?, public_read = ? WHERE name = ?", policy?.text ?? null, policy ? JSON.stringify(policy.read) : null, name).rowsWritten > 0;
  }

  /** Replace the bucket's public access block (null: remove it); false if there is no such bucket. */
  async setPublicAccessBlock(name: string, block: PublicBlock | null): Promise<boolean> {
    return this.sql.exec("UPDATE buckets SET public_block = ? WHERE name = ?", block ? JSON.stringify(block) : null, name).rowsWritten > 0;
  }

  /** The bucket's lifecycle rules; null if it has none (or there is no such bucket). */
  async getBucketLifecycle(name: string): Promise<LifecycleRule[] | null> {
    const row = this.sql.exec("SELECT lifecycle FROM buckets WHERE name = ?", name).toArray()[0];
    return row ? listOfJson<LifecycleRule>(row.lifecycle) : null;
  }

  /** Replace the bucket's lifecycle rules (null: remove them); false if there is no such bucket. */
  async setBucketLifecycle(name: string, rules: LifecycleRule[] | null): Promise<boolean> {
    return this.sql.exec("UPDATE buckets SET lifecycle = ? WHERE name = ?", listToJson(rules), name).rowsWritten > 0;
  }

  /** One bucket's lifecycle rules with its versioning; null if it has no rules (or there is no such bucket). */
  async bucketLifecycle(name: string): Promise<BucketLifecycle | null> {
    const r = this.sql.exec("SELECT versioning, lifecycle FROM buckets WHERE name = ?", name).toArray()[0];
    const rules = r ? listOfJson<LifecycleRule>(r.lifecycle) : null;
    return r && rules ? { bucket: name, versioning: String(r.versioning) as Versioning, rules } : null;
  }

  /** Every bucket with lifecycle rules, with its versioning (what a shard's pass needs). */
  async lifecycleBuckets(): Promise<BucketLifecycle[]> {
    return this.sql
      .exec("SELECT name, versioning, lifecycle FROM buckets WHERE lifecycle IS NOT NULL ORDER BY name")
      .toArray()
      .flatMap((r) => {
        const rules = listOfJson<LifecycleRule>(r.lifecycle);
        return rules ? [{ bucket: String(r.name), versioning: String(r.versioning) as Versioning, rules }] : [];
      });
  }

  async deleteBucket(name: string): Promise<boolean> {
    return this.sql.exec("DELETE FROM buckets WHERE name = ?", name).rowsWritten > 0;
  }
}
