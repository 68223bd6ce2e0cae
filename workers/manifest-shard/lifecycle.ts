// Lifecycle rules, applied by each manifest shard to the names it holds. At every day boundary
// (midnight UTC; LIFECYCLE_DAY_SECONDS in tests) a pass starts: the shard fetches the rules of
// every tenant that has put some (accounts registry, then each tenant's directory) and walks
// each such bucket's slice of its own tables in key order, a step of STEP_KEYS keys per alarm,
// its place kept in a table, so a pass over millions of names never holds the object for long
// and goes on after a restart. What is due goes to the group that owns each name, which checks
// it again and deletes through the same paths as a client (negotiating-group/lifecycle-actions.ts).
// No shard ever scans another's slice, and a shard with no rules to apply reads nothing.

import { asUvid, groupOf, nhidOf, type Nhid, type Uvid } from "../../common/ids.ts";
import { configOf, groupStub, registryStub, tenantStub, type Env } from "../shared/env.ts";
import { dueAt, type LifecycleRule } from "../shared/lifecycle-rules.ts";
import { listOfJson, listToJson } from "../shared/stored-list.ts";
import { dueOf, type Due, type VersionRow, type WindowStart } from "./lifecycle-due.ts";
import type { Versioning } from "../shared/versioning.ts";
import type { LifecycleAction } from "../negotiating-group/rpc.ts";
import type { LifecycleProgress } from "./rpc.ts";
import { partCond, type NamePart } from "./name-part.ts";

/** Keys (with all their versions) one step reads at most... */
const STEP_KEYS = 500;
/** ...and versions: a key with more is walked in windows of its own, newest first... */
const STEP_ROWS = 5_000;
/** Versions one window of such a key reads: a few times what it may act on, not a whole step's worth. */
const WINDOW_ROWS = 500;
/** ...and actions it hands to the groups: deletions cost the groups far more than reading costs the shard. */
const STEP_ACTIONS = 64;
/**
 * Between steps the object serves requests, and the groups its actions went to serve theirs:
 * the next step comes by alarm after a pause as long as the step took (at least this), so a
 * pass takes at most about half of the time of the objects it touches.
 */
const STEP_PAUSE_MS = 5;
/** A step that failed (a group unreachable, an error) is tried again this much later, up to STEP_TRIES times; then the pass moves on, and the next pass finds what is still due. */
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
  /** A key too large for one step, being walked in windows: the next key after `cursor`. */
  inKey: KeyWindow | null;
  tries: number;
}

interface KeyWindow extends WindowStart {
  key: string;
  /** The last version judged (the next window is older); null: none yet. */
  after: Uvid | null;
}

export interface LifecycleContext {
  readonly sql: SqlStorage;
  readonly env: Env;
  /** The names this shard answers for (its tables may still hold another's after a split); null: all. */
  part(): NamePart | null;
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
      phase TEXT NOT NULL, cursor TEXT NOT NULL, in_key TEXT, tries INTEGER NOT NULL DEFAULT 0,
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
    // Written by this part from checked values: the casts only name what it wrote.
    const inKey = typeof r.in_key === "string" ? (JSON.parse(r.in_key) as KeyWindow) : null;
    return { tenant: String(r.tenant), bucket: String(r.bucket), versioning: String(r.versioning) as Versioning, rules: listOfJson<LifecycleRule>(r.rules) ?? [], phase: String(r.phase) as Phase, cursor: String(r.cursor), inKey, tries: Number(r.tries) };
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
    let done: "stepped" | "retry";
    try {
      // The bucket as it is now: its rules may have changed or gone, its versioning changed,
      // since the pass began (a pass can take hours); what is done follows what is now.
      const fresh = await this.refreshed(todo);
      done = fresh === null ? this.advance(todo, null) : fresh.phase === "names" ? await this.walkNames(fresh, now) : await this.walkUploads(fresh, now);
    } catch (e) {
      done = this.failed(todo, e);
    }
    if (done === "retry") return Date.now() + RETRY_MS;
    const took = Date.now() - now;
    return this.next() ? Date.now() + Math.max(STEP_PAUSE_MS, took) : this.state().nextAt;
  }

  /** A failed step is tried again, up to STEP_TRIES times; then its bucket waits for the next pass, and the others go on. */
  private failed(todo: Todo, e: unknown): "stepped" | "retry" {
    console.log(JSON.stringify({ event: "lifecycle-step-failed", tenant: todo.tenant, bucket: todo.bucket, tries: todo.tries + 1, error: String(e) }));
    if (todo.tries + 1 >= STEP_TRIES) return this.advance(todo, null);
    this.c.sql.exec("UPDATE lifecycle_todo SET tries = tries + 1 WHERE tenant = ? AND bucket = ?", todo.tenant, todo.bucket);
    return "retry";
  }

  /** The todo with the bucket's rules and versioning as its directory has them now; null if it has none left (or no bucket). */
  private async refreshed(todo: Todo): Promise<Todo | null> {
    const b = await tenantStub(this.c.env, todo.tenant).bucketLifecycle(todo.bucket);
    if (b === null) return null;
    return { ...todo, versioning: b.versioning, rules: b.rules.filter((r) => r.enabled) };
  }

  private async start(now: number): Promise<void> {
    const todos: Todo[] = [];
    for (const tenant of await registryStub(this.c.env).lifecycleTenants()) {
      let buckets;
      try {
        buckets = await tenantStub(this.c.env, tenant).lifecycleBuckets();
      } catch (e) {
        // One tenant's directory failing must not stop every tenant's pass: its rules wait for the next.
        console.log(JSON.stringify({ event: "lifecycle-tenant-skipped", tenant, error: String(e) }));
        continue;
      }
      for (const b of buckets) {
        const rules = b.rules.filter((r) => r.enabled);
        const names = rules.some((r) => r.expiration !== null || r.expiredObjectDeleteMarker || r.noncurrentExpiration !== null);
        const uploads = rules.some((r) => r.abortUploadDays !== null);
        if (!names && !uploads) continue;
        todos.push({ tenant, bucket: b.bucket, versioning: b.versioning, rules, phase: names ? "names" : "uploads", cursor: "", inKey: null, tries: 0 });
      }
    }
    for (const t of todos) {
      this.c.sql.exec(
        "INSERT OR REPLACE INTO lifecycle_todo (tenant, bucket, versioning, rules, phase, cursor, in_key, tries) VALUES (?, ?, ?, ?, ?, ?, NULL, 0)",
        t.tenant, t.bucket, t.versioning, listToJson(t.rules) ?? "[]", t.phase, t.cursor,
      );
    }
    this.c.sql.exec("UPDATE lifecycle_pass SET next_at = ?, started = ?, keys_walked = 0, actions_done = 0 WHERE k = 0", this.boundaryAfter(now), now);
  }

  private async walkNames(todo: Todo, now: number): Promise<"stepped"> {
    if (todo.inKey) return this.walkWindow(todo, todo.inKey, now);
    const { sql } = this.c;
    const own = partCond("", this.c.part());
    const keys = sql
      .exec(`SELECT key FROM current WHERE tenant = ? AND bucket = ? AND key > ? ${own === null ? "" : `AND ${own.sql}`} ORDER BY key LIMIT ?`, todo.tenant, todo.bucket, todo.cursor, ...(own?.args ?? []), STEP_KEYS)
      .toArray()
      .map((r) => String(r.key));
    if (keys.length === 0) return this.advance(todo, { phase: "uploads", cursor: "" });
    // In index order (uvid ascending); each key's versions are then taken newest first. Past
    // STEP_ROWS the last key read may be cut short: it is left for the next step.
    const rows = sql
      .exec(
        "SELECT key, uvid, delete_marker, size, last_modified, tags FROM versions WHERE tenant = ? AND bucket = ? AND key >= ? AND key <= ? AND removed = 0 ORDER BY key, uvid LIMIT ?",
        todo.tenant, todo.bucket, keys[0]!, keys[keys.length - 1]!, STEP_ROWS + 1,
      )
      .toArray();
    const cutShort = rows.length > STEP_ROWS ? String(rows[rows.length - 1]!.key) : null;
    const byKey = new Map<string, VersionRow[]>();
    for (const r of rows) {
      const key = String(r.key);
      const list = byKey.get(key) ?? [];
      list.unshift({ uvid: asUvid(r.uvid), deleteMarker: Number(r.delete_marker) === 1, size: Number(r.size), created: Number(r.last_modified), tags: r.tags ?? null });
      byKey.set(key, list);
    }
    const at = { now, dayMs: this.dayMs };
    const due: Due[] = [];
    let last = todo.cursor;
    let walked = 0;
    let inKey: KeyWindow | null = null;
    for (const key of keys) {
      const keyDue = key === cutShort ? null : dueOf(todo.rules, key, byKey.get(key) ?? [], at);
      // A key not read whole, or with more due than a step may do: walked in windows, alone.
      if (keyDue === null || keyDue.length > STEP_ACTIONS) {
        if (walked === 0) inKey = { key, after: null, rank: 0, since: null };
        break;
      }
      if (due.length + keyDue.length > STEP_ACTIONS) break;
      due.push(...keyDue);
      walked++;
      last = key;
    }
    await this.act(todo, due);
    this.count(walked);
    return this.advance(todo, { phase: "names", cursor: last, inKey });
  }

  /** One window of a key too large for a step: up to WINDOW_ROWS versions, newest first, at most STEP_ACTIONS of them acted on. */
  private async walkWindow(todo: Todo, w: KeyWindow, now: number): Promise<"stepped"> {
    const rows = this.c.sql
      .exec(
        `SELECT uvid, delete_marker, size, last_modified, tags FROM versions WHERE tenant = ? AND bucket = ? AND key = ? AND removed = 0 ${w.after === null ? "" : "AND uvid < ?"} ORDER BY uvid DESC LIMIT ?`,
        ...[todo.tenant, todo.bucket, w.key, ...(w.after === null ? [] : [w.after]), WINDOW_ROWS],
      )
      .toArray()
      .map((r): VersionRow => ({ uvid: asUvid(r.uvid), deleteMarker: Number(r.delete_marker) === 1, size: Number(r.size), created: Number(r.last_modified), tags: r.tags ?? null }));
    let due = dueOf(todo.rules, w.key, rows, { now, dayMs: this.dayMs }, w);
    let judged = rows.length;
    if (due.length > STEP_ACTIONS) {
      due = due.slice(0, STEP_ACTIONS);
      const lastDue = due[due.length - 1]!;
      judged = rows.findIndex((r) => "uvid" in lastDue && r.uvid === lastDue.uvid) + 1;
    }
    await this.act(todo, due);
    if (judged === rows.length && rows.length < WINDOW_ROWS) {
      this.count(1);
      return this.advance(todo, { phase: "names", cursor: w.key, inKey: null });
    }
    const end = rows[judged - 1]!;
    return this.advance(todo, { phase: "names", cursor: todo.cursor, inKey: { key: w.key, after: end.uvid, rank: w.rank + judged, since: end.created } });
  }

  private async walkUploads(todo: Todo, now: number): Promise<"stepped"> {
    const rules = todo.rules.filter((r) => r.abortUploadDays !== null);
    if (rules.length === 0) return this.advance(todo, null);
    const [afterKey, afterId] = todo.cursor === "" ? ["", ""] : splitCursor(todo.cursor);
    const own = partCond("", this.c.part());
    const rows = this.c.sql
      .exec(
        `SELECT key, upload_id, initiated FROM uploads WHERE tenant = ? AND bucket = ? AND open = 1 AND (key > ? OR (key = ? AND upload_id > ?)) ${own === null ? "" : `AND ${own.sql}`} ORDER BY key, upload_id LIMIT ?`,
        todo.tenant, todo.bucket, afterKey, afterKey, afterId, ...(own?.args ?? []), STEP_KEYS,
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
    await this.act(todo, due);
    return this.advance(todo, { phase: "uploads", cursor: `${String(last.key)}\u0000${String(last.upload_id)}` });
  }

  /** Move the bucket's walk on (null: this bucket is done for this pass). */
  private advance(todo: Todo, to: { phase: Phase; cursor: string; inKey?: KeyWindow | null } | null): "stepped" {
    if (to === null) this.c.sql.exec("DELETE FROM lifecycle_todo WHERE tenant = ? AND bucket = ?", todo.tenant, todo.bucket);
    else this.c.sql.exec("UPDATE lifecycle_todo SET phase = ?, cursor = ?, in_key = ?, tries = 0 WHERE tenant = ? AND bucket = ?", to.phase, to.cursor, to.inKey ? JSON.stringify(to.inKey) : null, todo.tenant, todo.bucket);
    return "stepped";
  }

  private count(keys: number, actions = 0): void {
    this.c.sql.exec("UPDATE lifecycle_pass SET keys_walked = keys_walked + ?, actions_done = actions_done + ? WHERE k = 0", keys, actions);
  }

  /** Hand what is due to the groups that own the names; throws if one could not take them (the step is tried again). */
  private async act(todo: Todo, due: Due[]): Promise<void> {
    if (due.length === 0) return;
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
    this.count(0, results.reduce((n, r) => n + (r.status === "fulfilled" ? r.value : 0), 0));
    const failed = results.find((r) => r.status === "rejected");
    // The whole step is tried again: what was done is checked again by the groups and found done.
    if (failed) throw new Error(`a group did not take the step's actions: ${String(failed.reason)}`);
  }
}

function splitCursor(c: string): [string, string] {
  const i = c.lastIndexOf("\u0000");
  return [c.slice(0, i), c.slice(i + 1)];
}
