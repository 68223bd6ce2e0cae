// Running SHA digests for the checksum table (common/s3/checksums.ts) from workerd's
// DigestStream, which hashes in native code as the bytes go by, without holding the object.

import type { RunningDigests } from "../../../common/s3/checksums.ts";

export const digestStreams: RunningDigests = (algorithm) => {
  const ds = new crypto.DigestStream(algorithm);
  const writer = ds.getWriter();
  return {
    update: (d) => writer.write(d),
    digest: async () => {
      await writer.close();
      return new Uint8Array(await ds.digest);
    },
  };
};
