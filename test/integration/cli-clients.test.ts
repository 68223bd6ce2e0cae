// The aws CLI v2, rclone and s3cmd (Debian packages) drive the CLI scenario (test/cli/) against
// a real local cluster, each through its own commands. .ci/run installs the three packages when
// they are missing; a machine without one skips that client's steps, and says which is missing.

import { afterAll, beforeAll, describe, it } from "vitest";
import type { LocalCluster } from "../../scripts/cluster.ts";
import { CLI_CLIENTS, type Endpoint } from "../cli/clients.ts";
import { cliScenario } from "../cli/scenario.ts";
import { freePort, removeDir, startTestCluster } from "./helpers.ts";

let cluster: LocalCluster;
let dir: string;
// The clients are located before the cluster starts (describe runs first), so the endpoint's
// port is fixed here and the cluster is started on it.
const port = await freePort();
const ep: Endpoint = { url: `http://127.0.0.1:${port}`, region: "us-east-1", accessKey: "CLIACCESSKEY00000001", secretKey: "cli-secret-key" };

beforeAll(async () => {
  ({ cluster, dir } = await startTestCluster({ port, accessKey: ep.accessKey, secretKey: ep.secretKey }));
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) removeDir(dir);
});

for (const make of CLI_CLIENTS) {
  const client = make(ep);
  if ("missing" in client) {
    describe.skip(`${client.name} (not run: ${client.missing})`, () => {
      it("runs the CLI scenario", () => {});
    });
    continue;
  }
  describe(`${client.name} CLI`, () => {
    const { steps, cleanup } = cliScenario(client, ep, `cli-${client.name}`);
    afterAll(cleanup);
    for (const step of steps) it(step.name, step.run);
  });
}
