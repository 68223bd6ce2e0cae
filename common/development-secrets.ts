// The secrets of the local cluster and the tests. They are public (this file), so a deployed
// gateway refuses to run with any of them (workers/gateway/secrets-check.ts).

export const DEVELOPMENT_SECRETS = {
  S3_ACCESS_KEY: "LOCALACCESSKEY000001",
  S3_SECRET_KEY: "local-secret-key-change-me",
  ADMIN_TOKEN: "local-admin-token-change-me",
  KEY_SEALING_SECRET: "local-key-sealing-secret-change-me",
  JOIN_SECRET: "local-join-secret",
  TOKEN_KEY: "local-token-key-change-me",
} as const;
