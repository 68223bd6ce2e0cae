// A target's identity lives in its data directory: the id is made once, at init, and never
// changes, so the cluster recognises the same disk after a restart or a move to another host.

import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { newTargetId, type TargetId } from "../common/ids.ts";
import { LOCATION_PATH } from "../common/wire-decode.ts";
import { writeFileDurably } from "./durable-file.ts";
import { ENROL_PATH, ENROL_TOKEN_HEADER, TARGET_ID_HEADER, TARGET_KEY } from "../common/protocol.ts";

export interface TargetIdentity {
  id: TargetId;
  location: string;
  /** Bytes this target may use. */
  capacity: number;
  created: string;
  /** Group count of the cluster it last joined: needed to report held groups before joining again. */
  groupCount?: number;
  /** Its own key, from enrolment (node-target init --enrol-token): presented on every connect instead of the join secret. */
  key?: string;
}

const FILE = "target.json";

/** Location paths are /region/zone/rack/host/device: the shared prefix says how correlated two targets are. */
export function validateLocation(location: string): string {
  if (!LOCATION_PATH.test(location) || location.length > 512) {
    throw new Error(`location must look like /region/zone/rack/host/device, got "${location}"`);
  }
  return location;
}

export async function loadIdentity(dataDir: string): Promise<TargetIdentity | null> {
  try {
    return JSON.parse(await readFile(join(dataDir, FILE), "utf8")) as TargetIdentity;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}

/** Create the data directory and identity if absent; update location/capacity if given. */
export async function initIdentity(dataDir: string, location: string, capacity: number): Promise<TargetIdentity> {
  await mkdir(dataDir, { recursive: true });
  const existing = await loadIdentity(dataDir);
  const identity: TargetIdentity = {
    ...existing,
    id: existing?.id ?? newTargetId(),
    location: validateLocation(location),
    capacity,
    created: existing?.created ?? new Date().toISOString(),
  };
  await saveIdentity(dataDir, identity);
  return identity;
}

/**
 * Trade a one-time enrolment token at the gateway for this identity's own key (the cluster binds
 * the id to it), and keep the key with the identity.
 */
export async function enrolIdentity(dataDir: string, identity: TargetIdentity, token: string, gateway: string): Promise<TargetIdentity> {
  const res = await fetch(new URL(ENROL_PATH, gateway), { method: "POST", headers: { [ENROL_TOKEN_HEADER]: token, [TARGET_ID_HEADER]: identity.id } });
  const text = await res.text();
  if (!res.ok) throw new Error(`enrolment refused (${res.status}): ${text}`);
  const answer = JSON.parse(text) as { id?: unknown; key?: unknown };
  if (answer.id !== identity.id || typeof answer.key !== "string" || !TARGET_KEY.test(answer.key)) throw new Error(`the gateway's enrolment answer is not this target's key: ${text.slice(0, 200)}`);
  const enrolled = { ...identity, key: answer.key };
  await saveIdentity(dataDir, enrolled);
  return enrolled;
}

/** Durably: the identity is the target's name to the cluster, so a crash must leave the old or the new one whole. */
export async function saveIdentity(dataDir: string, identity: TargetIdentity): Promise<void> {
  await writeFileDurably(join(dataDir, FILE), JSON.stringify(identity, null, 2) + "\n");
}
