// Types `env` from "cloudflare:workers" with the bindings wrangler.toml declares.
import type { Env as WorkerEnv } from "../../workers/shared/env.ts";

declare global {
  namespace Cloudflare {
    interface Env extends WorkerEnv {}
  }
}
