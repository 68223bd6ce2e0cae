// A deployed gateway's secrets: present, not the public development values, not short. The
// local cluster alone (EDGESTORE_DEV=1) may run on the development values.

import { describe, expect, it } from "vitest";
import { DEVELOPMENT_SECRETS } from "../../common/development-secrets.ts";
import { secretProblems } from "../../workers/gateway/secrets-check.ts";
import type { Env } from "../../workers/shared/env.ts";

const strong = (c: string) => c.repeat(32);
const deployed = (over: Partial<Env> = {}): Env =>
  ({ JOIN_SECRET: strong("j"), TOKEN_KEY: strong("t"), KEY_SEALING_SECRET: strong("k"), ADMIN_TOKEN: strong("a"), ...over }) as Env;

describe("a deployment's secrets", () => {
  it("are fine when present and strong; the admin token and bootstrap key may be left out", () => {
    expect(secretProblems(deployed())).toEqual([]);
    expect(secretProblems(deployed({ ADMIN_TOKEN: undefined }))).toEqual([]);
    // Without a join secret only enrolled targets join: a deployment may go without one.
    expect(secretProblems(deployed({ JOIN_SECRET: "" } as Partial<Env>))).toEqual([]);
    expect(secretProblems(deployed({ S3_ACCESS_KEY: "AKIAEXAMPLE", S3_SECRET_KEY: strong("s") }))).toEqual([]);
  });

  it("name each one missing, public or short, never its value", () => {
    const problems = secretProblems(deployed({ KEY_SEALING_SECRET: "", TOKEN_KEY: DEVELOPMENT_SECRETS.TOKEN_KEY, ADMIN_TOKEN: "short", S3_ACCESS_KEY: "AKIAEXAMPLE" }));
    expect(problems).toEqual([
      "KEY_SEALING_SECRET is not set",
      "S3_ACCESS_KEY and S3_SECRET_KEY are set together or not at all",
      "TOKEN_KEY has the local cluster's development value",
      "ADMIN_TOKEN is shorter than 22 characters",
    ]);
    expect(problems.join(" ")).not.toContain(DEVELOPMENT_SECRETS.TOKEN_KEY);
  });

  it("refuse every development value outside the local cluster, and take them inside it", () => {
    const dev = { ...DEVELOPMENT_SECRETS } as unknown as Partial<Env>;
    expect(secretProblems(deployed(dev))).toHaveLength(Object.keys(DEVELOPMENT_SECRETS).length);
    expect(secretProblems(deployed({ ...dev, EDGESTORE_DEV: "1" }))).toEqual([]);
    expect(secretProblems(deployed({ ...dev, EDGESTORE_DEV: "true" }))).not.toEqual([]);
  });
});
