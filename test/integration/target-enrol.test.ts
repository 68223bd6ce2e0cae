// Targets with their own credentials, against the real cluster: an operator makes a one-time
// enrolment token with the admin CLI, `node-target init --enrol-token` trades it for the
// target's key, and the target then joins with that key alone (no join secret in its
// environment). Nobody can connect as it with the shared join secret or a wrong key, a token
// works once, and a revoked target is refused and leaves every group, and every other target's
// peer link refuses its certificate from then on.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { connect as tlsConnect } from "node:tls";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { DEVELOPMENT_SECRETS } from "../../common/development-secrets.ts";
import { CLUSTER_CONNECT_PATH, GROUP_CONNECT_PREFIX, JOIN_SECRET_HEADER, TARGET_ID_HEADER, TARGET_KEY_HEADER, TARGET_LOCATION_HEADER } from "../../common/protocol.ts";
import { sleep, type LocalCluster } from "../../scripts/cluster.ts";
import { adminCli, clusterForSuite, eventually, removeDir } from "./helpers.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const LOCATION = "/enrolled/zone-e/rack-1/host-1/disk-0";
let cluster: LocalCluster;
const dirs: string[] = [];
let target: ChildProcess | null = null;

interface Listed {
  id: string;
  live: boolean;
  credential: string;
  groups: number[];
}

const admin = (...args: string[]) => adminCli(cluster, ...args);

/** node-target with no join secret anywhere in its environment. */
function nodeTargetEnv(): NodeJS.ProcessEnv {
  const { JOIN_SECRET: _none, ...env } = process.env;
  return env;
}

function init(dir: string, token: string): { status: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [join(ROOT, "node-target", "main.ts"), "init", "--data-dir", dir, "--location", LOCATION, "--capacity", String(2 ** 30), "--enrol-token", token, "--gateway", cluster.endpoint], {
    encoding: "utf8",
    env: nodeTargetEnv(),
    timeout: 30_000,
  });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

const listed = (): Listed[] => (JSON.parse(admin("targets", "list", "--json").out) as { targets: Listed[] }).targets;

/** The status of a WebSocket dial to the cluster with these headers: 101 when admitted. */
function dial(headers: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${cluster.endpoint.replace("http", "ws")}${CLUSTER_CONNECT_PATH}`, { headers: { [TARGET_LOCATION_HEADER]: "/rogue/a/b/c/d", ...headers } });
    ws.once("open", () => {
      ws.close();
      resolve(101);
    });
    ws.once("unexpected-response", (_req, res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    ws.once("error", () => resolve(0));
  });
}

/** Whether the peer link at `address` keeps a TLS link open for this key and certificate (it closes one it refuses). */
function peerAdmits(address: string, as: { key: string; cert: string }): Promise<boolean> {
  return new Promise((resolve) => {
    const at = address.lastIndexOf(":");
    const s = tlsConnect({ host: address.slice(0, at), port: Number(address.slice(at + 1)), key: as.key, cert: as.cert, rejectUnauthorized: false });
    const timer = setTimeout(() => {
      s.destroy();
      resolve(true);
    }, 500);
    s.on("close", () => {
      clearTimeout(timer);
      resolve(false);
    });
    s.on("error", () => {});
  });
}

/** How many of the cluster's targets admit a peer link from `as`. */
async function admittedBy(as: { key: string; cert: string }): Promise<number> {
  const peers = cluster.targets.flatMap((t) => (t.peer ? [t.peer] : []));
  expect(peers.length).toBeGreaterThan(0);
  return (await Promise.all(peers.map((p) => peerAdmits(p, as)))).filter(Boolean).length;
}

describe("targets with their own credentials", () => {
  clusterForSuite({ bucket: "enrol" }, (c) => ({ cluster } = c));
  afterAll(async () => {
    // The directory goes only once the target has stopped writing into it (bounded).
    if (target && target.exitCode === null) {
      const exited = new Promise((r) => target!.once("exit", r));
      target.kill("SIGTERM");
      await Promise.race([exited, sleep(10_000)]);
      if (target.exitCode === null) target.kill("SIGKILL");
    }
    for (const d of dirs) removeDir(d);
  });

  let id = "";
  let key = "";
  /** The enrolled target's peer-link key and certificate, as it made them in its data directory. */
  let peerIdentity = { key: "", cert: "" };

  it("enrols with a one-time token and joins with its own key, no join secret", async () => {
    const made = admin("targets", "enrol", "--ttl", "600", "--json");
    expect(made.status, made.err).toBe(0);
    const { token } = JSON.parse(made.out) as { token: string };
    const dir = mkdtempSync(join(tmpdir(), "edgestore-enrolled-"));
    dirs.push(dir);
    const first = init(dir, token);
    expect(first.status, first.err).toBe(0);
    const shown = JSON.parse(first.out) as { id: string; enrolled: boolean; key?: string };
    expect(shown.enrolled).toBe(true);
    expect(first.out).not.toContain("tk_");
    id = shown.id;
    // The token is spent.
    const other = mkdtempSync(join(tmpdir(), "edgestore-enrolled-"));
    dirs.push(other);
    const reused = init(other, token);
    expect(reused.status).not.toBe(0);
    expect(reused.err).toContain("unknown or used enrolment token");

    target = spawn(process.execPath, [join(ROOT, "node-target", "main.ts"), "run", "--data-dir", dir, "--gateway", cluster.endpoint, "--scrub-rate", "0", "--peer-listen", "127.0.0.1:0"], { env: nodeTargetEnv(), stdio: "ignore" });
    expect(await eventually(() => listed().some((t) => t.id === id && t.live && t.credential === "key"))).toBe(true);
    key = (JSON.parse(readFileSync(join(dir, "target.json"), "utf8")) as { key: string }).key;
    expect(key).toMatch(/^tk_/);
    // Its groups list it to their members: the targets it shares a group with take a peer link from it.
    peerIdentity = { key: readFileSync(join(dir, "peer-key.pem"), "utf8"), cert: readFileSync(join(dir, "peer-cert.pem"), "utf8") };
    expect(await eventually(async () => (await admittedBy(peerIdentity)) > 0)).toBe(true);
  });

  it("admits nobody else as it: not with the join secret, not with a wrong key", async () => {
    expect(await dial({ [TARGET_ID_HEADER]: id, [JOIN_SECRET_HEADER]: DEVELOPMENT_SECRETS.JOIN_SECRET })).toBe(403);
    expect(await dial({ [TARGET_ID_HEADER]: id, [TARGET_KEY_HEADER]: `${key.slice(0, -2)}xx` })).toBe(403);
    expect(await dial({ [TARGET_ID_HEADER]: "never-enrolled-1", [TARGET_KEY_HEADER]: key })).toBe(403);
  });

  it("refuses a revoked target and takes it out of every group, closing its group links", async () => {
    // A copy of the target that would not leave on its own: a client holding its key and a
    // group link, which the group must close once the target is revoked.
    const g = listed().find((t) => t.id === id)!.groups[0]!;
    const held = new WebSocket(`${cluster.endpoint.replace("http", "ws")}${GROUP_CONNECT_PREFIX}${g}/connect`, { headers: { [TARGET_ID_HEADER]: id, [TARGET_KEY_HEADER]: key, [TARGET_LOCATION_HEADER]: LOCATION } });
    await new Promise((resolve, reject) => held.once("open", resolve).once("error", reject));
    const closed = new Promise<number>((resolve) => held.once("close", (code) => resolve(code)));
    const r = admin("targets", "revoke", id);
    expect(r.status, r.err).toBe(0);
    expect(await eventually(() => listed().some((t) => t.id === id && t.credential === "revoked" && !t.live && t.groups.length === 0))).toBe(true);
    expect(await dial({ [TARGET_ID_HEADER]: id, [TARGET_KEY_HEADER]: key })).toBe(403);
    expect(admin("targets", "revoke", id).status).toBe(1);
    // The group drops it when it next reads its view (within VIEW_TTL_MS); the status page's
    // health calls make every group read it.
    let code: number | null = null;
    void closed.then((c) => (code = c));
    expect(await eventually(() => (void fetch(`${cluster.endpoint}/_admin/status.json`, { headers: { authorization: `Bearer ${cluster.adminToken}` } }).then((res) => res.arrayBuffer()), code !== null), { ms: 45_000 })).toBe(true);
    expect(code).toBe(4003);
    // No target takes a peer link from it any more: its groups dropped it, and told their members.
    expect(await eventually(async () => (await admittedBy(peerIdentity)) === 0, { ms: 45_000 })).toBe(true);
  });
});
