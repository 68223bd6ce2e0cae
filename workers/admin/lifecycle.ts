// Lifecycle passes as the admin API serves them: each manifest shard's progress through its
// current pass, and starting a pass on every shard now instead of at the next day boundary.

import { configOf, shardStub, type Env } from "../shared/env.ts";
import { json } from "./errors.ts";

/** GET /_admin/lifecycle: per shard, whether a pass is under way and what it has done. */
export async function lifecycleStatus(env: Env): Promise<Response> {
  const shards = configOf(env).shardCount;
  const progress = await Promise.all(Array.from({ length: shards }, (_, s) => shardStub(env, s).lifecycleProgress()));
  return json({
    shards: progress.map((p, shard) => ({
      shard,
      running: p.passStarted !== null,
      ...(p.passStarted !== null ? { passStarted: new Date(p.passStarted).toISOString() } : {}),
      bucketsLeft: p.bucketsLeft,
      keysWalked: p.keysWalked,
      actionsDone: p.actionsDone,
      nextPass: new Date(p.nextPassAt).toISOString(),
    })),
  });
}

/** POST /_admin/lifecycle/run: every shard starts a pass now (one already running goes on). */
export async function runLifecycle(env: Env): Promise<Response> {
  const shards = configOf(env).shardCount;
  await Promise.all(Array.from({ length: shards }, (_, s) => shardStub(env, s).runLifecycle()));
  return lifecycleStatus(env);
}
