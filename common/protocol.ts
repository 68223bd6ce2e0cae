// Every message that crosses a WebSocket between a node-target and the control plane, declared
// once. Control messages are JSON text frames with a `t` discriminant; payload travels in binary
// frames of at most FRAME_MAX bytes (header included) under credit-based flow control.
//
// Flow control: a Durable Object gets no send backpressure from the runtime, so each direction
// has a byte window. A target grants its group PUT_WINDOW bytes when it connects and returns
// credit as it writes frames to disk; the group never has more uncredited bytes outstanding
// towards one target. For reads the group grants each selected target the chunk's size in its
// `select-get`, so no target sends payload the group did not ask for.

import type { CertFingerprint, Chid, Nhid, TargetId, Uvid } from "./ids.ts";

export const FRAME_MAX = 1024 * 1024;
export const FRAME_HEADER = 16;
/**
 * A multiple of 4096, not FRAME_MAX - FRAME_HEADER: a target reads a frame's payload from disk
 * straight into place behind its header (O_DIRECT needs 4 KiB-aligned file offsets), so serving
 * a chunk copies nothing in user space.
 */
export const FRAME_PAYLOAD_MAX = FRAME_MAX - 4096;
/** Bytes a target lets a group send it before crediting more. Must exceed the largest chunk. */
export const PUT_WINDOW = 16 * 1024 * 1024;

/** What a target puts: a payload chunk, or a version manifest filed under its name. */
export type StoredKind = "chunk" | "vm";

export interface PutItem {
  kind: StoredKind;
  chid: Chid;
  size: number;
  /** For a version manifest: the name and version it is filed under. */
  nhid?: Nhid;
  uvid?: Uvid;
}

export type Bid =
  /**
   * Holds the item already. `proof`: HMAC-SHA-256 of the item's stored bytes keyed with the
   * proposal's nonce, lowercase hex (common/possession.ts): a group counts the copy only when
   * the proof matches what it computes from the bytes it is placing.
   */
  | { item: number; bid: "have"; proof?: string }
  | { item: number; bid: "accept"; window: [number, number] }
  | { item: number; bid: "refuse"; reason: string };

// ---- target -> cluster ----
export interface RegisterMsg {
  t: "register";
  id: TargetId;
  location: string;
  capacity: number;
  free: number;
  chunks: number;
  bytes: number;
  /** Groups (under the last known group count) this target holds chunks or manifests for. */
  held: number[];
  /** Decommission: take this target out of every group's membership; it only serves what it holds until drained. */
  draining?: boolean;
}
/**
 * Increments since the connection's register (or the heartbeat before): sent when something
 * changed, and at least every 30 s (node-target/heartbeat.ts).
 */
export interface HeartbeatMsg {
  t: "heartbeat";
  free: number;
  chunks: number;
  bytes: number;
  queue: number;
  /** Groups the target started (added) or stopped (dropped) holding data for; absent when none. */
  held?: { added: number[]; dropped: number[] };
}

// ---- cluster -> target ----
export interface MembershipMsg {
  t: "membership";
  epoch: number;
  groupCount: number;
  groups: number[];
}

// ---- group -> target ----
export interface ProposePutMsg {
  t: "propose-put";
  txn: number;
  items: PutItem[];
  /** 16 random bytes (hex) the group chose for this proposal: what a "have" bid proves possession over. */
  nonce?: string;
  /** A repair's copy, not a client's write (targets count repair traffic apart). */
  repair?: true;
}
/** The items (indexes into the proposal) this target was selected to receive. */
export interface SelectPutMsg {
  t: "select-put";
  txn: number;
  items: number[];
  /**
   * Chain replication (node-target/peer-link.ts): the peers after this target in the items'
   * chain; it passes every frame on to the first of them, naming the rest, and to no one else.
   * A target of a chain may get its frames from the group or from a peer, in any order; it
   * keeps each once.
   */
  forward?: string[];
  /** Chain replication: the chain's id, given to every target of it; frames from peers are taken only under it. */
  chain?: string;
}
/**
 * Proposal and selection in one: store these and expect their frames next (from the group, or
 * from a peer for an item of a chain). For items no member can hold already: a version
 * manifest, or a chunk its group has no record of (negotiating-group/eager-put.ts). The target
 * decides each item at once and answers with `saved` (including "already held") or `save-failed`.
 */
export interface PutEagerMsg {
  t: "put-eager";
  txn: number;
  items: PutItem[];
  /**
   * The transaction's number of each of `items` (frames and acks name items by it): one
   * transaction spreads a batch over several targets, each told only its own items. Absent:
   * 0, 1, 2...
   */
  at?: number[];
  /** Chain replication, parallel to `items`: an item's chain, as in SelectPutMsg (null: none). */
  chains?: (ChainHop | null)[];
  /** As ProposePutMsg's. */
  repair?: true;
}
/** One target's place in an item's chain: the peers it passes frames on to, and the chain's id. */
export interface ChainHop {
  forward: string[];
  chain: string;
}
/** A member of a group that takes part in chain replication, as it told its group. */
export interface PeerEntry {
  address: string;
  cert: CertFingerprint;
}
/**
 * The group's members that take part in chain replication, sent to every member whenever one
 * joins or leaves: a target links only with peers some group of it lists (node-target/peer-roster.ts).
 */
export interface PeersMsg {
  t: "peers";
  peers: PeerEntry[];
}
/** Not selected (or the transaction ended): drop any reservation for this txn. */
export interface ReleaseMsg {
  t: "release";
  txn: number;
}
export interface ProposeGetMsg {
  t: "propose-get";
  txn: number;
  chid: Chid;
}
/** Ask for the newest version manifest of a name, or one exact version. */
export interface ProposeGetVmMsg {
  t: "propose-get-vm";
  txn: number;
  nhid: Nhid;
  uvid: Uvid | null;
}
export interface SelectGetMsg {
  t: "select-get";
  txn: number;
  /** Payload credit granted for this transfer, in bytes. */
  credit: number;
}
/** One stored item on a target: a chunk by CHID, or a version manifest by name and version. */
export type StoredRef = { kind: "chunk"; chid: Chid } | { kind: "vm"; chid: Chid; nhid: Nhid; uvid: Uvid };
/** The stored item a put names (wire-decode.ts has checked that a manifest comes with its name and version). */
export function storedRefOf(item: PutItem): StoredRef {
  if (item.kind === "chunk") return { kind: "chunk", chid: item.chid };
  if (!item.nhid || !item.uvid) throw new Error(`manifest ${item.chid} named without its name and version`);
  return { kind: "vm", chid: item.chid, nhid: item.nhid, uvid: item.uvid };
}
/** One text per stored item, ordered chunks first, then manifests by name and version: an inventory's cursor. */
export function storedRefKey(r: StoredRef): string {
  return r.kind === "chunk" ? `c:${r.chid}` : `v:${r.nhid}/${r.uvid}/${r.chid}`;
}
/**
 * Get without a bid round, from a target the group already knows holds the item: send it now
 * (GET_DATA frames) or answer get-failed. The group falls back to proposing when it fails.
 */
export interface FetchMsg {
  t: "fetch";
  txn: number;
  ref: StoredRef;
  credit: number;
}
/**
 * Several items from a target the group knows holds them (a reader's run of chunks), in one
 * message: each is sent as GET_DATA frames whose `item` is its place in `refs`, one after the
 * other, or answered get-failed with that item. `credit` is granted per item. Protocol 2.
 */
export interface FetchManyMsg {
  t: "fetch-many";
  txn: number;
  refs: StoredRef[];
  credit: number;
}
/**
 * The bytes this target sent did not hash to their name: check the copy and quarantine it if it
 * is bad. Targets do not re-hash before serving; the group's check on receipt is the gate.
 */
export interface BadCopyMsg {
  t: "bad-copy";
  ref: StoredRef;
}

/**
 * Re-hash these stored items here and answer which are intact (validation and repair without
 * moving any payload): a bad copy is quarantined as on a bad read.
 */
export interface VerifyMsg {
  t: "verify";
  txn: number;
  refs: StoredRef[];
}

/**
 * List the items this target holds for the group (re-replication): chunks whose CHID, and
 * manifests whose NHID, map to `group` of `groupCount`, in key order after `after`.
 */
export interface InventoryMsg {
  t: "inventory";
  txn: number;
  group: number;
  groupCount: number;
  after: string | null;
  limit: number;
  /** Only chunks written, and manifests stamped, at or after this time (ms since the epoch): a group recovering what it knew only in memory. */
  since?: number;
}

/**
 * Delete these items: nothing references them any more (their group's back-references and
 * holds say so). Unsolicited; answered with `reclaimed` once they are gone from disk. A target
 * treats them as not held from the moment this arrives, so a put proposed after it on the same
 * socket stores a fresh copy instead of counting the one being deleted.
 */
export interface ReclaimMsg {
  t: "reclaim";
  refs: StoredRef[];
}

/**
 * To a draining target (no longer a member): every item of this group it held is at R on the
 * members, so this group no longer needs it. A target told so by every group it holds data for
 * logs "drain complete" and can be stopped for good.
 */
export interface DrainedMsg {
  t: "drained";
}

// ---- target -> group ----
export interface HelloMsg {
  t: "hello";
  id: TargetId;
  location: string;
  /**
   * Since it last served, this target lost data it cannot name (a crash check found damage, or
   * fewer chunks than its journal knew of): the group recounts its items' copies and restores R.
   */
  lost?: boolean;
  /** Started with --drain: its items are to be copied to the group's members (it is no longer one). */
  draining?: boolean;
}
export interface BidPutMsg {
  t: "bid-put";
  txn: number;
  bids: Bid[];
}
export interface BidGetMsg {
  t: "bid-get";
  txn: number;
  have: boolean;
  size: number;
  /** Bytes queued for sending on this target: a busier target bids later. */
  queue: number;
}
export interface BidGetVmMsg {
  t: "bid-get-vm";
  txn: number;
  /** Newest (or the exact requested) version held, with its manifest's CHID and size. */
  uvid: Uvid | null;
  chid: Chid | null;
  size: number;
}
/** These items of a put are durable here (acks that fall due together go in one message). */
export interface SavedMsg {
  t: "saved";
  txn: number;
  items?: number[];
  /** The one item a protocol-1 target names instead of `items`. */
  item?: number;
  /** Payload credit returned with the acks (as a CreditMsg's), to a group of protocol 2. */
  credit?: number;
}
export interface SaveFailedMsg {
  t: "save-failed";
  txn: number;
  item: number;
  reason: string;
}
export interface GetFailedMsg {
  t: "get-failed";
  txn: number;
  reason: string;
  /** For a fetch-many: the item (its place in `refs`) that failed; absent: every item not sent yet. */
  item?: number;
}
/** One answer per ref of a verify, in order. */
export interface VerifiedMsg {
  t: "verified";
  txn: number;
  results: CopyState[];
}
export type CopyState = "ok" | "bad" | "missing";
/**
 * A target's own scrub found a copy it held damaged (and quarantined it): the group should
 * restore the item's replica count from a good copy elsewhere (target -> group, unsolicited).
 */
/** One page of an inventory; `next` continues it, null at the end. */
export interface InventoryPageMsg {
  t: "inventory-page";
  txn: number;
  refs: StoredRef[];
  next: string | null;
}
export interface DamagedMsg {
  t: "damaged";
  ref: StoredRef;
  reason: string;
}
/** Passing an item's frames on to the next target of its chain failed: the group sends them to the rest itself. */
export interface ChainBrokenMsg {
  t: "chain-broken";
  txn: number;
  item: number;
  to: string;
  reason: string;
}
/** The items of a `reclaim` are gone from this target (or were never here); `bytes` freed. */
export interface ReclaimedMsg {
  t: "reclaimed";
  refs: StoredRef[];
  bytes: number;
}
/** Return of payload credit (target -> group for puts). */
export interface CreditMsg {
  t: "credit";
  bytes: number;
}

export type ToTargetFromCluster = MembershipMsg;
export type ToClusterFromTarget = RegisterMsg | HeartbeatMsg;
export type ToTarget =
  | ProposePutMsg
  | PutEagerMsg
  | SelectPutMsg
  | ReleaseMsg
  | ProposeGetMsg
  | ProposeGetVmMsg
  | SelectGetMsg
  | FetchMsg
  | FetchManyMsg
  | BadCopyMsg
  | VerifyMsg
  | InventoryMsg
  | ReclaimMsg
  | DrainedMsg
  | PeersMsg;
export type ToGroup = HelloMsg | BidPutMsg | BidGetMsg | BidGetVmMsg | SavedMsg | SaveFailedMsg | GetFailedMsg | CreditMsg | VerifiedMsg | DamagedMsg | InventoryPageMsg | ReclaimedMsg | ChainBrokenMsg;

// ---- binary payload frames ----
// Header, 16 bytes, big-endian: u8 kind, u8 flags, u16 item, u32 txn, u32 offset, u32 total size.
export const FRAME_PUT_DATA = 1;
export const FRAME_GET_DATA = 2;
export const FLAG_LAST = 1;

export interface FrameHeader {
  kind: number;
  last: boolean;
  item: number;
  txn: number;
  offset: number;
  total: number;
}

/** Write a frame header into the first FRAME_HEADER bytes of `at`. */
export function writeFrameHeader(at: Uint8Array, h: FrameHeader): void {
  const v = new DataView(at.buffer, at.byteOffset, FRAME_HEADER);
  v.setUint8(0, h.kind);
  v.setUint8(1, h.last ? FLAG_LAST : 0);
  v.setUint16(2, h.item);
  v.setUint32(4, h.txn);
  v.setUint32(8, h.offset);
  v.setUint32(12, h.total);
}

export function encodeFrame(h: FrameHeader, payload: Uint8Array): Uint8Array {
  if (payload.length > FRAME_PAYLOAD_MAX) throw new Error(`frame payload ${payload.length} exceeds ${FRAME_PAYLOAD_MAX}`);
  const out = new Uint8Array(FRAME_HEADER + payload.length);
  writeFrameHeader(out, h);
  out.set(payload, FRAME_HEADER);
  return out;
}

export function decodeFrame(frame: Uint8Array): { header: FrameHeader; payload: Uint8Array } {
  if (frame.length < FRAME_HEADER) throw new Error(`short frame: ${frame.length} bytes`);
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  return {
    header: {
      kind: v.getUint8(0),
      last: (v.getUint8(1) & FLAG_LAST) !== 0,
      item: v.getUint16(2),
      txn: v.getUint32(4),
      offset: v.getUint32(8),
      total: v.getUint32(12),
    },
    payload: frame.subarray(FRAME_HEADER),
  };
}

/** The transaction and item of a frame, read from its header without decoding it: for code that passes frames on, per frame, and wants no header object for it. */
export function frameTxn(frame: Uint8Array): number {
  return ((frame[4]! << 24) | (frame[5]! << 16) | (frame[6]! << 8) | frame[7]!) >>> 0;
}
export function frameItem(frame: Uint8Array): number {
  return (frame[2]! << 8) | frame[3]!;
}

/** Split a chunk into frames; a zero-length chunk still sends one (last) frame. */
export function* framesOf(kind: number, txn: number, item: number, bytes: Uint8Array): Generator<Uint8Array> {
  let offset = 0;
  do {
    const end = Math.min(bytes.length, offset + FRAME_PAYLOAD_MAX);
    yield encodeFrame(
      { kind, last: end === bytes.length, item, txn, offset, total: bytes.length },
      bytes.subarray(offset, end),
    );
    offset = end;
  } while (offset < bytes.length);
}

// ---- HTTP paths on the gateway that targets connect to (never S3: bucket names cannot start with '_') ----
export const CLUSTER_CONNECT_PATH = "/_cluster/connect";
export const GROUP_CONNECT_PREFIX = "/_cluster/groups/";
export const TARGET_ID_HEADER = "x-target-id";
export const TARGET_LOCATION_HEADER = "x-target-location";
/** A target's address for chain replication ("host:port"), sent only by targets started with --peer-listen. */
export const TARGET_PEER_HEADER = "x-target-peer";
/** With TARGET_PEER_HEADER: the SHA-256 fingerprint of the certificate the target presents on its peer links. */
export const TARGET_PEER_CERT_HEADER = "x-target-peer-cert";
/**
 * The wire protocol a target speaks, sent when it dials a group: a group uses what a target
 * understands only (batched eager puts from 2), so targets can be upgraded one at a time.
 */
export const TARGET_PROTOCOL_HEADER = "x-target-protocol";
export const TARGET_PROTOCOL = 2;
/** The protocol a group speaks, in its answer to a target's dial: a target carries credit on its acks only to groups of 2. */
export const GROUP_PROTOCOL_HEADER = "x-group-protocol";
export const JOIN_SECRET_HEADER = "x-join-secret";
/** An enrolled target's own key (node-target init --enrol-token), sent on every connect instead of the join secret. */
export const TARGET_KEY_HEADER = "x-target-key";
/** Where `node-target init --enrol-token` trades the token (in ENROL_TOKEN_HEADER) for its id and key. */
export const ENROL_PATH = "/_cluster/enrol";
export const ENROL_TOKEN_HEADER = "x-enrol-token";
/** 32 random bytes, base64url, after a prefix naming what it is (workers/cluster/target-keys.ts makes them). */
export const ENROL_TOKEN = /^et_[A-Za-z0-9_-]{43}$/;
export const TARGET_KEY = /^tk_[A-Za-z0-9_-]{43}$/;
