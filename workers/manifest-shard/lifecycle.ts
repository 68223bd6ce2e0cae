// Lifecycle rules, applied by each manifest shard to the names it holds. At every day boundary
// (midnight UTC; LIFECYCLE_DAY_SECONDS in tests) a pass starts: the shard fetches the rules of
// every tenant that has put some (accounts registry, then each tenant's directory) and walks
// each such bucket's slice of its own tables in key order, a step of STEP_KEYS keys per alarm,
// its place kept in a table, so a pass over millions of names never holds the object for long
// and goes on after a restart. What is due goes to the group that owns each name, which checks
// it again and deletes through the same paths as a client (negotiating-group/lifecycle-actions.ts).
// No shard ever scans another's slice, and a shard with no rules to apply reads nothing.

import { groupOf, nhidOf, type Nhid, type Uvid, asUvid } from "../../common/ids.ts";
import { configOf, groupStub, registryStub, tenantStub, type Env } from "../shared/env.ts";
import { currentExpired, dueAt, filterTakes, lifecycleOfJson, lifecycleToJson, noncurrentExpired, type LifecycleRule } from "../shared/lifecycle-rules.ts";
import { tagsOfJson } from "../shared/tags.ts";
import type { Versioning } from "../shared/versioning.ts";
import type { LifecycleAction } from "../negotiating-group/rpc.ts";
import type { LifecycleProgress } from "./rpc.ts";

/** Keys (with all their versions) one step reads at most... */
const STEP_KEYS = 500;
/** ...and actions it hands to the groups: deletions cost the groups far more than reading costs the shard. */
const STEP_ACTIONS = 64;
/**
 * Between steps the object serves requests, and the groups its actions went to serve theirs:
 * the next step comes by alarm after a pause as long as the step took (at least this), so a
 * pass takes at most about half of the time of the objects it touches.
 */
const STEP_PAUSE_MS = 5;
/** A step whose actions failed (a group unreachable) is tried again this much later, up to STEP_TRIES times; then the pass moves on, and the next pass finds what is still due. */
const RETRY_MS = 5_000;
const STEP_TRIES = 3;

type Phase = "names" | "uploads";

interface Todo {
  tenant: string;
  bucket: string;
  versioning: Versioning;
  rules: LifecycleRule[];
  phase: Phase;
  /** The last key (names) or `key\u0000uploadId` (uploads) done; "" before the first. */
  cursor: string;
  tries: number;
}

export interface LifecycleContext {
  readonly sql: SqlStorage;
  readonly env: Env;
}

export class LifecyclePass {
  private readonly c: LifecycleContext;

  constructor(c: LifecycleContext) {
    this.c = c;
    c.sql.exec(`CREATE TABLE IF NOT EXISTS lifecycle_pass (
      k INTEGER PRIMARY KEY CHECK (k = 0), next_at INTEGER NOT NULL, started INTEGER,
      keys_walked INTEGER NOT NULL DEFAULT 0, actions_done INTEGER NOT NULL DEFAULT 0)`);
    c.sql.exec(`CREATE TABLE IF NOT EXISTS lifecycle_todo (
      tenant TEXT NOT NULL, bucket TEXT NOT NULL, versioning TEXT NOT NULL, rules TEXT NOT NULL,
      phase TEXT NOT NULL, cursor TEXT NOT NULL, tries INTEGER NOT NULL DEFAULT 0,
      PRIMARY KEY (tenant, bucket))`);
    c.sql.exec("INSERT OR IGNORE INTO lifecycle_pass (k, next_at) VALUES (0, ?)", this.boundaryAfter(Date.now()));
  }

  private get dayMs(): number {
    return configOf(this.c.env).lifecycleDayMs;
  }

  private boundaryAfter(t: number): number {
    return Math.floor(t / this.dayMs) * this.dayMs + this.dayMs;
  }

  private state(): { nextAt: number; started: number | null; keysWalked: number; actionsDone: number } {
    const r = this.c.sql.exec("SELECT next_at, started, keys_walked, actions_done FROM lifecycle_pass WHERE k = 0").one();
    return { nextAt: Number(r.next_at), started: r.started === null ? null : Number(r.started), keysWalked: Number(r.keys_walked), actionsDone: Number(r.actions_done) };
  }

  private next(): Todo | null {
    const r = this.c.sql.exec("SELECT * FROM lifecycle_todo ORDER BY tenant, bucket LIMIT 1").toArray()[0];
    if (!r) return null;
    return { tenant: String(r.tenant), bucket: String(r.bucket), versioning: String(r.versioning) as Versioning, rules: lifecycleOfJson(r.rules) ?? [], phase: String(r.phase) as Phase, cursor: String(r.cursor), tries: Number(r.tries) };
  }

  /** When the alarm must come for this part. */
  resumeAt(): number {
    return this.next() ? Date.now() : this.state().nextAt;
  }

  progress(): LifecycleProgress {
    const s = this.state();
    const left = Number(this.c.sql.exec("SELECT count(*) AS n FROM lifecycle_todo").one().n);
    return { passStarted: left > 0 ? s.started : null, bucketsLeft: left, keysWalked: s.keysWalked, actionsDone: s.actionsDone, nextPassAt: s.nextAt };
  }

  /** Start a pass now rather than at the next day boundary (the admin API's `lifecycle run`). */
  async startNow(): Promise<void> {
    if (!this.next()) await this.start(Date.now());
  }

  /** One step of the pass (starting it if its time has come); returns when the alarm must come next. */
  async step(now: number = Date.now()): Promise<number> {
    let todo = this.next();
    if (!todo) {
      if (now < this.state().nextAt) return this.state().nextAt;
      await this.start(now);
      todo = this.next();
      if (!todo) return this.state().nextAt;
    }
    const done = todo.phase === "names" ? await this.walkNames(todo, now) : await this.walkUploads(todo, now);
    if (done === "retry") return now + RETRY_MS;
    const took = Date.now() - now;
    return this.next() ? Date.now() + Math.max(STEP_PAUSE_MS, took) : this.state().nextAt;
  }

  private async start(now: number): Promise<void> {
    const todos: Todo[] = [];
    for (const tenant of await registryStub(this.c.env).lifecycleTenants()) {
      for (const b of await tenantStub(this.c.env, tenant).lifecycleBuckets()) {
        const rules = b.rules.filter((r) => r.enabled);
        const names = rules.some((r) => r.expiration !== null || r.expiredObjectDeleteMarker || r.noncurrentExpiration !== null);
        const uploads = rules.some((r) => r.abortUploadDays !== null);
        if (!names && !uploads) continue;
        todos.push({ tenant, bucket: b.bucket, versioning: b.versioning, rules, phase: names ? "names" : "uploads", cursor: "", tries: 0 });
      }
    }
    for (const t of todos) {
      this.c.sql.exec(
        "INSERT OR REPLACE INTO lifecycle_todo (tenant, bucket, versioning, rules, phase, cursor, tries) VALUES (?, ?, ?, ?, ?, ?, 0)",
        t.tenant, t.bucket, t.versioning, lifecycleToJson(t.rules) ?? "[]", t.phase, t.cursor,
      );
    }
    this.c.sql.exec("UPDATE lifecycle_pass SET next_at = ?, started = ?, keys_walked = 0, actions_done = 0 WHERE k = 0", this.boundaryAfter(now), now);
  }

  private async walkNames(todo: Todo, now: number): Promise<"stepped" | "retry"> {
    const { sql } = this.c;
    const keys = sql
      .exec("SELECT key FROM current WHERE tenant = ? AND bucket = ? AND key > ? ORDER BY key LIMIT ?", todo.tenant, todo.bucket, todo.cursor, STEP_KEYS)
      .toArray()
      .map((r) => String(r.key));
    if (keys.length === 0) return this.advance(todo, { phase: "uploads", cursor: "" });
    // In index order (uvid ascending); each key's versions are then taken newest first.
    const rows = sql
      .exec(
        "SELECT key, uvid, delete_marker, size, last_modified, tags FROM versions WHERE tenant = ? AND bucket = ? AND key >= ? AND key <= ? AND removed = 0 ORDER BY key, uvid",
        todo.tenant, todo.bucket, keys[0]!, keys[keys.length - 1]!,
      )
      .toArray();
    const byKey = new Map<string, VersionRow[]>();
    for (const r of rows) {
      const key = String(r.key);
      const list = byKey.get(key) ?? [];
      list.unshift({ uvid: asUvid(r.uvid), deleteMarker: Number(r.delete_marker) === 1, size: Number(r.size), created: Number(r.last_modified), tags: r.tags ?? null });
      byKey.set(key, list);
    }
    const due: Due[] = [];
    let last = keys[keys.length - 1]!;
    let walked = 0;
    for (const key of keys) {
      due.push(...dueOf(todo.rules, key, byKey.get(key) ?? [], { now, dayMs: this.dayMs }));
      walked++;
      if (due.length >= STEP_ACTIONS) {
        last = key;
        break;
      }
    }
    if (!(await this.act(todo, due))) return "retry";
    this.count(walked);
    return this.advance(todo, { phase: "names", cursor: last });
  }

  private async walkUploads(todo: Todo, now: number): Promise<"stepped" | "retry"> {
    const rules = todo.rules.filter((r) => r.abortUploadDays !== null);
    if (rules.length === 0) return this.advance(todo, null);
    const [afterKey, afterId] = todo.cursor === "" ? ["", ""] : splitCursor(todo.cursor);
    const rows = this.c.sql
      .exec(
        "SELECT key, upload_id, initiated FROM uploads WHERE tenant = ? AND bucket = ? AND open = 1 AND (key > ? OR (key = ? AND upload_id > ?)) ORDER BY key, upload_id LIMIT ?",
        todo.tenant, todo.bucket, afterKey, afterKey, afterId, STEP_KEYS,
      )
      .toArray();
    if (rows.length === 0) return this.advance(todo, null);
    const due: Due[] = [];
    let last = rows[rows.length - 1]!;
    for (const r of rows) {
      last = r;
      const key = String(r.key);
      const initiated = Number(r.initiated);
      // S3 applies only a rule's prefix to uploads: an upload has no tags or size yet.
      if (rules.some((rule) => key.startsWith(rule.filter.prefix) && now >= dueAt(initiated, rule.abortUploadDays!, this.dayMs))) {
        due.push({ kind: "abort-upload", key, uploadId: String(r.upload_id) });
      }
      if (due.length >= STEP_ACTIONS) break;
    }
    if (!(await this.act(todo, due))) return "retry";
    return this.advance(todo, { phase: "uploads", cursor: `${String(last.key)}\u0000${String(last.upload_id)}` });
  }

  /** Move the bucket's walk on (null: this bucket is done for this pass). */
  private advance(todo: Todo, to: { phase: Phase; cursor: string } | null): "stepped" {
    if (to === null) this.c.sql.exec("DELETE FROM lifecycle_todo WHERE tenant = ? AND bucket = ?", todo.tenant, todo.bucket);
    else this.c.sql.exec("UPDATE lifecycle_todo SET phase = ?, cursor = ?, tries = 0 WHERE tenant = ? AND bucket = ?", to.phase, to.cursor, todo.tenant, todo.bucket);
    return "stepped";
  }

  private count(keys: number, actions = 0): void {
    this.c.sql.exec("UPDATE lifecycle_pass SET keys_walked = keys_walked + ?, actions_done = actions_done + ? WHERE k = 0", keys, actions);
  }

  /** Hand what is due to the groups that own the names; false if a group could not be reached and the step should be tried again. */
  private async act(todo: Todo, due: Due[]): Promise<boolean> {
    if (due.length === 0) return true;
    const cfg = configOf(this.c.env);
    const byGroup = new Map<number, LifecycleAction[]>();
    for (const d of due) {
      const nhid: Nhid = await nhidOf(todo.tenant, todo.bucket, d.key);
      const g = groupOf(nhid, cfg.groupCount);
      const list = byGroup.get(g) ?? [];
      list.push({ ...d, nhid });
      byGroup.set(g, list);
    }
    const results = await Promise.allSettled(
      [...byGroup].map(([g, actions]) => groupStub(this.c.env, g).expireByLifecycle({ tenant: todo.tenant, bucket: todo.bucket, versioning: todo.versioning, actions })),
    );
    const done = results.reduce((n, r) => n + (r.status === "fulfilled" ? r.value : 0), 0);
    this.count(0, done);
    const failed = results.filter((r) => r.status === "rejected");
    if (failed.length === 0) return true;
    console.log(JSON.stringify({ event: "lifecycle-step-failed", tenant: todo.tenant, bucket: todo.bucket, tries: todo.tries + 1, error: String((failed[0] as PromiseRejectedResult).reason) }));
    if (todo.tries + 1 >= STEP_TRIES) return true;
    this.c.sql.exec("UPDATE lifecycle_todo SET tries = tries + 1 WHERE tenant = ? AND bucket = ?", todo.tenant, todo.bucket);
    return false;
  }
}

interface VersionRow {
  uvid: Uvid;
  deleteMarker: boolean;
  size: number;
  created: number;
  /** As stored (tagsToJson), parsed only when a rule filters by tags. */
  tags: SqlStorageValue;
}

type Due = DistributiveOmit<LifecycleAction, "nhid">;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function splitCursor(c: string): [string, string] {
  const i = c.lastIndexOf("\u0000");
  return [c.slice(0, i), c.slice(i + 1)];
}

/** What the rules make due for one key, its live versions newest first (the first is current). */
export function dueOf(rules: readonly LifecycleRule[], key: string, versions: readonly VersionRow[], at: { now: number; dayMs: number }): Due[] {
  const applicable = rules.filter((r) => key.startsWith(r.filter.prefix));
  if (applicable.length === 0 || versions.length === 0) return [];
  const out: Due[] = [];
  const candidate = (v: VersionRow) => ({ key, size: v.deleteMarker ? 0 : v.size, tags: v.deleteMarker ? [] : tagsOfJson(v.tags) });
  const current = versions[0]!;
  if (current.deleteMarker) {
    if (versions.length === 1 && applicable.some((r) => r.expiredObjectDeleteMarker && filterTakes(r.filter, candidate(current)))) {
      out.push({ kind: "remove-marker", key, uvid: current.uvid });
    }
  } else {
    const rule = applicable.find((r) => filterTakes(r.filter, candidate(current)) && currentExpired(r, current.created, at));
    if (rule) out.push({ kind: "expire-current", key, uvid: current.uvid, tags: rule.filter.tags });
  }
  for (let i = 1; i < versions.length; i++) {
    const v = versions[i]!;
    const since = versions[i - 1]!.created;
    if (applicable.some((r) => filterTakes(r.filter, candidate(v)) && noncurrentExpired(r, { since, rank: i }, at))) {
      out.push({ kind: "remove-noncurrent", key, uvid: v.uvid });
    }
  }
  return out;
}
