#!/usr/bin/env node
// node-target: the storage agent on a host. It dials the gateway (no inbound port), registers
// its data directory with the cluster, and serves the groups it is assigned to. This file is the
// command table: each command's options and help, and the call into the module that does it.

import { readFile } from "node:fs/promises";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "../common/cli-usage.ts";
import { enrolIdentity, initIdentity, loadIdentity, type TargetIdentity } from "./config.ts";
import { log } from "./log.ts";
import { verifyDataDir } from "./offline-verify.ts";
import { serve } from "./serve.ts";
import { dataDirStatus, type DataDirStatus } from "./status.ts";

type Options = NonNullable<ParseArgsConfig["options"]>;
type Values = Record<string, string | boolean | undefined>;

interface Command {
  summary: string;
  usage: string;
  options: Options;
  help: string;
  /** Serves (run, drain): failures are logged as JSON lines like the rest of its output. */
  serves?: true;
  run(v: Values): Promise<number>;
}


const DATA_DIR_HELP = `  --data-dir <path>     the target's data directory (required)`;
const IDENTITY_HELP = `  --location <path>     failure-domain path /region/zone/rack/host/device, e.g.
                        /eu/zone-a/rack-1/host-1/disk-0 (docs/durability.md)
  --capacity <bytes>    bytes this target may use (default 100 GiB)`;
const SERVE_HELP = `  --gateway <url>       gateway URL (default http://127.0.0.1:8787, env GATEWAY_URL)
  --join-secret-file <path>
                        read the shared join secret from this file (or env JOIN_SECRET; the
                        secret on a command line shows in ps, so --join-secret <s> is for tests)
  --no-direct-io        buffered file I/O even where O_DIRECT works (default: direct where it works)
  --scrub-rate <B/s>    re-verify stored data at most this fast, a sixteenth of it while clients
                        are busy (default 4194304; 0: no scrub)
  --scrub-pause <ms>    pause between full scrub passes (default 3600000)
  --peer-listen <h:p>   accept chunk frames from other targets here (chain replication: the
                        group sends a chunk once and the targets pass it on) over TLS, with
                        a key kept in the data directory (peer-key.pem); port 0: any
  --peer-address <h:p>  the address other targets dial, if not the one listened on
  --metrics-listen <h:p>
                        serve Prometheus metrics at http://h:p/metrics (port 0: any; the address
                        is logged as "metrics listening"); keep it on 127.0.0.1 or a private network`;

const JSON_OUT_HELP = `  --json                print the result as one JSON object`;

const DATA_DIR: Options = { "data-dir": { type: "string" } };
const JSON_OUT: Options = { json: { type: "boolean" } };
const IDENTITY: Options = { location: { type: "string" }, capacity: { type: "string" } };
const SERVE: Options = {
  gateway: { type: "string" },
  "join-secret": { type: "string" },
  "join-secret-file": { type: "string" },
  "no-direct-io": { type: "boolean" },
  "scrub-rate": { type: "string" },
  "scrub-pause": { type: "string" },
  "peer-listen": { type: "string" },
  "peer-address": { type: "string" },
  "metrics-listen": { type: "string" },
};

function str(v: Values, name: string): string | undefined {
  const x = v[name];
  return typeof x === "string" ? x : undefined;
}

function nonNegative(v: Values, name: string, fallback: number): number {
  const raw = str(v, name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`--${name} wants a non-negative number, got "${raw}"`);
  return n;
}

function dataDirOf(v: Values): string {
  const d = str(v, "data-dir");
  if (!d) throw new UsageError("--data-dir is required");
  return d;
}

async function identityOf(dataDir: string): Promise<TargetIdentity> {
  const identity = await loadIdentity(dataDir);
  if (!identity) throw new UsageError(`${dataDir} is not a target's data directory: run 'node-target init --data-dir ${dataDir} --location ...' first`);
  return identity;
}

/** `run` and `drain` accept --location/--capacity so one command can set up and start a target. */
async function identityForServe(v: Values, dataDir: string): Promise<TargetIdentity> {
  const location = str(v, "location");
  const capacity = nonNegative(v, "capacity", 100 * 2 ** 30);
  const identity = await loadIdentity(dataDir);
  if (location && (!identity || identity.location !== location || identity.capacity !== capacity)) return initIdentity(dataDir, location, capacity);
  if (!identity) throw new UsageError(`${dataDir} is not initialised: give --location, or run 'node-target init' first`);
  return identity;
}

async function startServing(v: Values, draining: boolean, onDrainProgress?: (drained: number, held: number, complete: boolean) => void) {
  const dataDir = dataDirOf(v);
  const identity = await identityForServe(v, dataDir);
  const secretFile = str(v, "join-secret-file");
  const joinSecret = secretFile ? (await readFile(secretFile, "utf8")).trim() : (str(v, "join-secret") ?? process.env.JOIN_SECRET);
  if (!identity.key && !joinSecret) throw new UsageError("this target is not enrolled (node-target init --enrol-token): --join-secret-file or JOIN_SECRET is required");
  const credential = identity.key ? { key: identity.key } : { joinSecret: joinSecret! };
  const peerListen = str(v, "peer-listen");
  const peerAddress = str(v, "peer-address");
  const metricsListen = str(v, "metrics-listen");
  return serve({
    dataDir,
    identity,
    gateway: str(v, "gateway") ?? process.env.GATEWAY_URL ?? "http://127.0.0.1:8787",
    credential,
    directIo: !v["no-direct-io"],
    scrubRate: nonNegative(v, "scrub-rate", 4 * 1024 * 1024),
    scrubPause: nonNegative(v, "scrub-pause", 3_600_000),
    draining,
    ...(peerListen ? { peerListen } : {}),
    ...(peerAddress ? { peerAddress } : {}),
    ...(metricsListen ? { metricsListen } : {}),
    ...(onDrainProgress ? { onDrainProgress } : {}),
  });
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

function statusText(s: DataDirStatus): string {
  const lines = [
    `target    ${s.id}`,
    `location  ${s.location}`,
    `capacity  ${mib(s.capacity)}`,
    `state     ${s.state}${s.pid !== null ? ` (pid ${s.pid})` : ""}${s.lastStart ? `, last started ${s.lastStart}` : ""}`,
    `disk free ${mib(s.diskFree)}`,
  ];
  if (s.live) {
    lines.push(`stored    ${mib(s.live.storedBytes)} in ${s.live.chunks} chunks, ${mib(s.live.freeBytes)} of its capacity free`);
    lines.push(`links     ${s.live.groupLinks} groups connected, ${mib(s.live.queueBytes)} queued`);
  } else if (s.chunks !== null) {
    lines.push(`chunks    ${s.chunks}${s.state === "running" ? " at the last checkpoint (start with --metrics-listen for live figures)" : ""}`);
  }
  return lines.join("\n") + "\n";
}

const COMMANDS: Record<string, Command> = {
  init: {
    summary: "create a data directory's identity (or change its location or capacity)",
    usage: "node-target init --data-dir <path> --location <path> [--capacity <bytes>] [--enrol-token <t> --gateway <url>]",
    options: { ...DATA_DIR, ...IDENTITY, "enrol-token": { type: "string" }, gateway: { type: "string" } },
    help: `${DATA_DIR_HELP}\n${IDENTITY_HELP}
  --enrol-token <t>     a one-time token from the operator (edgestore-admin targets enrol):
                        trade it at --gateway for this target's own key, kept in the data
                        directory and presented on every connect instead of the join secret
  --gateway <url>       where to enrol (env GATEWAY_URL)

Prints the identity as JSON (without its key). The id is made once and kept: the cluster knows
the disk by it, wherever it is mounted.`,
    async run(v) {
      const location = str(v, "location");
      if (!location) throw new UsageError("--location is required");
      const dataDir = dataDirOf(v);
      let identity = await initIdentity(dataDir, location, nonNegative(v, "capacity", 100 * 2 ** 30));
      const token = str(v, "enrol-token");
      if (token) identity = await enrolIdentity(dataDir, identity, token, str(v, "gateway") ?? process.env.GATEWAY_URL ?? "http://127.0.0.1:8787");
      const { key: _kept, ...shown } = identity;
      process.stdout.write(JSON.stringify({ ...shown, enrolled: identity.key !== undefined }) + "\n");
      return 0;
    },
  },
  run: {
    summary: "serve a data directory (initialising it first if --location is given)",
    usage: "node-target run --data-dir <path> [--location <path>] [options]",
    options: { ...DATA_DIR, ...IDENTITY, ...SERVE, drain: { type: "boolean" } },
    serves: true,
    help: `${DATA_DIR_HELP}\n${IDENTITY_HELP}\n${SERVE_HELP}
  --drain               leave every group's membership and keep serving reads, without exiting
                        when the drain is complete (what 'drain' does, for a supervisor that
                        restarts what exits)

Logs one JSON object per line on stdout. SIGTERM or SIGINT stop it cleanly.`,
    async run(v) {
      const served = await startServing(v, v.drain === true);
      await served.stopped;
      return 0;
    },
  },
  drain: {
    summary: "decommission: leave every group, serve reads until they hold this data elsewhere, then exit",
    usage: "node-target drain --data-dir <path> [options]",
    options: { ...DATA_DIR, ...IDENTITY, ...SERVE },
    serves: true,
    help: `${DATA_DIR_HELP}\n${IDENTITY_HELP}\n${SERVE_HELP}

Each group is given another member at once and copies what this target holds to its members
while this target still serves it. Progress goes to stderr, a line per group that is done;
the command exits 0 once every group has this target's data at R without it, and the disk can
be taken away (docs/durability.md, "Decommission").`,
    async run(v) {
      let served: Awaited<ReturnType<typeof serve>> | null = null;
      let complete = false;
      let last = "";
      served = await startServing(v, true, (drained, held, done) => {
        const line = `drain: ${drained} of ${held} groups hold this target's data at R elsewhere${done ? ": complete, stopping" : ""}`;
        if (line !== last) process.stderr.write(line + "\n");
        last = line;
        complete ||= done;
        if (done) void served?.stop("drain complete");
      });
      if (complete) void served.stop("drain complete");
      await served.stopped;
      return 0;
    },
  },
  status: {
    summary: "what a data directory is and whether a target is serving it",
    usage: "node-target status --data-dir <path> [--json]",
    options: { ...DATA_DIR, ...JSON_OUT },
    help: `${DATA_DIR_HELP}\n${JSON_OUT_HELP}

Works on a stopped target too: it reads the directory (identity, run journal) and, while a
target serves it with --metrics-listen, that target's live metrics. The state is "running",
"stopped" (cleanly), "crashed" (the last run did not stop cleanly: the next start rechecks
what it wrote since its last checkpoint) or "never run".`,
    async run(v) {
      const dataDir = dataDirOf(v);
      const s = await dataDirStatus(dataDir, await identityOf(dataDir));
      process.stdout.write(v.json ? JSON.stringify(s) + "\n" : statusText(s));
      return 0;
    },
  },
  verify: {
    summary: "re-hash everything a stopped target holds; damage is quarantined and reported at its next run",
    usage: "node-target verify --data-dir <path> [--json]",
    options: { ...DATA_DIR, ...JSON_OUT },
    help: `${DATA_DIR_HELP}\n${JSON_OUT_HELP}

Reads every chunk and version manifest and checks it against its hash, with progress on
stderr. A damaged copy is moved to quarantine (never served) and the directory is marked so
that its next run tells its groups, which restore the copy from another target. Exit 0 when
all is sound, 3 when something was damaged. Refused while a target serves the directory: a
running target verifies itself in the background (--scrub-rate).`,
    async run(v) {
      const dataDir = dataDirOf(v);
      await identityOf(dataDir);
      const report = await verifyDataDir(dataDir, (line) => process.stderr.write(line + "\n"));
      if (v.json) process.stdout.write(JSON.stringify(report) + "\n");
      else {
        for (const d of report.damaged) process.stdout.write(`damaged ${d.kind} ${d.chid}\n`);
        process.stdout.write(`${report.items} items, ${mib(report.bytes)} verified in ${(report.ms / 1000).toFixed(1)} s: ${report.damaged.length === 0 ? "all sound" : `${report.damaged.length} damaged, quarantined; the next run reports them to their groups`}\n`);
      }
      return report.damaged.length === 0 ? 0 : 3;
    },
  },
};

function commandHelp(c: Command): string {
  // A command's help is its option lines, then (after a blank line) what it does in prose.
  const [options, ...about] = c.help.split("\n\n");
  return `usage: ${c.usage}\n\n${c.summary}\n\noptions:\n${options}\n  --help                show this help\n${about.map((p) => `\n${p}\n`).join("")}`;
}

const USAGE = `usage: node-target <command> [options]

commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(7)}${c.summary}`)
  .join("\n")}

'node-target <command> --help' describes a command and its options.
`;

async function main(argv: string[]): Promise<number> {
  // Everything a target writes (packs, its index, identity, logs of runs) is its own: stored
  // chunks are tenants' data, not for other users of the host to read.
  process.umask(0o077);
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    const c = rest[0] !== undefined ? COMMANDS[rest[0]] : undefined;
    process.stdout.write(c ? commandHelp(c) : USAGE);
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`node-target: unknown command "${name}"\n\n${USAGE}`);
    return 2;
  }
  let values: Values;
  try {
    ({ values } = parseArgs({ args: rest, options: { ...command.options, help: { type: "boolean", short: "h" } }, allowPositionals: false }));
  } catch (e) {
    process.stderr.write(`node-target ${name}: ${(e as Error).message}\n\n${commandHelp(command)}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(commandHelp(command));
    return 0;
  }
  try {
    return await command.run(values);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`node-target ${name}: ${e.message}\n\nusage: ${command.usage}\n`);
      return 2;
    }
    if (command.serves) throw e;
    process.stderr.write(`node-target ${name}: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    // Give stdout a moment to drain; handles left by a stopped link must not keep us alive.
    process.exitCode = code;
    setTimeout(() => process.exit(code), 50).unref();
  },
  (e: unknown) => {
    log("error", "fatal", { error: e instanceof Error ? e.message : String(e) });
    process.exit(1);
  },
);
