// A pending version in an editing session (seed 003): it starts from a base version's content
// and metadata (or from nothing), takes edits, and is invisible to everyone until it commits
// as one new version of its name. Edits never touch the base: chunks are immutable, so an edit
// makes a new chunk list that keeps every chunk it does not change, and keeps the unchanged
// part of a chunk it cuts through as a slice of that chunk: an edit stores its own bytes only. The session holds the name's lease in its group, so no
// other session can have a pending version of the same key meanwhile.

import { decompress } from "../../../common/chunk-encoding.ts";
import { chidOf, groupOf, type Chid } from "../../../common/ids.ts";
import { base64Decode, sliceOf, type ChunkEncoding, type ChunkRef, type VersionBody, type VersionManifest } from "../../../common/manifest.ts";
import type { EditMode } from "../../../common/session-protocol.ts";
import type { WriteCondition } from "../../negotiating-group/complete.ts";
import type { MergeItem } from "../../negotiating-group/merges.ts";
import { groupStub } from "../../shared/env.ts";
import { isRefusal } from "../../shared/refusal.ts";
import { chunkListText, manifestToken, payloadToken } from "../../shared/tokens.ts";
import type { Versioning } from "../../shared/versioning.ts";
import { ingest } from "../data/ingest.ts";
import { holdNamedChunks } from "../data/references.ts";
import { asTree, nodeLoader } from "../data/tree.ts";
import { allLeaves, hasNodes, leafTotal } from "../../../common/manifest-tree.ts";
import { placeOf, requireBucket, validateKey, type NamePlace, type NameScope } from "../s3/context.ts";
import { refused } from "../s3/refused.ts";
import { S3Error } from "../../../common/s3/errors.ts";
import { versionIdParam } from "../params.ts";
import { PUT_MAX, STORED_HEADERS } from "../../../common/s3/put-object.ts";
import { replicasOf, USER_META_MAX } from "../s3/object-put.ts";
import { readStreamBounded } from "../../shared/read-bounded.ts";
import { requireRoom, settleRoom } from "../s3/quota.ts";
import { cutAt, cutTo, placed } from "./splice.ts";

/** Who edits: the tenant's scope, and the access key that will be each version's creator. */
export type SessionScope = NameScope & { accessKey: string };

/** A lease outlives a gateway that died with the session open by at most this. */
export const LEASE_TTL_MS = 60_000;
/** Chunks a session's version may have (it holds the list whole): about 32 GiB at 128 KiB chunks. */
const SESSION_CHUNKS_MAX = 262_144;

export interface Committed {
  versionId: string | null;
  etag: string;
  size: number;
  manifestToken: string;
  payloadToken: string;
}

async function md5Hex(s: string): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("MD5", new TextEncoder().encode(s)));
  return [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function bytesStream(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new Response(bytes).body!;
}

/** `length` zero bytes, a MiB at a time (they deduplicate to one chunk per distinct size). */
function zeros(length: number): ReadableStream<Uint8Array> {
  let left = length;
  return new ReadableStream({
    pull(c) {
      if (left === 0) return c.close();
      const n = Math.min(left, 1 << 20);
      left -= n;
      c.enqueue(new Uint8Array(n));
    },
  });
}

/** Everything a pending version is, as plain data: an HTTP session keeps it in storage between requests. */
export interface PendingState {
  bucket: string;
  key: string;
  place: NamePlace;
  mode: EditMode;
  versioning: Versioning;
  condition: WriteCondition | null;
  holder: string;
  replicas: number | null;
  baseVersionId: string | null;
  size: number;
  chunks: ChunkRef[];
  contentType: string;
  userMeta: Record<string, string>;
  httpMeta: Record<string, string>;
  known: [string, Omit<ChunkRef, "offset">][];
  fork?: string | null;
  baseUvid?: string | null;
}


/**
 * An object edited in a session is at most what one PUT may store: its chunk list is held by
 * the session while it is open, and a truncate past the end zero-fills (and hashes) the gap.
 */
function checkSize(end: number): void {
  if (end > PUT_MAX) throw new S3Error("EntityTooLarge", `an object edited in a session is at most ${PUT_MAX} bytes`, { MaxSizeAllowed: String(PUT_MAX) });
}

/** Stored bytes of one pre-compressed chunk at most: deflate can grow incompressible data a little. */
const ENCODED_MAX = (chunkMax: number) => chunkMax + Math.ceil(chunkMax / 1000) + 1024;

export class PendingVersion {
  private readonly ctx: SessionScope;
  readonly bucket: string;
  readonly key: string;
  private readonly place: NamePlace;
  private readonly mode: EditMode;
  private readonly versioning: Versioning;
  private condition: WriteCondition | null;
  private readonly holder: string;
  private readonly replicas: number | null;
  readonly baseVersionId: string | null;
  /** The fork this version belongs to (it commits only with the fork's merge), or null. */
  fork: string | null = null;
  /** The base's stamp (its version id, or what a null version's "null" stands for). */
  private baseUvid: string | null = null;
  size = 0;
  private chunks: ChunkRef[] = [];
  private contentType = "binary/octet-stream";
  private userMeta: Record<string, string> = {};
  private httpMeta: Record<string, string> = {};
  /**
   * Chunks this session may write by reference, by the SHA-256 of their logical bytes (what a
   * client fingerprints; the CHID itself for an uncompressed chunk): its base's and its own,
   * never another tenant's.
   */
  private readonly known = new Map<string, Omit<ChunkRef, "offset">>();

  private constructor(
    ctx: SessionScope,
    o: { bucket: string; key: string; place: NamePlace; mode: EditMode; versioning: Versioning; condition: WriteCondition | null; holder: string; replicas: number | null; baseVersionId: string | null },
  ) {
    this.ctx = ctx;
    this.bucket = o.bucket;
    this.key = o.key;
    this.place = o.place;
    this.mode = o.mode;
    this.versioning = o.versioning;
    this.condition = o.condition;
    this.holder = o.holder;
    this.replicas = o.replicas;
    this.baseVersionId = o.baseVersionId;
  }

  static async open(
    ctx: SessionScope,
    cmd: { bucket: string; key: string; base?: string | null; mode: EditMode; ifAbsent?: boolean; ifVersion?: string; replicas?: number },
    holder: string,
  ): Promise<PendingVersion> {
    validateKey(cmd.key);
    const replicas = cmd.replicas === undefined ? null : replicasOf(String(cmd.replicas), ctx.cfg);
    const info = await requireBucket(ctx, cmd.bucket);
    const place = await placeOf(ctx, cmd.bucket, cmd.key);
    const g = groupStub(ctx.env, place.group);
    if (!(await g.leaseName(place.nhid, holder, LEASE_TTL_MS))) {
      throw new S3Error("KeyLeased", `Another session holds a pending version of ${cmd.key}`, { Key: cmd.key });
    }
    try {
      let base: { vm: VersionManifest; isNull: boolean } | null = null;
      const baseRef = cmd.base === undefined ? "current" : cmd.base;
      if (baseRef !== null) {
        const versionId = baseRef === "current" ? null : versionIdParam(baseRef);
        base = await g.getVersion(place.nhid, versionId);
        if (versionId !== null && (!base || base.vm.deleteMarker)) throw new S3Error("NoSuchVersion", "The specified version does not exist.", { Key: cmd.key, VersionId: baseRef });
        if (base?.vm.deleteMarker) base = null;
      }
      const condition: WriteCondition | null = cmd.ifAbsent ? { ifNoneMatch: true } : cmd.ifVersion ? { ifVersion: String(versionIdParam(cmd.ifVersion)) } : null;
      const p = new PendingVersion(ctx, {
        bucket: cmd.bucket,
        key: cmd.key,
        place,
        mode: cmd.mode,
        versioning: info.versioning,
        condition,
        holder,
        replicas,
        baseVersionId: base ? (base.isNull ? "null" : base.vm.uvid) : null,
      });
      p.baseUvid = base?.vm.uvid ?? null;
      if (base) await p.inherit(base.vm, cmd.mode !== "replace");
      return p;
    } catch (e) {
      // The open's own failure is what the client is told; a lease that cannot be released now
      // expires on its own (LEASE_TTL_MS).
      await g.releaseName(place.nhid, holder).catch(() => {});
      throw e;
    }
  }

  private async inherit(vm: VersionManifest, content: boolean): Promise<void> {
    this.contentType = vm.contentType;
    this.userMeta = { ...vm.userMeta };
    this.httpMeta = { ...vm.httpMeta };
    // A session holds its version's chunk list whole: a base past what it may hold is edited
    // by no session (replace mode still works; it then finds nothing to write by reference).
    const count = leafTotal(vm.chunks);
    if (count > SESSION_CHUNKS_MAX) {
      if (content) throw new S3Error("InvalidRequest", `The base version has ${count} chunks; a session edits versions of at most ${SESSION_CHUNKS_MAX}`);
      return;
    }
    const leaves = await allLeaves(vm.chunks, nodeLoader(this.ctx));
    // The base's chunks can be written by reference even when its content is not kept (replace
    // mode): a client re-sending a changed object then sends only what the base lacks.
    for (const c of leaves) this.remember(c);
    if (!content) return;
    if (vm.inline !== null) {
      // A small base lives inside its manifest: give it a chunk so edits can cut it like any other.
      this.chunks = await this.store(bytesStream(base64Decode(vm.inline)), vm.size, 0);
    } else {
      this.chunks = leaves;
    }
    this.size = vm.size;
  }

  /** Chunk and store a region's bytes (on R targets before this resolves), placed at `at`. */
  private async store(body: ReadableStream<Uint8Array>, length: number, at: number): Promise<ChunkRef[]> {
    const r = await ingest(this.ctx.env, this.ctx.cfg, body, { sha256: false, sizeHint: length, checksum: null, noInline: true, replicas: this.replicas });
    await r.stored;
    if (r.size !== length) throw new S3Error("IncompleteBody", `expected ${length} bytes of payload, got ${r.size}`);
    for (const c of r.chunks) this.remember(c);
    return placed(r.chunks, at);
  }

  /** A whole chunk, by the hash of its logical bytes; a slice's hash is not its chunk's, so it cannot be probed. */
  private remember(c: ChunkRef): void {
    if (c.whole !== undefined) return;
    const { offset: _offset, ...ref } = c;
    this.known.set(c.enc ? c.raw! : c.chid, ref);
  }

  private checkOffset(offset: number, length: number): void {
    checkSize(offset + length);
    if (this.mode === "append" && offset !== this.size) throw new S3Error("InvalidArgument", `append mode writes at the end (${this.size}), not at ${offset}`);
  }

  /**
   * Put `middle` (new payload, or chunks named by reference) over [a, a+length): keep what is
   * outside, re-store the kept edges of chunks cut through, and zero-fill a gap past the end.
   */
  private async splice(a: number, length: number, middle: (at: number) => Promise<ChunkRef[]>): Promise<void> {
    if (a > this.size) {
      const gap = await this.store(zeros(a - this.size), a - this.size, this.size);
      this.chunks = [...this.chunks, ...gap];
      this.size = a;
    }
    const b = a + length;
    const cut = cutAt(this.chunks, a, b);
    const mid = await middle(a);
    // The kept edges of cut chunks become slices of them: nothing is read or re-stored.
    const leftKept = cut.left ? [sliceOf(cut.left, cut.left.offset, a)] : [];
    const rightKept = cut.right ? [sliceOf(cut.right, b, cut.right.offset + cut.right.length)] : [];
    this.chunks = [...cut.before, ...leftKept, ...mid, ...rightKept, ...cut.after];
    this.size = Math.max(this.size, b);
  }

  async write(offset: number, length: number, payload: ReadableStream<Uint8Array>): Promise<void> {
    this.checkOffset(offset, length);
    if (length === 0) return;
    await this.splice(offset, length, (at) => this.store(payload, length, at));
  }

  /**
   * A chunk the client compressed itself: stored as sent, after checking that it decompresses to
   * exactly `length` bytes. Its CHID names the compressed bytes, as for any compressed chunk.
   */
  async writeEncoded(w: { offset: number; length: number; enc: ChunkEncoding; stored: number }, payload: ReadableStream<Uint8Array>): Promise<void> {
    const { offset, length, enc, stored } = w;
    this.checkOffset(offset, length);
    if (length < 1 || length > this.ctx.cfg.chunk.max) throw new S3Error("InvalidArgument", `a pre-compressed write is one chunk: 1 to ${this.ctx.cfg.chunk.max} logical bytes`);
    if (stored < 1 || stored > ENCODED_MAX(this.ctx.cfg.chunk.max)) {
      throw new S3Error("InvalidArgument", `a pre-compressed chunk is 1 to ${ENCODED_MAX(this.ctx.cfg.chunk.max)} stored bytes`);
    }
    const bytes = await readStreamBounded(payload, stored, () => new S3Error("IncompleteBody", `expected ${stored} stored bytes, got more`));
    if (bytes.length !== stored) throw new S3Error("IncompleteBody", `expected ${stored} stored bytes, got ${bytes.length}`);
    let logical: Uint8Array;
    try {
      logical = await decompress(bytes, enc);
    } catch (e) {
      throw new S3Error("InvalidRequest", `the payload is not valid ${enc}: ${String(e)}`);
    }
    if (logical.length !== length) throw new S3Error("InvalidRequest", `the payload decompresses to ${logical.length} bytes, not ${length}`);
    const chid = await chidOf(bytes);
    const g = groupOf(chid, this.ctx.cfg.groupCount);
    await groupStub(this.ctx.env, g).putChunks([{ chid, bytes }], this.replicas);
    const ref: ChunkRef = { offset, length, chid, enc, stored, raw: await chidOf(logical) };
    this.remember(ref);
    await this.splice(offset, length, async (at) => [{ ...ref, offset: at }]);
  }

  /** Write by reference content this session already knows (the probe's "stored"); false if it does not know it. */
  async writeKnown(offset: number, length: number, sha256: string): Promise<boolean> {
    this.checkOffset(offset, length);
    const known = this.known.get(sha256);
    if (!known || known.length !== length || length === 0) return false;
    await this.splice(offset, length, async (at) => [{ ...known, offset: at }]);
    return true;
  }

  async truncate(size: number): Promise<void> {
    checkSize(size);
    if (this.mode === "append" && size < this.size) throw new S3Error("InvalidArgument", "append mode cannot shorten the object");
    if (size >= this.size) {
      if (size > this.size) this.chunks = [...this.chunks, ...(await this.store(zeros(size - this.size), size - this.size, this.size))];
      this.size = size;
      return;
    }
    const { kept, cut } = cutTo(this.chunks, size);
    this.chunks = cut ? [...kept, sliceOf(cut, cut.offset, size)] : kept;
    this.size = size;
  }

  setMeta(set: Record<string, string>, del: string[]): void {
    const userMeta = { ...this.userMeta };
    const httpMeta = { ...this.httpMeta };
    let contentType = this.contentType;
    const apply = (raw: string, value: string | null) => {
      const name = raw.toLowerCase();
      if (name === "content-type") contentType = value ?? "binary/octet-stream";
      else if (name.startsWith("x-amz-meta-") && name.length > "x-amz-meta-".length) {
        if (value === null) delete userMeta[name.slice("x-amz-meta-".length)];
        else userMeta[name.slice("x-amz-meta-".length)] = value;
      } else if (STORED_HEADERS.includes(name)) {
        if (value === null) delete httpMeta[name];
        else httpMeta[name] = value;
      } else throw new S3Error("InvalidArgument", `${raw}: metadata is content-type, x-amz-meta-* or one of ${STORED_HEADERS.join(", ")}`);
    };
    for (const [k, v] of Object.entries(set)) apply(k, String(v));
    for (const k of del) apply(k, null);
    const bytes = Object.entries(userMeta).reduce((n, [k, v]) => n + new TextEncoder().encode(k + v).length, 0);
    if (bytes > USER_META_MAX) throw new S3Error("InvalidArgument", `user metadata is ${bytes} bytes; S3 allows ${USER_META_MAX}`);
    this.userMeta = userMeta;
    this.httpMeta = httpMeta;
    this.contentType = contentType;
  }

  /**
   * An edited object's ETag cannot be the MD5 of its body without reading all of it, so it is
   * "<md5 of the chunk list>-<chunk count>", the form S3 clients already treat as opaque
   * (multipart). An empty object's is the MD5 of nothing, as S3's.
   */
  private async etag(): Promise<string> {
    if (this.size === 0) return "d41d8cd98f00b204e9800998ecf8427e";
    return `${await md5Hex(chunkListText(this.chunks))}-${this.chunks.length}`;
  }

  toState(): PendingState {
    return {
      bucket: this.bucket,
      key: this.key,
      place: this.place,
      mode: this.mode,
      versioning: this.versioning,
      condition: this.condition,
      holder: this.holder,
      replicas: this.replicas,
      baseVersionId: this.baseVersionId,
      size: this.size,
      chunks: this.chunks,
      contentType: this.contentType,
      userMeta: this.userMeta,
      httpMeta: this.httpMeta,
      known: [...this.known],
      fork: this.fork,
      baseUvid: this.baseUvid,
    };
  }

  static fromState(ctx: SessionScope, st: PendingState): PendingVersion {
    const p = new PendingVersion(ctx, st);
    p.size = st.size;
    p.chunks = st.chunks;
    p.contentType = st.contentType;
    p.userMeta = st.userMeta;
    p.httpMeta = st.httpMeta;
    for (const [k, v] of st.known) p.known.set(k, v);
    p.fork = st.fork ?? null;
    p.baseUvid = st.baseUvid ?? null;
    return p;
  }

  /**
   * Join a fork: the version then commits only with the fork's merge, and only if its base is
   * still the key's current version then (or the key still has none, if it had none).
   */
  joinFork(fork: string): void {
    this.fork = fork;
    this.condition = this.baseUvid === null ? { ifNoneMatch: true } : { ifVersion: this.baseUvid };
  }

  /** What the name's group needs to write this version in a merge. */
  async mergeItem(): Promise<{ group: number; item: MergeItem }> {
    const body = await this.heldBody();
    return {
      group: this.place.group,
      item: { nhid: this.place.nhid, shard: this.place.shard, body, versioning: this.versioning, condition: this.condition, holder: this.holder, replicas: this.replicas },
    };
  }

  /** The answer to a commit (or to a merge, per version) once the group wrote it. */
  async committed(body: VersionBody, versionId: string, vmChid: Chid): Promise<Committed> {
    return {
      versionId: this.versioning === "Unversioned" ? null : versionId,
      etag: `"${body.etag}"`,
      size: body.size,
      manifestToken: await manifestToken(this.ctx.env.TOKEN_KEY, vmChid),
      payloadToken: await payloadToken(this.ctx.env.TOKEN_KEY, body.size, body.chunks, null),
    };
  }

  private async body(): Promise<VersionBody> {
    const etag = await this.etag();
    return {
      tenant: this.ctx.tenant,
      bucket: this.bucket,
      key: this.key,
      size: this.size,
      etag,
      contentType: this.contentType,
      userMeta: this.userMeta,
      httpMeta: this.httpMeta,
      // Kept as a tree past a node's worth of chunks, like any PUT.
      chunks: this.size === 0 ? [] : await asTree(this.ctx, this.chunks, { maxTop: this.ctx.cfg.manifestNodeEntries, replicas: this.replicas }),
      inline: null,
      deleteMarker: false,
      creator: this.ctx.accessKey,
    };
  }

  /**
   * The version to write, its chunks held: a session names its base's chunks, and chunks it
   * stored long ago, so every chunk (not only the tree nodes made of them just now) is held
   * until the commit's references arrive, and the commit is refused if any was reclaimed.
   */
  private async heldBody(): Promise<VersionBody> {
    await holdNamedChunks(this.ctx.env, this.ctx.cfg, this.size === 0 ? [] : this.chunks);
    const body = await this.body();
    if (hasNodes(body.chunks)) await holdNamedChunks(this.ctx.env, this.ctx.cfg, body.chunks);
    return body;
  }

  async commit(): Promise<Committed> {
    const body = await this.heldBody();
    const room = { ...this.ctx, reservations: [] };
    await requireRoom(room, body.size);
    let committed = false;
    const r = await groupStub(this.ctx.env, this.place.group)
      .commitEdit(this.place.nhid, body, this.versioning, { condition: this.condition, holder: this.holder, replicas: this.replicas })
      .then((answer) => ((committed = !isRefusal(answer)), answer))
      .finally(() => settleRoom(room, committed));
    if (isRefusal(r)) refused(r);
    return this.committed(body, r.versionId, r.vmChid);
  }

  /** Keep the lease while the session lives. */
  async renew(): Promise<boolean> {
    return groupStub(this.ctx.env, this.place.group).leaseName(this.place.nhid, this.holder, LEASE_TTL_MS);
  }

  /** Drop the pending version: nothing of it was ever visible; its new chunks are referenced by nothing. */
  async abort(): Promise<void> {
    await groupStub(this.ctx.env, this.place.group).releaseName(this.place.nhid, this.holder);
  }
}
