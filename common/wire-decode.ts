// The control messages of protocol.ts as each side takes them: decoded once, where they cross
// from the other side, into the typed message or a reason it cannot be used. Everything a side
// computes with (amounts), looks things up by (transaction and item numbers), walks (lists) or
// files under a name (CHIDs, NHIDs, UVIDs of stored refs and put items) is checked here, so
// nothing further in needs to doubt a message, and nothing a peer sends can throw in a handler.

import { isCertFingerprint, isChid, isNhid, isUvid } from "./ids.ts";
import type { StoredRef, ToClusterFromTarget, ToGroup, ToTarget, ToTargetFromCluster } from "./protocol.ts";

/** A message the receiver cannot use, and why. */
export interface Malformed {
  malformed: string;
}

type Fields = Record<string, unknown>;

/** A count of bytes or queued work: adding a NaN or a negative to credit or a backlog would poison it for good. */
const isAmount = (v: unknown): boolean => typeof v === "number" && Number.isFinite(v) && v >= 0;
/** A transaction's or an item's number: what replies are looked up by. */
const isIndex = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;
const isObject = (v: unknown): v is Fields => typeof v === "object" && v !== null && !Array.isArray(v);
const listOf = (v: unknown, each: (x: unknown) => boolean): boolean => Array.isArray(v) && v.every(each);
const isString = (v: unknown): boolean => typeof v === "string";

/** A chunk by CHID, or a version manifest by name, version and CHID. */
function isStoredRef(v: unknown): boolean {
  if (!isObject(v) || typeof v.chid !== "string" || !isChid(v.chid)) return false;
  if (v.kind === "chunk") return true;
  return v.kind === "vm" && typeof v.nhid === "string" && isNhid(v.nhid) && typeof v.uvid === "string" && isUvid(v.uvid);
}

/** A stored item's reference kept as JSON (a queue row), checked as a message's would be; null if it is none. */
export function decodeStoredRef(text: string): StoredRef | null {
  try {
    const v: unknown = JSON.parse(text);
    // Checked field by field by isStoredRef: the cast only names what it established.
    return isStoredRef(v) ? (v as StoredRef) : null;
  } catch {
    return null;
  }
}

/** What a put names: a manifest also by its name and version. */
function isPutItem(v: unknown): boolean {
  if (!isObject(v) || typeof v.chid !== "string" || !isChid(v.chid) || !isIndex(v.size)) return false;
  if (v.kind === "chunk") return true;
  return v.kind === "vm" && typeof v.nhid === "string" && isNhid(v.nhid) && typeof v.uvid === "string" && isUvid(v.uvid);
}

const PEER_ADDRESS = /^\S{1,260}:(\d{1,5})$/;

/** "host:port" with a port a socket can dial (1-65535): a larger one throws inside net.connect. */
export function isPeerAddress(a: unknown): a is string {
  if (typeof a !== "string") return false;
  const m = PEER_ADDRESS.exec(a);
  const port = m ? Number(m[1]) : 0;
  return port >= 1 && port <= 65535;
}

/** More members than any group has: a longer roster is not one. */
const MAX_PEERS = 256;
const isPeerEntry = (v: unknown): boolean => isObject(v) && isPeerAddress(v.address) && isCertFingerprint(v.cert);

const isChainHop = (v: unknown): boolean => v === null || (isObject(v) && listOf(v.forward, isPeerAddress) && isString(v.chain));

const isProof = (v: unknown): boolean => typeof v === "string" && /^[0-9a-f]{64}$/.test(v);
const isNonce = (v: unknown): boolean => typeof v === "string" && /^[0-9a-f]{32}$/.test(v);

function isBid(v: unknown): boolean {
  if (!isObject(v) || !isIndex(v.item)) return false;
  if (v.bid === "have") return v.proof === undefined || isProof(v.proof);
  if (v.bid === "refuse") return isString(v.reason);
  return v.bid === "accept" && Array.isArray(v.window) && v.window.length === 2 && v.window.every((t) => typeof t === "number" && Number.isFinite(t));
}

const isCopyState = (v: unknown): boolean => v === "ok" || v === "bad" || v === "missing";

function decodeWith<T>(text: string, wrongFieldOf: (m: Fields) => string | null): T | Malformed {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return { malformed: "not JSON" };
  }
  if (!isObject(m)) return { malformed: "not an object" };
  const wrong = wrongFieldOf(m);
  // Checked field by field above: the cast only names what the checks established.
  return wrong === null ? (m as T) : { malformed: `${JSON.stringify(m.t) ?? "no type"}: bad ${wrong}` };
}

/** A target's text message as a group takes it. */
export function decodeToGroup(text: string): ToGroup | Malformed {
  return decodeWith<ToGroup>(text, wrongToGroup);
}

/** A group's text message as a target takes it. */
export function decodeToTarget(text: string): ToTarget | Malformed {
  return decodeWith<ToTarget>(text, wrongToTarget);
}

/** The cluster's text message as a target takes it. */
export function decodeFromCluster(text: string): ToTargetFromCluster | Malformed {
  return decodeWith<ToTargetFromCluster>(text, (m) => {
    if (m.t !== "membership") return "type";
    if (!isIndex(m.epoch)) return "epoch";
    if (!isIndex(m.groupCount) || m.groupCount === 0) return "groupCount";
    // Groups held under an older group count may be listed too (held data): indexes, not refused.
    return listOf(m.groups, isIndex) ? null : "groups";
  });
}

/** Groups a target may say it holds: more than any group count a cluster runs is a lie or a bug. */
const HELD_MAX = 65_536;
const isHeldList = (v: unknown): boolean => Array.isArray(v) && v.length <= HELD_MAX && v.every(isIndex);
/** A location path ("/region/zone/rack/host/disk"): what placement splits and compares. */
export const LOCATION_PATH = /^(\/[A-Za-z0-9._-]+)+$/;
const isLocation = (v: unknown): boolean => typeof v === "string" && v.length <= 512 && LOCATION_PATH.test(v);

/** A target's text message as the cluster takes it. */
export function decodeToCluster(text: string): ToClusterFromTarget | Malformed {
  return decodeWith<ToClusterFromTarget>(text, (m) => {
    for (const f of ["free", "chunks", "bytes"]) if (!isAmount(m[f])) return f;
    if (m.t === "register") {
      if (!isString(m.id)) return "id";
      if (!isLocation(m.location)) return "location";
      if (!isAmount(m.capacity)) return "capacity";
      if (!isHeldList(m.held)) return "held";
      return m.draining === undefined || typeof m.draining === "boolean" ? null : "draining";
    }
    if (m.t === "heartbeat") {
      if (!isAmount(m.queue)) return "queue";
      if (m.held === undefined) return null;
      return isObject(m.held) && isHeldList(m.held.added) && isHeldList(m.held.dropped) ? null : "held";
    }
    return "type";
  });
}

/** The first field of a target's message a group could not use, or null. */
function wrongToGroup(m: Fields): string | null {
  switch (m.t) {
    case "hello":
      return isString(m.id) ? null : "id";
    case "credit":
      return isAmount(m.bytes) ? null : "bytes";
    case "damaged":
      return isStoredRef(m.ref) ? null : "ref";
    case "reclaimed":
      if (!listOf(m.refs, isStoredRef)) return "refs";
      return isAmount(m.bytes) ? null : "bytes";
  }
  if (!isIndex(m.txn)) return "txn";
  switch (m.t) {
    case "bid-put":
      return listOf(m.bids, isBid) ? null : "bids";
    case "bid-get":
      return isAmount(m.queue) ? null : "queue";
    case "bid-get-vm":
      if (m.uvid !== null && !(typeof m.uvid === "string" && isUvid(m.uvid))) return "uvid";
      if (m.chid !== null && !(typeof m.chid === "string" && isChid(m.chid))) return "chid";
      return isAmount(m.size) ? null : "size";
    case "saved":
      if (m.items !== undefined && !listOf(m.items, isIndex)) return "items";
      if (m.item !== undefined && !isIndex(m.item)) return "item";
      return m.credit === undefined || isAmount(m.credit) ? null : "credit";
    case "save-failed":
    case "chain-broken":
      return isIndex(m.item) ? null : "item";
    case "get-failed":
      return m.item === undefined || isIndex(m.item) ? null : "item";
    case "verified":
      return listOf(m.results, isCopyState) ? null : "results";
    case "inventory-page":
      if (!listOf(m.refs, isStoredRef)) return "refs";
      return m.next === null || isString(m.next) ? null : "next";
    default:
      return "type";
  }
}

/** The first field of a group's message a target could not use, or null. */
function wrongToTarget(m: Fields): string | null {
  switch (m.t) {
    case "bad-copy":
      return isStoredRef(m.ref) ? null : "ref";
    case "reclaim":
      return listOf(m.refs, isStoredRef) ? null : "refs";
    case "drained":
      return null;
    case "peers":
      return listOf(m.peers, isPeerEntry) && (m.peers as unknown[]).length <= MAX_PEERS ? null : "peers";
  }
  if (!isIndex(m.txn)) return "txn";
  if (m.repair !== undefined && m.repair !== true) return "repair";
  switch (m.t) {
    case "propose-put":
      if (m.nonce !== undefined && !isNonce(m.nonce)) return "nonce";
      return listOf(m.items, isPutItem) ? null : "items";
    case "put-eager": {
      if (!listOf(m.items, isPutItem)) return "items";
      const n = (m.items as unknown[]).length;
      // `at` numbers each item in the transaction: one number twice would put two items in one place.
      if (m.at !== undefined && !(listOf(m.at, isIndex) && (m.at as number[]).length === n && new Set(m.at as number[]).size === n)) return "at";
      return m.chains === undefined || (listOf(m.chains, isChainHop) && (m.chains as unknown[]).length === n) ? null : "chains";
    }
    case "select-put":
      if (!listOf(m.items, isIndex)) return "items";
      if (m.forward !== undefined && !listOf(m.forward, isString)) return "forward";
      return m.chain === undefined || isString(m.chain) ? null : "chain";
    case "release":
      return null;
    case "propose-get":
      return typeof m.chid === "string" && isChid(m.chid) ? null : "chid";
    case "propose-get-vm":
      if (!(typeof m.nhid === "string" && isNhid(m.nhid))) return "nhid";
      return m.uvid === null || (typeof m.uvid === "string" && isUvid(m.uvid)) ? null : "uvid";
    case "select-get":
      return isAmount(m.credit) ? null : "credit";
    case "fetch":
      if (!isStoredRef(m.ref)) return "ref";
      return isAmount(m.credit) ? null : "credit";
    case "fetch-many":
      if (!listOf(m.refs, isStoredRef)) return "refs";
      return isAmount(m.credit) ? null : "credit";
    case "verify":
      return listOf(m.refs, isStoredRef) ? null : "refs";
    case "inventory":
      if (!isIndex(m.groupCount) || m.groupCount === 0) return "groupCount";
      if (!isIndex(m.group) || (m.group as number) >= (m.groupCount as number)) return "group";
      if (m.after !== null && !isString(m.after)) return "after";
      if (!isIndex(m.limit)) return "limit";
      return m.since === undefined || isAmount(m.since) ? null : "since";
    default:
      return "type";
  }
}
