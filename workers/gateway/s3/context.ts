// What every S3 handler is given: the authenticated caller, the request, and the cluster.

import type { Reservation } from "./quota.ts";
import type { Nhid } from "../../../common/ids.ts";
import { groupOf, nhidOf, shardOf } from "../../../common/ids.ts";
import type { ClusterConfig, Env } from "../../shared/env.ts";
import { bucketInfo } from "./bucket-cache.ts";
import type { BucketInfo } from "../../tenant/rpc.ts";
import type { AuthContext } from "../../../common/s3/verify-request.ts";
import { S3Error } from "../../../common/s3/errors.ts";
import { scopeAllows, type KeyScope, type Wanted } from "../../shared/key-scope.ts";

export interface RequestContext {
  env: Env;
  cfg: ClusterConfig;
  req: Request;
  url: URL;
  requestId: string;
  auth: AuthContext;
  tenant: string;
  /** What the request's key may do (shared/key-scope.ts); null: all its tenant may. */
  scope: KeyScope | null;
  /** The caller's location (s3/reader-location.ts): reads are served by the copies nearest to it. */
  near: string | null;
  waitUntil(p: Promise<unknown>): void;
  /** Room this request took against its tenant's quota (quota.ts), settled when it is answered. */
  reservations: Reservation[];
}

/** What naming a tenant's bucket or object needs: also what an editing session (a Durable Object, not a request) has. */
export type NameScope = Pick<RequestContext, "env" | "cfg" | "tenant">;

/** Where a name lives: its NHID, the group that owns it and the manifest shard that lists it. */
export interface NamePlace {
  nhid: Nhid;
  group: number;
  shard: number;
}

export async function placeOf(ctx: NameScope, bucket: string, key: string): Promise<NamePlace> {
  const nhid = await nhidOf(ctx.tenant, bucket, key);
  return { nhid, group: groupOf(nhid, ctx.cfg.groupCount), shard: shardOf(nhid, ctx.cfg.shardCount) };
}

export async function requireBucket(ctx: NameScope, bucket: string): Promise<BucketInfo> {
  const info = await bucketInfo(ctx, bucket);
  if (!info) throw new S3Error("NoSuchBucket", "The specified bucket does not exist", { BucketName: bucket });
  return info;
}

export function validateKey(key: string): void {
  if (new TextEncoder().encode(key).length > 1024) throw new S3Error("KeyTooLongError", "Your key is too long (1024 bytes at most)");
}

/** The request's key may read or write this name (for a listing, this prefix), or the request is denied as S3 denies it. */
export function requireScope(ctx: Pick<RequestContext, "scope">, want: Wanted, bucket: string, key: string): void {
  if (!scopeAllows(ctx.scope, want, bucket, key)) throw new S3Error("AccessDenied", "Access Denied: the key's scope does not reach this");
}
