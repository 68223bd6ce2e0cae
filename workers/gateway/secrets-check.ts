// A deployed gateway serves nothing until its secrets are real: present, long enough, and none
// of the development values the local cluster uses (which are public, in this repository).
// Only the local cluster says it is one (EDGESTORE_DEV=1, passed by scripts/cluster.ts and the
// test configuration, never by wrangler.toml), so a `wrangler deploy` that forgot a
// `wrangler secret put` refuses every request with a clear error instead of running on a
// secret everyone knows.

import { DEVELOPMENT_SECRETS } from "../../common/development-secrets.ts";
import type { Env } from "../shared/env.ts";


type SecretName = keyof typeof DEVELOPMENT_SECRETS;

/** Secrets without which the gateway cannot work at all. */
const REQUIRED: SecretName[] = ["TOKEN_KEY", "KEY_SEALING_SECRET"];
/**
 * Secrets that may be left empty, but not weak: the admin API off without ADMIN_TOKEN; no
 * bootstrap key; without JOIN_SECRET only enrolled targets (each with its own key) can join.
 */
const OPTIONAL: SecretName[] = ["ADMIN_TOKEN", "S3_SECRET_KEY", "JOIN_SECRET"];
/** Shortest secret taken in a deployment: 128 bits of base64 or hex is 22–32 characters. */
export const SECRET_MIN_LENGTH = 22;

const checked = new WeakMap<object, string[]>();

/** What is wrong with this deployment's secrets, by name (never by value); empty when nothing is. */
export function secretProblems(env: Env): string[] {
  const known = checked.get(env);
  if (known) return known;
  const problems: string[] = [];
  const dev = env.EDGESTORE_DEV === "1";
  const value = (name: SecretName): string => env[name] ?? "";
  for (const name of REQUIRED) if (value(name) === "") problems.push(`${name} is not set`);
  if ((value("S3_ACCESS_KEY") === "") !== (value("S3_SECRET_KEY") === "")) problems.push("S3_ACCESS_KEY and S3_SECRET_KEY are set together or not at all");
  if (!dev) {
    for (const name of Object.keys(DEVELOPMENT_SECRETS) as SecretName[]) {
      if (value(name) !== "" && value(name) === DEVELOPMENT_SECRETS[name]) problems.push(`${name} has the local cluster's development value`);
    }
    for (const name of [...REQUIRED, ...OPTIONAL]) {
      const v = value(name);
      if (v !== "" && v !== DEVELOPMENT_SECRETS[name] && v.length < SECRET_MIN_LENGTH) problems.push(`${name} is shorter than ${SECRET_MIN_LENGTH} characters`);
    }
  }
  checked.set(env, problems);
  return problems;
}
