// Starts a local cluster: the Worker and its Durable Objects in workerd (through Miniflare by
// default, or under `wrangler dev`; state on disk either way), and node-target processes on
// loopback, each with its own data directory and location. Used by `npm start`, the
// integration tests and the benchmarks, so all three run the same thing.

import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, mkdirSync } from "node:fs";
import { createInterface } from "node:readline";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { DEVELOPMENT_SECRETS } from "../common/development-secrets.ts";

const LOG_FILE = process.env.EDGESTORE_CLUSTER_LOG;
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

export const DEFAULTS = {
  port: 8787,
  region: "us-east-1",
  accessKey: DEVELOPMENT_SECRETS.S3_ACCESS_KEY,
  secretKey: DEVELOPMENT_SECRETS.S3_SECRET_KEY,
  joinSecret: DEVELOPMENT_SECRETS.JOIN_SECRET,
  adminToken: DEVELOPMENT_SECRETS.ADMIN_TOKEN,
};

/** Three zones × two hosts: enough distinct failure domains for R=3. */
export const LOCAL_LOCATIONS = ["a", "b", "c"].flatMap((z) => [1, 2].map((h) => `/local/zone-${z}/rack-1/host-${h}/disk-0`));

export interface ClusterOptions {
  port?: number;
  dataDir: string;
  accessKey?: string;
  secretKey?: string;
  joinSecret?: string;
  /** The admin API's bearer token (ADMIN_TOKEN). */
  adminToken?: string;
  locations?: string[];
  /** Extra wrangler vars, e.g. { REPLICAS: "1" }. */
  vars?: Record<string, string>;
  /** Echo process output (npm start) or keep it for diagnostics only (tests). */
  echo?: boolean;
  /**
   * How the gateway Worker runs: "miniflare" (workerd via Miniflare, scripts/gateway-host.ts:
   * no dev proxy in the data path) or "wrangler-dev" (hot reload and inspector, slower).
   */
  runtime?: GatewayRuntime;
  /** Miniflare runtime only: serve the DevTools protocol on this port (profiling). */
  inspectorPort?: number;
  /** Extra node-target options, e.g. ["--scrub-rate", "0"]. */
  targetArgs?: string[];
  /** Where target `index` dials instead of the gateway (a test's proxy); undefined: the gateway. */
  gatewayFor?: (index: number) => string | undefined;
  /** Targets listen for peers on loopback, so puts go down chains (default true; false: fan-out only). */
  peers?: boolean;
  /** How many of the targets `start()` starts (default all); the rest join later with `startTarget`. */
  initialTargets?: number;
}

export type GatewayRuntime = "miniflare" | "wrangler-dev";

export interface RunningTarget {
  index: number;
  location: string;
  dataDir: string;
  proc: ChildProcess | null;
  /** Groups the cluster assigned and the groups whose link is up, from the target's logs. */
  assigned: Set<number>;
  linked: Set<number>;
  /** Epoch of the membership `assigned` came from. */
  epoch: number;
  /** The `msg` of each log line since it started (the last 1000), for tests waiting on an event. */
  said: string[];
  /** Where it serves Prometheus metrics (from its "metrics listening" line), once it has said. */
  metrics: string | null;
  /** Where other targets reach it for chain replication (its "peer link listening" line), once it has said. */
  peer: string | null;
  /** What it wrote to stderr since it started (the last 1000 lines): a command's progress. */
  stderr: string[];
}

export class LocalCluster {
  readonly endpoint: string;
  readonly region = DEFAULTS.region;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly adminToken: string;
  /** Where the cluster keeps its state: the gateway's under wrangler/, each target's under target-N/. */
  get dataDir(): string {
    return this.opts.dataDir;
  }
  readonly targets: RunningTarget[];
  private gateway: ChildProcess | null = null;
  private readonly opts: Required<Omit<ClusterOptions, "vars" | "echo" | "runtime" | "inspectorPort" | "gatewayFor" | "initialTargets">> & {
    initialTargets: number | null;
    gatewayFor: (index: number) => string | undefined;
    vars: Record<string, string>;
    echo: boolean;
    runtime: GatewayRuntime;
    inspectorPort: number | null;
  };
  /** Last lines of every process's output, for error messages. */
  readonly logTail: string[] = [];

  constructor(opts: ClusterOptions) {
    this.opts = {
      port: opts.port ?? DEFAULTS.port,
      dataDir: resolve(opts.dataDir),
      accessKey: opts.accessKey ?? DEFAULTS.accessKey,
      secretKey: opts.secretKey ?? DEFAULTS.secretKey,
      joinSecret: opts.joinSecret ?? DEFAULTS.joinSecret,
      adminToken: opts.adminToken ?? DEFAULTS.adminToken,
      locations: opts.locations ?? LOCAL_LOCATIONS,
      vars: opts.vars ?? {},
      echo: opts.echo ?? false,
      runtime: opts.runtime ?? "miniflare",
      inspectorPort: opts.inspectorPort ?? null,
      targetArgs: opts.targetArgs ?? [],
      gatewayFor: opts.gatewayFor ?? (() => undefined),
      peers: opts.peers ?? true,
      initialTargets: opts.initialTargets ?? null,
    };
    this.endpoint = `http://127.0.0.1:${this.opts.port}`;
    this.accessKey = this.opts.accessKey;
    this.secretKey = this.opts.secretKey;
    this.adminToken = this.opts.adminToken;
    this.targets = this.opts.locations.map((location, index) => ({
      index,
      location,
      dataDir: join(this.opts.dataDir, "targets", `target-${index}`),
      proc: null,
      assigned: new Set(),
      linked: new Set(),
      epoch: -1,
      said: [],
      stderr: [],
      metrics: null,
      peer: null,
    }));
  }

  private remember(prefix: string, line: string): void {
    this.logTail.push(`${prefix} ${line}`);
    if (this.logTail.length > 200) this.logTail.shift();
    if (this.opts.echo) process.stdout.write(`${prefix} ${line}\n`);
    // Every line of every process, for chasing a rare failure after the fact (tests keep a tail only).
    if (LOG_FILE) appendFileSync(LOG_FILE, `${new Date().toISOString()} ${prefix} ${line}\n`);
  }

  async start(): Promise<void> {
    await this.startGateway();
    for (const t of this.targets.slice(0, this.opts.initialTargets ?? this.targets.length)) this.startTarget(t.index);
    await this.waitForTargets();
  }

  async startGateway(): Promise<void> {
    mkdirSync(join(this.opts.dataDir, "wrangler"), { recursive: true });
    // Secrets are never in wrangler.toml: the local cluster passes its development values and
    // says it is the local cluster, the only place a gateway takes them.
    const vars = {
      EDGESTORE_DEV: "1",
      KEY_SEALING_SECRET: DEVELOPMENT_SECRETS.KEY_SEALING_SECRET,
      TOKEN_KEY: DEVELOPMENT_SECRETS.TOKEN_KEY,
      S3_ACCESS_KEY: this.opts.accessKey,
      S3_SECRET_KEY: this.opts.secretKey,
      JOIN_SECRET: this.opts.joinSecret,
      ADMIN_TOKEN: this.opts.adminToken,
      ...this.opts.vars,
    };
    const varArgs = Object.entries(vars).flatMap(([k, v]) => ["--var", `${k}:${v}`]);
    const persistTo = join(this.opts.dataDir, "wrangler");
    const args =
      this.opts.runtime === "wrangler-dev"
        ? [
            join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js"),
            "dev",
            "--config", join(ROOT, "wrangler.toml"),
            "--ip", "127.0.0.1",
            "--port", String(this.opts.port),
            "--inspector-port", "0",
            "--persist-to", persistTo,
            "--show-interactive-dev-session=false",
            "--log-level", this.opts.echo ? "info" : "warn",
            ...varArgs,
          ]
        : [join(ROOT, "scripts", "gateway-host.ts"), "--port", String(this.opts.port), "--persist-to", persistTo, ...(this.opts.echo || LOG_FILE ? ["--verbose"] : []),
            ...(this.opts.inspectorPort ? ["--inspector-port", String(this.opts.inspectorPort)] : []), ...varArgs];
    const proc = spawn(process.execPath, args, {
      cwd: ROOT,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, X_LOCAL_OBSERVABILITY: "false", WRANGLER_SEND_METRICS: "false", CI: process.env.CI ?? "1", NO_COLOR: "1" },
    });
    this.gateway = proc;
    for (const s of [proc.stdout!, proc.stderr!]) createInterface({ input: s }).on("line", (l) => this.remember("[gateway]", l));
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`the gateway (${this.opts.runtime}) exited with ${proc.exitCode}:\n${this.logTail.join("\n")}`);
      try {
        const res = await fetch(`${this.endpoint}/`, { signal: AbortSignal.timeout(2_000) });
        await res.arrayBuffer();
        return;
      } catch {
        await sleep(200);
      }
    }
    throw new Error(`gateway did not answer on ${this.endpoint} within 60 s:\n${this.logTail.join("\n")}`);
  }

  /**
   * Start (or restart) a target. `gateway`: dial another address than the cluster's (a test's
   * proxy); `args`: extra node-target options for this start only (a small --capacity);
   * `command`: "drain" to decommission it (it exits once drained), "run" by default.
   */
  /**
   * Start target `index`. `site`: run it in that network namespace (scripts/netns.ts), its peer
   * and metrics listeners on the site's address, dialling `gateway` (a relay the host runs).
   */
  startTarget(index: number, opts: { gateway?: string; args?: string[]; command?: "run" | "drain"; site?: { exec: string[]; address: string } } = {}): void {
    const t = this.targets[index]!;
    if (t.proc && t.proc.exitCode === null) return;
    t.assigned.clear();
    t.linked.clear();
    t.epoch = -1;
    t.said = [];
    t.metrics = null;
    t.peer = null;
    t.stderr = [];
    const listen = opts.site?.address ?? "127.0.0.1";
    const [command, ...prefix] = [...(opts.site?.exec ?? []), process.execPath];
    const proc = spawn(
      command!,
      [
        ...prefix,
        join(ROOT, "node-target", "main.ts"),
        opts.command ?? "run",
        "--data-dir", t.dataDir,
        "--location", t.location,
        "--gateway", opts.gateway ?? this.opts.gatewayFor(index) ?? this.endpoint,
        ...(this.opts.peers ? ["--peer-listen", `${listen}:0`] : []),
        "--metrics-listen", `${listen}:0`,
        ...this.opts.targetArgs,
        ...(opts.args ?? []),
      ],
      // The join secret through the environment, as a deployment should: not in `ps`.
      { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, JOIN_SECRET: this.opts.joinSecret } },
    );
    t.proc = proc;
    createInterface({ input: proc.stdout! }).on("line", (line) => {
      this.remember(`[target-${index}]`, line);
      try {
        const ev = JSON.parse(line) as { msg?: string; groups?: number[]; link?: string; epoch?: number; address?: string };
        if (ev.msg) {
          t.said.push(ev.msg);
          if (t.said.length > 1000) t.said.shift();
        }
        if (ev.msg === "metrics listening" && ev.address) {
          t.metrics = `http://${ev.address}/metrics`;
        } else if (ev.msg === "peer link listening" && ev.address) {
          t.peer = ev.address;
        } else if (ev.msg === "membership" && ev.groups) {
          t.assigned = new Set(ev.groups);
          t.epoch = ev.epoch ?? -1;
        } else if (ev.msg === "link up" && ev.link?.startsWith("group-")) {
          t.linked.add(Number(ev.link.slice(6)));
        } else if (ev.msg === "link down, redialling" && ev.link?.startsWith("group-")) {
          t.linked.delete(Number(ev.link.slice(6)));
        }
      } catch {
        // not a log line of ours
      }
    });
    createInterface({ input: proc.stderr! }).on("line", (l) => {
      this.remember(`[target-${index}]`, l);
      t.stderr.push(l);
      if (t.stderr.length > 1000) t.stderr.shift();
    });
  }

  /** Wait until every running target has a link up to each group it was assigned. */
  async waitForTargets(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const running = this.targets.filter((t) => t.proc && t.proc.exitCode === null);
      // All on the same map, too: a target still on an older one may yet have groups to join.
      const sameMap = new Set(running.map((t) => t.epoch)).size <= 1;
      if (sameMap && running.every((t) => t.assigned.size > 0 && [...t.assigned].every((g) => t.linked.has(g)))) {
        // Let groups see the last connections before clients arrive.
        await sleep(300);
        return;
      }
      await sleep(100);
    }
    throw new Error(`targets did not connect within ${timeoutMs} ms:\n${this.logTail.slice(-40).join("\n")}`);
  }

  /** Wait until target `index` has logged `msg` since it started; false if it did not within the time. */
  async waitForLog(index: number, msg: string, timeoutMs = 60_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.targets[index]!.said.includes(msg)) return true;
      await sleep(100);
    }
    return false;
  }

  /** Wait for target `index` to exit on its own; its exit code, or null if it still runs after the time. */
  async waitForExit(index: number, timeoutMs: number): Promise<number | null> {
    const proc = this.targets[index]!.proc;
    if (!proc) throw new Error(`target ${index} was not started`);
    if (proc.exitCode !== null) return proc.exitCode;
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), timeoutMs);
      proc.once("exit", (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
  }

  /** Kill one target abruptly (SIGKILL): what a crashed host looks like to the cluster. */
  killTarget(index: number): Promise<void> {
    return this.endTarget(index, "SIGKILL");
  }

  /** Stop one target the way an operator does (SIGTERM): it closes its links and its journal cleanly. */
  stopTarget(index: number): Promise<void> {
    return this.endTarget(index, "SIGTERM");
  }

  private async endTarget(index: number, signal: NodeJS.Signals): Promise<void> {
    const t = this.targets[index]!;
    if (!t.proc || t.proc.exitCode !== null) return;
    const exited = new Promise((r) => t.proc!.once("exit", r));
    t.proc.kill(signal);
    await exited;
    t.proc = null;
  }

  /**
   * Freeze (SIGSTOP) or thaw (SIGCONT) target processes: what a hung host looks like to the
   * cluster — its connections stay open, and it answers nothing until it resumes.
   */
  freezeTargets(indexes: number[], frozen: boolean): void {
    for (const i of indexes) this.targets[i]?.proc?.kill(frozen ? "SIGSTOP" : "SIGCONT");
  }

  get targetCount(): number {
    return this.targets.length;
  }

  async stop(): Promise<void> {
    // A frozen target cannot act on SIGTERM.
    this.freezeTargets(this.targets.map((_, i) => i), false);
    await Promise.all(
      this.targets.map(async (t) => {
        if (!t.proc || t.proc.exitCode !== null) return;
        const exited = new Promise((r) => t.proc!.once("exit", r));
        t.proc.kill("SIGTERM");
        await Promise.race([exited, sleep(5_000)]);
        if (t.proc.exitCode === null) t.proc.kill("SIGKILL");
        t.proc = null;
      }),
    );
    const w = this.gateway;
    if (w && w.exitCode === null && w.pid) {
      const exited = new Promise((r) => w.once("exit", r));
      // Both runtimes run workerd as a child: signal the whole process group we created.
      try {
        process.kill(-w.pid, "SIGTERM");
      } catch {
        // already gone
      }
      await Promise.race([exited, sleep(10_000)]);
      if (w.exitCode === null) {
        try {
          process.kill(-w.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    }
    this.gateway = null;
  }

  /**
   * Stop this cluster if the process is told to stop (Ctrl-C, `timeout`): a benchmark killed
   * halfway must not leave a gateway and six targets running behind it.
   */
  stopOnSignal(): void {
    const onSignal = () => void this.stop().finally(() => process.exit(130));
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
  }

  /** SIGKILL the gateway (workerd and its host) with no warning, as a crash would; startGateway() brings it back on its persisted state. */
  async killGateway(): Promise<void> {
    const w = this.gateway;
    this.gateway = null;
    if (!w || w.exitCode !== null || !w.pid) return;
    const exited = new Promise((r) => w.once("exit", r));
    try {
      process.kill(-w.pid, "SIGKILL");
    } catch {
      // already gone
    }
    await Promise.race([exited, sleep(10_000)]);
  }

  /** Stop the gateway and start it again with these vars changed (state is kept on disk): a redeploy. */
  async restartGateway(vars: Record<string, string>): Promise<void> {
    await this.killGateway();
    Object.assign(this.opts.vars, vars);
    await this.startGateway();
  }

  gatewayPid(): number | undefined {
    return this.gateway?.pid;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
