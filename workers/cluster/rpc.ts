// What the Cluster object answers over RPC (besides the targets' WebSockets, which arrive by
// fetch), and the data its calls carry. Stubs are typed by this interface rather than by the
// Cluster class (cluster.ts `implements` it), so shared/env.ts can name the binding without
// importing the object, which itself needs env.ts.

import type { TargetId } from "../../common/ids.ts";
import type { PlacementWarning } from "../../common/placement.ts";
import type { RegisterMsg } from "../../common/protocol.ts";
import type { Admission, TargetKeyInfo } from "./target-keys.ts";

export interface TargetStatus extends Pick<RegisterMsg, "id" | "location" | "capacity" | "free" | "chunks" | "bytes"> {
  live: boolean;
  lastSeen: number;
  groups: number[];
}

export interface GroupView {
  epoch: number;
  writers: { id: TargetId; location: string }[];
  readers: { id: TargetId; location: string }[];
  /** Targets whose credential was revoked: a group closes any socket it still has from them. */
  revoked: TargetId[];
  /** The group counts the cluster has had, oldest first (layout.ts): where a split group's ids were. */
  layout: number[];
}

/** cluster.ts says what each call does. */
export interface ClusterRpc extends Rpc.DurableObjectBranded {
  groupView(g: number): Promise<GroupView>;
  /** The group and shard counts the cluster has had, oldest first (manifest-shard/split.ts). */
  layouts(): Promise<{ groups: number[]; shards: number[] }>;
  createEnrolment(ttlSeconds: number): Promise<{ token: string; expires: number }>;
  enrolTarget(token: string, id: TargetId | null): Promise<{ id: TargetId; key: string } | { refused: string }>;
  admitTarget(id: TargetId, key: string | null): Promise<Admission>;
  revokeTarget(id: TargetId): Promise<"revoked" | "already" | "unknown">;
  targetKeys(): TargetKeyInfo[];
  status(): Promise<{ epoch: number; targets: TargetStatus[]; copysets: number; warnings: PlacementWarning[] }>;
}
