// Issue 7, point 5: the deployable Worker builds from a clean clone. `wrangler deploy --dry-run`
// bundles workers/gateway/index.ts with every Durable Object class exactly as a deploy would,
// and stops before talking to Cloudflare (which cannot be reached from here; nothing is mocked:
// the dry run is wrangler's own). The bundle must export every class wrangler.toml binds.

import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { compileWat } from "../../scripts/build-wasm.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const CLASSES = ["NegotiatingGroup", "ManifestShard", "Cluster", "TenantDirectory", "SnapshotCatalog", "EditSessionHost", "AccountRegistry", "TrafficStats"];

describe("the deployable Worker", () => {
  it("builds with wrangler deploy --dry-run, exporting every Durable Object class it binds", { timeout: 120_000 }, async () => {
    const out = mkdtempSync(join(tmpdir(), "edgestore-deploy-"));
    try {
      const run = spawnSync(process.execPath, [join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js"), "deploy", "--dry-run", "--outdir", out, "--config", join(ROOT, "wrangler.toml")], {
        cwd: ROOT,
        encoding: "utf8",
        env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "1", NO_COLOR: "1" },
        timeout: 110_000,
      });
      expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
      expect(run.stdout).toContain("--dry-run: exiting now.");
      for (const c of CLASSES) expect(run.stdout).toContain(c);
      const bundle = join(out, "index.js");
      expect(existsSync(bundle)).toBe(true);
      const code = readFileSync(bundle, "utf8");
      const exported = /export\s*\{([^}]*)\}/g;
      const names = [...code.matchAll(exported)].flatMap((m) => m[1]!.split(",").map((s) => s.trim().split(/\s+as\s+/).pop()!));
      for (const c of CLASSES) expect(names).toContain(c);
      expect(names).toContain("default");
      // The chunker's scan goes up as a compiled WebAssembly module beside the script, the same
      // bytes that gear-scan.wat compiles to.
      const wasm = readdirSync(out).filter((f) => f.endsWith("gear-scan.wasm"));
      expect(wasm).toHaveLength(1);
      expect(Buffer.from(readFileSync(join(out, wasm[0]!))).equals(Buffer.from(await compileWat(join(ROOT, "common", "gear-scan.wat"))))).toBe(true);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
