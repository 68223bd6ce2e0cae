// What a tenant's directory answers over RPC, and the data its calls carry. Stubs are typed by
// this interface rather than by the TenantDirectory class (directory.ts `implements` it), so
// shared/env.ts can name the binding without importing the object, which itself needs env.ts.

import type { CorsRule } from "../shared/cors-rules.ts";
import type { PublicRead } from "../shared/bucket-policy.ts";
import type { Tag } from "../shared/tags.ts";
import type { Versioning } from "../shared/versioning.ts";
import type { LifecycleRule } from "../shared/lifecycle-rules.ts";

export interface BucketInfo {
  name: string;
  created: number;
  versioning: Versioning;
  /** Its CORS rules (PutBucketCors); absent: none. */
  cors?: CorsRule[];
  /** What its policy lets anyone read; absent: nothing. */
  publicRead?: PublicRead;
  /** Its public access block; absent: none. */
  publicBlock?: PublicBlock;
}

/** A bucket's lifecycle rules, and what a shard needs beside them to act on its names. */
export interface BucketLifecycle {
  bucket: string;
  versioning: Versioning;
  rules: LifecycleRule[];
}

/** PutPublicAccessBlock's four settings. */
export interface PublicBlock {
  blockPublicAcls: boolean;
  ignorePublicAcls: boolean;
  blockPublicPolicy: boolean;
  restrictPublicBuckets: boolean;
}

/** directory.ts says what each call does. */
export interface TenantRpc extends Rpc.DurableObjectBranded {
  createBucket(name: string): Promise<boolean>;
  getBucket(name: string): Promise<BucketInfo | null>;
  listBuckets(): Promise<BucketInfo[]>;
  setVersioning(name: string, status: "Enabled" | "Suspended"): Promise<boolean>;
  getBucketTags(name: string): Promise<Tag[] | null>;
  setBucketTags(name: string, tags: Tag[]): Promise<boolean>;
  setBucketCors(name: string, rules: CorsRule[] | null): Promise<boolean>;
  getBucketPolicy(name: string): Promise<string | null>;
  setBucketPolicy(name: string, policy: { text: string; read: PublicRead } | null): Promise<boolean>;
  setPublicAccessBlock(name: string, block: PublicBlock | null): Promise<boolean>;
  getBucketLifecycle(name: string): Promise<LifecycleRule[] | null>;
  setBucketLifecycle(name: string, rules: LifecycleRule[] | null): Promise<boolean>;
  bucketLifecycle(name: string): Promise<BucketLifecycle | null>;
  lifecycleBuckets(): Promise<BucketLifecycle[]>;
  deleteBucket(name: string): Promise<boolean>;
}
