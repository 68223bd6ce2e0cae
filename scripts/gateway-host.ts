#!/usr/bin/env node
// Runs the gateway Worker and its Durable Objects in workerd through Miniflare, configured from
// the same wrangler.toml that `wrangler deploy` and `wrangler dev` read, with state persisted on
// disk in the layout `wrangler dev --persist-to` uses (so both see the same data).
//
// Why not `wrangler dev` for the cluster: wrangler dev puts a second workerd in front of the
// Worker, whose proxy (a Durable Object) forwards every request and every target WebSocket
// frame. Measured on the 2-core dev machine: a Worker answering "ok" serves ~1,500 requests/s
// through it and ~5,200/s without it, and the proxy spends ~1.6 ms of CPU per MB relayed (see
// docs/performance.md). Production has no such hop, so the local cluster does without it too.
// `npm run dev` still runs the cluster under wrangler dev (hot reload, inspector).
//
//   node scripts/gateway-host.ts --port 8787 --persist-to DIR [--var KEY:VALUE ...] [--inspector-port N]

import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { convertV4MiniflareOptions, Log, LogLevel, Miniflare } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const CONFIG = join(ROOT, "wrangler.toml");

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "8787" },
    ip: { type: "string", default: "127.0.0.1" },
    "persist-to": { type: "string" },
    var: { type: "string", multiple: true, default: [] },
    verbose: { type: "boolean", default: false },
    /** Chrome DevTools protocol for the Worker and its Durable Objects (profiling, debugging). */
    "inspector-port": { type: "string" },
  },
});
const persistTo = resolve(values["persist-to"] ?? join(ROOT, ".data", "wrangler"));

/** Bundle exactly as `wrangler deploy` would, so what runs here is what would be deployed. */
function bundle(outdir: string): void {
  rmSync(outdir, { recursive: true, force: true });
  const r = spawnSync(process.execPath, [join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js"), "deploy", "--dry-run", "--config", CONFIG, "--outdir", outdir], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" },
  });
  if (r.status !== 0) throw new Error(`wrangler deploy --dry-run failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
}

/** wrangler's view of wrangler.toml, minus what only applies to source it bundles itself. */
function workerOptions(vars: Record<string, string>): Record<string, unknown> {
  const { workerOptions: wo } = unstable_getMiniflareWorkerOptions(CONFIG);
  const kept = Object.fromEntries(
    Object.entries(wo).filter(([k, v]) => {
      if (k === "modulesRules" || k === "rootPath") return false;
      if (v === undefined) return false;
      if (Array.isArray(v)) return v.length > 0;
      return !(typeof v === "object" && v !== null && Object.keys(v).length === 0);
    }),
  );
  return { ...kept, bindings: { ...(wo.bindings ?? {}), ...vars } };
}

function parseVars(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of list) {
    const at = kv.indexOf(":");
    if (at <= 0) throw new Error(`--var expects KEY:VALUE, got ${kv}`);
    out[kv.slice(0, at)] = kv.slice(at + 1);
  }
  return out;
}

const build = join(persistTo, "build");
mkdirSync(persistTo, { recursive: true });
bundle(build);
// The port serves the Worker itself (a direct socket), not Miniflare's entry worker: that one
// stands in for Cloudflare's edge (a request.cf blob, pretty error pages, request logs) and
// passed every request and response body, and every frame of every WebSocket, through one
// more worker. Measured on the dev machine: ~0.5 ms of workerd CPU per small request (4 KiB
// PUT 2.6 -> 2.1 ms, GET 1.0 -> 0.9). Production has no such hop. Miniflare's own port is
// left to any free one.
const mf = new Miniflare(
  convertV4MiniflareOptions({
    host: values.ip,
    port: 0,
    ...(values["inspector-port"] ? { inspectorPort: Number(values["inspector-port"]) } : {}),
    resourcePersistencePath: join(persistTo, "v3"),
    log: new Log(values.verbose ? LogLevel.INFO : LogLevel.WARN),
    workers: [
      {
        ...workerOptions(parseVars(values.var!)),
        name: "edgestore",
        // The script and the compiled WebAssembly modules it imports (the chunker's scan), by name.
        modules: [
          { type: "ESModule", path: join(build, "index.js") },
          ...readdirSync(build).filter((f) => f.endsWith(".wasm")).map((f) => ({ type: "CompiledWasm", path: join(build, f) })),
        ],
        modulesRoot: build,
        unsafeDirectSockets: [{ host: values.ip, port: Number(values.port) }],
      },
    ],
  } as Parameters<typeof convertV4MiniflareOptions>[0]),
);
await mf.ready;
process.stdout.write(`${JSON.stringify({ msg: "gateway ready", url: `http://${values.ip}:${values.port}/` })}\n`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  // Exiting anyway: a runtime that fails to stop cleanly is ended with the process.
  await mf.dispose().catch(() => {});
  process.exit(0);
};
process.on("SIGINT", () => void stop());
process.on("SIGTERM", () => void stop());
