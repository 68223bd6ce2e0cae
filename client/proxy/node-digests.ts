// Running SHA digests for the checksum table (common/s3/checksums.ts) from Node's crypto: web
// standards have no incremental digest, and the proxy never holds a body whole.

import { createHash } from "node:crypto";
import type { RunningDigests } from "../../common/s3/checksums.ts";

export const nodeDigests: RunningDigests = (algorithm) => {
  const h = createHash(algorithm === "SHA-1" ? "sha1" : "sha256");
  return {
    update: (d) => void h.update(d),
    digest: async () => h.digest(),
  };
};
