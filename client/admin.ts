// `edgestore-admin`: the cluster's admin API from a shell (docs/security.md). Tenants, their
// quotas and access keys, storage targets' enrolment and revocation, and the cluster's status (docs/operations.md). Results go to stdout (text, or the API's JSON with --json), errors to
// stderr as "<code>: <message>".
//
//   EDGESTORE_ADMIN_TOKEN=... node client/admin.ts keys create acme
//
// Exit status: 0 done; 1 the cluster refused (its error code on stderr); 2 usage.

import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError, type FlagsOf } from "../common/cli-usage.ts";
import { formatBytes } from "./progress.ts";

const CONNECTION = `connection (flags, else environment):
  --endpoint URL   EDGESTORE_ENDPOINT (default http://127.0.0.1:8787)
  --token T        EDGESTORE_ADMIN_TOKEN (the cluster's ADMIN_TOKEN secret)
  --json           print the API's JSON answer instead of text`;

interface Command {
  usage: string;
  about: string;
  args: number;
  run(c: Context, args: string[]): Promise<void>;
}

interface Context {
  flags: Flags;
  call(method: string, path: string, body?: unknown): Promise<unknown>;
  print(value: unknown, text: () => string): void;
}

const OPTIONS = {
  endpoint: { type: "string" },
  token: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  quota: { type: "string" },
  grace: { type: "string" },
  watch: { type: "boolean" },
  ttl: { type: "string" },
  buckets: { type: "string" },
  access: { type: "string" },
} satisfies ParseArgsConfig["options"];

type Flags = FlagsOf<typeof OPTIONS>;

class AdminRefusal extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

const UNITS: Record<string, number> = { "": 1, b: 1, k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, t: 1e12, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };

/** "10GiB", "500 MB", "1e9" or "none" (no limit). */
function parseSize(raw: string): number | null {
  if (raw === "none") return null;
  const m = /^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([a-zA-Z]*)\s*$/.exec(raw);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new UsageError(`"${raw}" is not a size: say e.g. 500MB, 10GiB, 1000000 or none`);
  return Math.round(Number(m[1]) * unit);
}

interface TenantView {
  name: string;
  created: number;
  quotaBytes: number | null;
  usage: { bytes: number; objects: number };
  buckets?: string[];
  keys?: KeyView[];
}

interface KeyView {
  accessKeyId: string;
  tenant: string;
  state: string;
  created: number;
  expires: number | null;
  secretAccessKey?: string;
  scope: { access: string; buckets: string[] } | null;
}

/** `--buckets b1,b2/prefix [--access A]` as the admin API's scope; undefined when no --buckets. */
function scopeOf(flags: Flags, buckets = flags.buckets): { access: string; buckets: string[] } | undefined {
  if (buckets === undefined) {
    if (flags.access !== undefined) throw new UsageError("--access narrows a scope: give --buckets too");
    return undefined;
  }
  const list = buckets.split(",").map((b) => b.trim()).filter((b) => b !== "");
  if (list.length === 0) throw new UsageError('--buckets names at least one "bucket" or "bucket/prefix"');
  return { access: flags.access ?? "read-write", buckets: list };
}

const when = (t: number | null) => (t === null ? "-" : new Date(t).toISOString());
const quotaText = (q: number | null) => (q === null ? "no quota" : `quota ${formatBytes(q)}`);
interface LifecycleShard {
  shard: number;
  running: boolean;
  bucketsLeft: number;
  keysWalked: number;
  actionsDone: number;
  nextPass: string;
}

const lifecycleLine = (s: LifecycleShard) =>
  `shard ${s.shard}\t${s.running ? `running, ${s.bucketsLeft} bucket(s) left` : "idle"}\t${s.keysWalked} key(s) walked, ${s.actionsDone} action(s)\tnext pass ${s.nextPass}`;

const tenantLine = (t: TenantView) => `${t.name}\t${formatBytes(t.usage.bytes)} in ${t.usage.objects} object version(s)\t${quotaText(t.quotaBytes)}`;
const scopeText = (k: KeyView) => (k.scope === null ? "all buckets" : `${k.scope.access} ${k.scope.buckets.join(",")}`);
const keyLine = (k: KeyView) => `${k.accessKeyId}\t${k.tenant}\t${k.state}${k.expires !== null ? ` (until ${when(k.expires)})` : ""}\t${scopeText(k)}\tcreated ${when(k.created)}`;
const newKeyText = (k: KeyView) => `access key id:      ${k.accessKeyId}\nsecret access key:  ${k.secretAccessKey}\ntenant:             ${k.tenant}\n(the secret is shown only now: keep it)`;

interface StatusView {
  targets: { location: string; state: string; capacity: number; free: number; bytes: number; lastSeen: number }[];
  groups: ({ group: number; state: string; members?: { live: boolean }[]; repair?: { short: number; done: number } | null; error?: string })[];
  shards: ({ shard: number; versions?: number; developMs?: number | null; error?: string })[];
  config: { replicas: number };
  copysets: number;
  at: number;
}

function statusText(s: StatusView): string {
  const lines = [`targets (${s.targets.filter((t) => t.state === "live").length} of ${s.targets.length} live, R = ${s.config.replicas}, ${s.copysets} copysets):`];
  for (const t of s.targets) lines.push(`  ${t.state.padEnd(5)} ${t.location}  ${formatBytes(t.bytes)} stored, ${formatBytes(t.free)} free, seen ${Math.round((s.at - t.lastSeen) / 1000)} s ago`);
  lines.push("groups:");
  for (const g of s.groups) {
    const live = g.members ? `${g.members.filter((m) => m.live).length}/${g.members.length} members live` : (g.error ?? "");
    const repair = g.repair ? `, repairing ${g.repair.done} of ${g.repair.short}` : "";
    lines.push(`  ${String(g.group).padStart(3)} ${g.state.padEnd(16)} ${live}${repair}`);
  }
  lines.push("shards:");
  for (const x of s.shards) lines.push(`  ${String(x.shard).padStart(3)} ${x.error ?? `${x.versions} versions, a snapshot now develops in ${x.developMs === null ? "more than 2 s" : `${x.developMs} ms`}`}`);
  return lines.join("\n");
}

interface RebalanceView {
  balanced: boolean;
  targets: { location: string; live: boolean; bytes: number; capacity: number; places: number; share: number }[];
  moving: { group: number; from: string[]; left: number | null; unreferenced: number; sweep: { short: number; done: number; repaired: number } | null; lastSweep: { short: number; repaired: number } | null }[];
  unknown: number[];
  /** Absent from gateways older than group splits. */
  splitting?: { group: number; stepsDone: number; steps: number }[];
  shardsSplitting?: { shard: number; from: number | null; tablesLeft: number; rowsTaken: number; dropping: number }[];
}

function rebalanceText(r: RebalanceView): string {
  const splitting = (r.splitting?.length ?? 0) + (r.shardsSplitting?.length ?? 0);
  const lines = [
    r.balanced
      ? "balanced: no group holds data its members need outside them"
      : `moving: ${r.moving.length} group(s) still copying data to their members${splitting > 0 ? `, ${splitting} still taking in their ids after a split` : ""}${r.unknown.length > 0 ? `, ${r.unknown.length} not answering (${r.unknown.join(", ")})` : ""}`,
  ];
  lines.push("targets (places in groups / share by capacity):");
  for (const t of r.targets) lines.push(`  ${(t.live ? "live" : "down").padEnd(5)} ${t.location}  ${t.places} / ${t.share}  ${formatBytes(t.bytes)} stored of ${formatBytes(t.capacity)}`);
  for (const g of r.moving) {
    const sweep = g.sweep ? `copying: ${g.sweep.done} of ${g.sweep.short} looked at, ${g.sweep.repaired} copied` : g.left === null ? "waiting for its sweep" : `${g.left - g.unreferenced} item(s) left to move or trim`;
    lines.push(`  group ${String(g.group).padStart(3)}  from ${g.from.join(", ")}  ${sweep}`);
  }
  for (const g of r.splitting ?? []) lines.push(`  group ${String(g.group).padStart(3)}  splitting: ${g.stepsDone} of ${g.steps} tables of its old groups walked`);
  for (const s of r.shardsSplitting ?? []) {
    const what = s.from !== null ? `taking its names from shard ${s.from}: ${s.rowsTaken} rows in, ${s.tablesLeft} table(s) left` : `dropping the rows of ${s.dropping} part(s) handed on`;
    lines.push(`  shard ${String(s.shard).padStart(3)}  ${what}`);
  }
  return lines.join("\n");
}

/** Print what `path` answers; with --watch, again every 2 s (over the last, on a terminal) until `done` says so or Ctrl-C. */
async function watch<T>(c: Context, path: string, text: (r: T) => string, done: (r: T) => boolean = () => false): Promise<void> {
  for (;;) {
    const r = (await c.call("GET", path)) as T;
    if (c.flags.watch && process.stdout.isTTY) process.stdout.write("\x1b[2J\x1b[H");
    c.print(r, () => text(r));
    if (!c.flags.watch || done(r)) return;
    await new Promise((wake) => setTimeout(wake, 2000));
  }
}

const COMMANDS: Record<string, Command> = {
  "cluster status": {
    usage: "cluster status [--watch]",
    about: "targets, groups and shards at a glance; --watch redraws every 2 s and shows repair progress until Ctrl-C",
    args: 0,
    run: (c) => watch<StatusView>(c, "/_admin/status.json", statusText),
  },
  "cluster rebalance": {
    usage: "cluster rebalance [--watch]",
    about: "how far data is from balanced after targets joined or left: each target's places against its share, and the groups still moving data; --watch redraws every 2 s until balanced",
    args: 0,
    run: (c) => watch<RebalanceView>(c, "/_admin/rebalance", rebalanceText, (r) => r.balanced),
  },
  "tenants list": {
    usage: "tenants list",
    about: "every tenant with its usage and quota",
    args: 0,
    async run(c) {
      const r = (await c.call("GET", "/_admin/tenants")) as { tenants: TenantView[] };
      c.print(r, () => r.tenants.map(tenantLine).join("\n"));
    },
  },
  "tenants create": {
    usage: "tenants create <name> [--quota SIZE]",
    about: "a new tenant (3-63 of a-z, 0-9, -), optionally with a quota (500MB, 10GiB, ...)",
    args: 1,
    async run(c, [name]) {
      const r = (await c.call("POST", "/_admin/tenants", { name, quotaBytes: c.flags.quota ? parseSize(c.flags.quota) : null })) as TenantView;
      c.print(r, () => `created tenant ${r.name} (${quotaText(r.quotaBytes)})`);
    },
  },
  "tenants show": {
    usage: "tenants show <name>",
    about: "a tenant's usage, quota, buckets and keys",
    args: 1,
    async run(c, [name]) {
      const r = (await c.call("GET", `/_admin/tenants/${encodeURIComponent(name!)}`)) as TenantView;
      c.print(r, () => [tenantLine(r), `buckets: ${r.buckets!.join(", ") || "none"}`, "keys:", ...r.keys!.map((k) => `  ${keyLine(k)}`)].join("\n"));
    },
  },
  "tenants quota": {
    usage: "tenants quota <name> <SIZE|none>",
    about: "set (or, with none, lift) a tenant's quota on the bytes of its object versions",
    args: 2,
    async run(c, [name, size]) {
      const r = (await c.call("PATCH", `/_admin/tenants/${encodeURIComponent(name!)}`, { quotaBytes: parseSize(size!) })) as TenantView;
      c.print(r, () => `tenant ${r.name}: ${quotaText(r.quotaBytes)}, ${formatBytes(r.usage.bytes)} in use`);
    },
  },
  "tenants delete": {
    usage: "tenants delete <name>",
    about: "remove a tenant that has no buckets left, and every key of it",
    args: 1,
    async run(c, [name]) {
      await c.call("DELETE", `/_admin/tenants/${encodeURIComponent(name!)}`);
      c.print({ deleted: name }, () => `deleted tenant ${name}`);
    },
  },
  "keys create": {
    usage: "keys create <tenant> [--buckets B[/PREFIX],... [--access read-only|write-only]]",
    about: "issue an access key for the tenant, limited to some buckets or prefixes if asked; its secret is shown once",
    args: 1,
    async run(c, [tenant]) {
      const scope = scopeOf(c.flags);
      const r = (await c.call("POST", `/_admin/tenants/${encodeURIComponent(tenant!)}/keys`, scope ? { scope } : {})) as KeyView;
      c.print(r, () => `${newKeyText(r)}\nscope:              ${scopeText(r)}`);
    },
  },
  "keys scope": {
    usage: "keys scope <access-key-id> <B[/PREFIX],...|all> [--access read-only|write-only]",
    about: "limit what a key may do from now on (all: lift the limit); takes effect within KEY_CACHE_SECONDS",
    args: 2,
    async run(c, [id, buckets]) {
      const scope = buckets === "all" ? null : scopeOf(c.flags, buckets);
      const r = (await c.call("PATCH", `/_admin/keys/${encodeURIComponent(id!)}`, { scope })) as KeyView;
      c.print(r, () => keyLine(r));
    },
  },
  "keys list": {
    usage: "keys list <tenant>",
    about: "the tenant's keys and their state (never their secrets)",
    args: 1,
    async run(c, [tenant]) {
      const r = (await c.call("GET", `/_admin/tenants/${encodeURIComponent(tenant!)}/keys`)) as { keys: KeyView[] };
      c.print(r, () => r.keys.map(keyLine).join("\n"));
    },
  },
  "keys rotate": {
    usage: "keys rotate <access-key-id> [--grace SECONDS]",
    about: "issue a replacement; the old key keeps working SECONDS more (default 86400), then stops",
    args: 1,
    async run(c, [id]) {
      const grace = c.flags.grace === undefined ? undefined : Number(c.flags.grace);
      if (grace !== undefined && !(grace >= 0)) throw new UsageError("--grace is a number of seconds >= 0");
      const r = (await c.call("POST", `/_admin/keys/${encodeURIComponent(id!)}/rotate`, grace === undefined ? {} : { graceSeconds: grace })) as { key: KeyView; previous: KeyView };
      c.print(r, () => `${newKeyText(r.key)}\nprevious key ${r.previous.accessKeyId} works until ${when(r.previous.expires)}`);
    },
  },
  "keys revoke": {
    usage: "keys revoke <access-key-id>",
    about: "stop a key now (gateways forget it within KEY_CACHE_SECONDS)",
    args: 1,
    async run(c, [id]) {
      const r = (await c.call("DELETE", `/_admin/keys/${encodeURIComponent(id!)}`)) as KeyView;
      c.print(r, () => `revoked ${r.accessKeyId} of tenant ${r.tenant}`);
    },
  },
  "keys reseal": {
    usage: "keys reseal",
    about: "seal every key's secret again under KEY_SEALING_SECRET (rotating it: docs/security.md)",
    args: 0,
    async run(c) {
      const r = (await c.call("POST", "/_admin/keys/reseal")) as { resealed: number; current: number; failed: string[] };
      c.print(r, () => `${r.resealed} re-sealed, ${r.current} already current${r.failed.length ? `, ${r.failed.length} open under neither secret: ${r.failed.join(", ")}` : ""}`);
      if (r.failed.length > 0) process.exitCode = 1;
    },
  },
  "targets enrol": {
    usage: "targets enrol [--ttl SECONDS]",
    about: "a one-time token for node-target init --enrol-token (default valid 3600 s)",
    args: 0,
    async run(c) {
      const ttl = c.flags.ttl === undefined ? undefined : Number(c.flags.ttl);
      if (ttl !== undefined && !(Number.isSafeInteger(ttl) && ttl > 0)) throw new UsageError("--ttl is a whole number of seconds > 0");
      const r = (await c.call("POST", "/_admin/targets/enrolments", ttl === undefined ? {} : { ttlSeconds: ttl })) as { token: string; expires: string };
      c.print(r, () => `${r.token}\n(valid once, until ${r.expires}: node-target init --enrol-token <it> --gateway <url> ...)`);
    },
  },
  "targets list": {
    usage: "targets list",
    about: "every storage target, live or not, and how it proves itself (key, join-secret, revoked)",
    args: 0,
    async run(c) {
      const r = (await c.call("GET", "/_admin/targets")) as { targets: { id: string; location: string; live: boolean; credential: string }[] };
      c.print(r, () => r.targets.map((t) => `${t.id}  ${t.live ? "live" : "down"}  ${t.credential.padEnd(11)}  ${t.location || "(never connected)"}`).join("\n"));
    },
  },
  "targets revoke": {
    usage: "targets revoke <target-id>",
    about: "refuse a target's connects from now on and take it out of every group",
    args: 1,
    async run(c, [id]) {
      await c.call("DELETE", `/_admin/targets/${encodeURIComponent(id!)}`);
      c.print({ revoked: id }, () => `revoked target ${id}`);
    },
  },
  "lifecycle status": {
    usage: "lifecycle status",
    about: "each manifest shard's lifecycle pass: running or not, keys walked, versions expired, next pass",
    args: 0,
    async run(c) {
      const r = (await c.call("GET", "/_admin/lifecycle")) as { shards: LifecycleShard[] };
      c.print(r, () => r.shards.map(lifecycleLine).join("\n"));
    },
  },
  "lifecycle run": {
    usage: "lifecycle run",
    about: "start a lifecycle pass on every shard now rather than at the next midnight UTC",
    args: 0,
    async run(c) {
      const r = (await c.call("POST", "/_admin/lifecycle/run")) as { shards: LifecycleShard[] };
      c.print(r, () => r.shards.map(lifecycleLine).join("\n"));
    },
  },
};

function usage(): string {
  const width = Math.max(...Object.values(COMMANDS).map((c) => c.usage.length));
  return `usage: edgestore-admin <command> [options]\n\ncommands:\n${Object.values(COMMANDS)
    .map((c) => `  ${c.usage.padEnd(width)}  ${c.about}`)
    .join("\n")}\n\n${CONNECTION}\n\nexit status: 0 done, 1 refused (error code on stderr), 2 usage\n`;
}

function commandHelp(c: Command): string {
  return `usage: edgestore-admin ${c.usage}\n\n${c.about}\n\n${CONNECTION}\n`;
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n\n${usage()}`);
    return 2;
  }
  const flags = parsed.values as Flags;
  const [group, verb, ...rest] = parsed.positionals;
  const cmd = group && verb ? COMMANDS[`${group} ${verb}`] : undefined;
  if (!cmd) {
    if (flags.help || !group) {
      process.stdout.write(usage());
      return flags.help ? 0 : 2;
    }
    process.stderr.write(`unknown command "${[group, verb].filter(Boolean).join(" ")}"\n\n${usage()}`);
    return 2;
  }
  if (flags.help) {
    process.stdout.write(commandHelp(cmd));
    return 0;
  }
  if (rest.length !== cmd.args) {
    process.stderr.write(`expected ${cmd.args} argument(s)\n\n${commandHelp(cmd)}`);
    return 2;
  }
  const endpoint = (flags.endpoint ?? process.env.EDGESTORE_ENDPOINT ?? "http://127.0.0.1:8787").replace(/\/$/, "");
  const token = flags.token ?? process.env.EDGESTORE_ADMIN_TOKEN;
  const ctx: Context = {
    flags,
    async call(method, path, body) {
      if (!token) throw new UsageError("no admin token: pass --token or set EDGESTORE_ADMIN_TOKEN");
      const res = await fetch(`${endpoint}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      const value = text ? (JSON.parse(text) as unknown) : null;
      if (!res.ok) {
        const err = value as { error?: string; message?: string } | null;
        throw new AdminRefusal(err?.error ?? `HTTP${res.status}`, err?.message ?? text);
      }
      return value;
    },
    print(value, text) {
      process.stdout.write(flags.json ? `${JSON.stringify(value, null, 2)}\n` : `${text()}\n`);
    },
  };
  try {
    await cmd.run(ctx, rest);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`${e.message}\n`);
      return 2;
    }
    if (e instanceof AdminRefusal) {
      process.stderr.write(`${e.code}: ${e.message}\n`);
      return 1;
    }
    process.stderr.write(`ConnectionFailed: ${endpoint}: ${(e as Error).message}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
