import { defineConfig } from "vitest/config";
import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { DEVELOPMENT_SECRETS } from "./common/development-secrets.ts";

// Three projects, two layers:
// - `unit` runs self-contained modules inside workerd (chunker, manifest codec, SigV4, S3 parsing).
// - `workers` runs the Worker and its Durable Objects inside workerd, from wrangler.toml.
// - `integration` runs in Node against a real local cluster (wrangler dev + node-target
//   processes writing real files) through @aws-sdk/client-s3.
const compatibilityDate = "2026-11-01";

export default defineConfig({
  test: {
    reporters: ["default", "./test/summary-reporter.ts"],
    projects: [
      {
        // .wasm files import as compiled modules, as wrangler's default rule has them for the Worker.
        plugins: [cloudflareTest({ miniflare: { compatibilityDate, modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }] } })],
        test: { name: "unit", include: ["test/unit/**/*.test.ts"] },
      },
      {
        // Secrets are not in wrangler.toml: the tests run as the local cluster does (secrets-check.ts).
        plugins: [cloudflareTest({ wrangler: { configPath: "./wrangler.toml" }, miniflare: { bindings: { EDGESTORE_DEV: "1", ...DEVELOPMENT_SECRETS } } })],
        test: { name: "workers", include: ["test/workers/**/*.test.ts"] },
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          environment: "node",
          testTimeout: 180_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
