// Access keys and the tenant each belongs to. One key pair for now, from the Worker's settings
// (S3_ACCESS_KEY / S3_SECRET_KEY); tenants with their own keys come with the admin API.

import type { Env } from "../../shared/env.ts";

export const DEFAULT_TENANT = "default";

export interface Credential {
  secret: string;
  tenant: string;
}

export function lookupCredential(env: Env, accessKey: string): Credential | null {
  if (accessKey === env.S3_ACCESS_KEY) return { secret: env.S3_SECRET_KEY, tenant: DEFAULT_TENANT };
  return null;
}
