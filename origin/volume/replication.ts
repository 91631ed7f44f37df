/**
 * Replication fan-out (docs/format.md §8): the server that takes a write stores it,
 * then sends the same needle to every other replica of the volume with
 * `?type=replicate`, and answers success only when all of them have it.
 * Deletes go the same way. Replica locations come from the master's lookup,
 * cached briefly and dropped whenever a fan-out fails.
 *
 * A fan-out that fails is rolled back everywhere before the client hears of
 * it (docs/decisions/0004-replication-rollback.md): the primary restores the
 * key's previous entry, and every replica is asked to undo the change by its
 * id (`DELETE /<fid>?type=replicate&undo=<id>`, undo-log.ts), so no replica
 * keeps serving a write or delete the client was told failed.
 *
 * Small writes to a replica that is busy with an earlier request wait and go
 * together, in one request (replica-batches.ts, docs/decisions/0023-replica-batches.md);
 * each keeps its own change id, answer and rollback.
 *
 * Every request to a replica goes through `Replicator.send`: the one place
 * replica traffic can be authenticated.
 */
import { randomUUID } from 'node:crypto';
import type { OutgoingHttpHeaders } from 'node:http';
import { MasterClient } from '../../shared/client/master-client.ts';
import { KelpError, NotFoundError, UnavailableError, UpstreamError } from '../../shared/errors.ts';
import { FLAG_GZIP, type NeedleMeta } from '../../shared/needle.ts';
import { formatTtl } from '../../shared/ttl.ts';
import { type FileBody, type PeerResponse, peerRequest } from '../http/client.ts';
import type { Logger } from '../observability/log.ts';
import { requestIdHeader } from '../observability/request-id.ts';
import { clusterHeaders, EMPTY_SHA256, fileSha256Hex, sha256Hex } from '../security/cluster-auth.ts';
import {
  type BatchedResult,
  type BatchedWrite,
  encodeBatch,
  MAX_BATCHED_TEXT_CHARS,
  MAX_BATCHED_WRITE_BYTES,
  REPLICA_BATCH_URL,
} from './replica-batch.ts';
import { BatchNotUnderstood, ReplicaBatches } from './replica-batches.ts';
import { UndoLog } from './undo-log.ts';

/** Answers to a batch that mean "send these one by one": a replica from before batches, or one that refused its form. */
const BATCH_NOT_UNDERSTOOD = new Set([400, 404, 405]);
/** Seconds a lookup of replica locations is trusted. */
const LOCATIONS_TTL_MS = 5_000;
/** A master that does not answer a lookup in this long is passed over for the next. */
const LOOKUP_TIMEOUT_MS = 5_000;
/** A replica that does not answer in this long fails the write. */
const REPLICA_TIMEOUT_MS = 30_000;
/** An undo is small: a replica that does not answer it in this long is reported, not waited for. */
const UNDO_TIMEOUT_MS = 10_000;
const DECODER = new TextDecoder();

/** Puts the primary's own copy back as it was (Volume.restore); run when the fan-out failed. */
export type LocalRollback = () => Promise<void>;

export interface ReplicaWrite {
  /** The fid text as the client sent it (delta suffix included). */
  fid: string;
  /** The stored bytes: in memory, or a spooled upload streamed from its file to each replica. */
  data: Uint8Array | FileBody;
  meta: NeedleMeta;
  /** The client's token, forwarded as is (it is bound to the fid, not to a server). */
  token?: string;
  /** The client request's id, sent on to every replica (request-id.ts). */
  requestId?: string;
}

export interface ReplicaDelete {
  /** The fid text, as formatFid gives it. */
  fid: string;
  token?: string;
  requestId?: string;
}

/**
 * Told of each fan-out (metrics): requests sent to `peers` replicas, how many
 * failed, and where the change stayed when taking it back failed too.
 * `locate` is a fan-out that could not start (too few live copies, no master).
 */
export type ReplicationObserver = (
  op: 'write' | 'delete' | 'locate',
  peers: number,
  failed: number,
  kept: number,
) => void;

/** One replicated change as its undo needs it. */
interface Change {
  fid: string;
  token?: string;
  /** Sent as `change=` with the change and as `undo=` to take it back. */
  id: string;
  requestId?: string;
}

export class Replicator {
  private readonly masters: MasterClient;
  private readonly self: Set<string>;
  private readonly cache = new Map<number, { at: number; urls: string[] }>();
  private readonly log: Logger | undefined;
  private readonly observe: ReplicationObserver | undefined;
  /** This server's side as a replica: the changes it applied for a primary, so they can be undone. */
  readonly undoLog: UndoLog;

  /** Signs every request to a replica (replicas take `type=replicate` only from cluster members). */
  private readonly clusterKey: string | undefined;
  /** Small writes per replica, gathered while a request to it is out. */
  private readonly batches: ReplicaBatches;

  constructor(
    master: string | undefined,
    selfUrls: string[],
    log?: Logger,
    clusterKey?: string,
    observe?: ReplicationObserver,
    observeBatch?: (writes: number) => void,
  ) {
    this.masters = new MasterClient(master ?? '', { timeoutMs: LOOKUP_TIMEOUT_MS });
    this.self = new Set(selfUrls);
    this.log = log;
    this.observe = observe;
    this.undoLog = new UndoLog({ log });
    this.clusterKey = clusterKey;
    this.batches = new ReplicaBatches(
      (peer, writes, data) => this.sendBatch(peer, writes, data),
      observeBatch,
    );
  }

  /** The other replicas of a volume: every location the master knows, minus this server. */
  async peers(volumeId: number, copies: number): Promise<string[]> {
    const hit = this.cache.get(volumeId);
    let urls = hit && Date.now() - hit.at < LOCATIONS_TTL_MS ? hit.urls : undefined;
    if (!urls) {
      urls = await this.lookup(volumeId, copies);
      this.cache.set(volumeId, { at: Date.now(), urls });
    }
    if (urls.length < copies - 1) {
      this.cache.delete(volumeId);
      this.observe?.('locate', 0, 0, 0);
      throw new UnavailableError(
        `volume ${volumeId} needs ${copies} copies but only ${urls.length + 1} ${urls.length === 0 ? 'is' : 'are'} alive; not written everywhere`,
        5,
      );
    }
    return urls;
  }

  /**
   * The other replicas as the masters know them, asked in order: the first
   * that knows enough of them answers (a master that just started may not
   * have heard from every server yet, one that is down is skipped).
   */
  private async lookup(volumeId: number, copies: number): Promise<string[]> {
    if (this.masters.masters.length === 0) {
      this.observe?.('locate', 0, 0, 0);
      throw new UnavailableError(`volume ${volumeId} is replicated but no master is configured`);
    }
    const others = (urls: string[]) => urls.filter((u) => !this.self.has(u));
    try {
      const found = await this.masters.lookupVolume(volumeId, {
        enough: (l) => others(l.locations.map((loc) => loc.url)).length >= copies - 1,
      });
      return others(found.locations.map((l) => l.url));
    } catch (err) {
      // No master knows a live copy: too few are alive (peers() says so).
      if (err instanceof NotFoundError) return [];
      if (!(err instanceof KelpError)) throw err;
      this.observe?.('locate', 0, 0, 0);
      throw new UnavailableError(
        `cannot reach any master (${this.masters.masters.join(', ')}) to find replicas`,
        1,
        { cause: err },
      );
    }
  }

  /**
   * Every request to another replica, signed with the cluster key when there
   * is one (docs/decisions/0006-cluster-auth.md). A body streamed from a file
   * comes with its hash (`bodySha256`), computed once for all replicas.
   */
  private send(
    peer: string,
    pathAndQuery: string,
    init: {
      method: string;
      headers?: OutgoingHttpHeaders;
      body?: Uint8Array | FileBody;
      bodySha256?: string;
      requestId?: string;
      timeoutMs: number;
    },
  ): Promise<PeerResponse> {
    const { bodySha256, requestId, ...rest } = init;
    if (requestId) rest.headers = { ...rest.headers, ...requestIdHeader(requestId) };
    if (this.clusterKey) {
      const hash =
        bodySha256 ??
        (init.body === undefined
          ? EMPTY_SHA256
          : init.body instanceof Uint8Array
            ? sha256Hex(init.body)
            : undefined);
      if (hash === undefined) throw new Error('a file body sent to a replica needs its bodySha256');
      rest.headers = { ...rest.headers, ...clusterHeaders(this.clusterKey, init.method, pathAndQuery, hash) };
    }
    return peerRequest(`http://${peer}${pathAndQuery}`, rest);
  }

  /**
   * Sends a change the primary has applied to each of `peers`. If any fails,
   * the change is taken back everywhere (this server's copy by `rollback`,
   * each replica's by an undo request) before the failure is thrown, so the
   * client's error is the truth on every replica that can be reached.
   */
  private async fanOut(
    op: 'write' | 'delete',
    volumeId: number,
    peers: string[],
    change: Change,
    send: (peer: string) => Promise<number>,
    rollback: LocalRollback,
    local: Promise<unknown> = Promise.resolve(),
  ): Promise<void> {
    const [own, ...results] = await Promise.allSettled([local, ...peers.map(send)]);
    if (own!.status === 'rejected') {
      // This server did not take the change: nothing of it to roll back here, and no replica may keep it.
      await this.withdraw(op, volumeId, peers, change, own!.reason);
      throw own!.reason;
    }
    // Per peer: why it failed, or undefined when it acknowledged the change.
    const why = results.map((r) =>
      r.status === 'rejected'
        ? (r.reason as Error).message
        : r.value >= 200 && r.value < 300
          ? undefined
          : `HTTP ${r.value}`,
    );
    const failed = peers.flatMap((peer, i) => (why[i] === undefined ? [] : [`${peer}: ${why[i]}`]));
    if (!failed.length) {
      this.observe?.(op, peers.length, 0, 0);
      return;
    }
    this.cache.delete(volumeId);
    const acked = peers.filter((_, i) => why[i] === undefined);
    const kept = await this.takeBack(peers, acked, change, rollback);
    this.observe?.(op, peers.length, failed.length, kept.length);
    this.log?.warn(
      { op, volume: volumeId, fid: change.fid, change: change.id, reqId: change.requestId, failed, kept },
      `replicated ${op} of ${change.fid} failed on ${failed.length} of ${peers.length} replicas; ${kept.length ? 'could not be taken back everywhere' : 'taken back'}`,
    );
    throw new UpstreamError(
      `replication failed (${failed.join('; ')}); ` +
        (kept.length
          ? `the change could not be taken back on: ${kept.join('; ')}`
          : 'the change was taken back'),
    );
  }

  /**
   * The primary's own copy of a change failed while it was being sent: every
   * peer is asked to undo it (those that failed too, as in takeBack). The
   * local error is what the client hears; a replica that keeps the change is
   * logged and counted.
   */
  private async withdraw(
    op: 'write' | 'delete',
    volumeId: number,
    peers: string[],
    change: Change,
    reason: unknown,
  ): Promise<void> {
    const undone = await Promise.allSettled(peers.map((peer) => this.undo(peer, change)));
    const kept = peers.flatMap((peer, i) => {
      const r = undone[i]!;
      return r.status === 'rejected' ? [`${peer}: ${(r.reason as Error).message}`] : [];
    });
    this.observe?.(op, peers.length, 0, kept.length);
    for (const k of kept)
      this.log?.error(
        { change: change.id, fid: change.fid, reqId: change.requestId },
        `replicated change ${change.id} to ${change.fid} failed on this server and may be kept on ${k}`,
      );
    this.log?.warn(
      { op, volume: volumeId, fid: change.fid, change: change.id, reqId: change.requestId, kept },
      `${op} of ${change.fid} failed on this server (${(reason as Error).message}); withdrawn from ${peers.length - kept.length} of ${peers.length} replicas`,
    );
  }

  /**
   * Local rollback and an undo to every peer, at once. Peers that failed are
   * asked too: a replica that timed out may have applied the change after
   * all, or may still apply it (undo-log.ts then refuses it). Returns where
   * the change may remain: this server, or a peer that acknowledged it.
   * Peers that failed and cannot be reached for the undo either are not
   * listed: they never acknowledged the change (the decision record has the
   * window this leaves).
   */
  private async takeBack(
    peers: string[],
    acked: string[],
    change: Change,
    rollback: LocalRollback,
  ): Promise<string[]> {
    const [local, ...remote] = await Promise.allSettled([
      rollback(),
      ...peers.map((peer) => this.undo(peer, change)),
    ]);
    const kept: string[] = [];
    if (local!.status === 'rejected') kept.push(`this server: ${(local!.reason as Error).message}`);
    remote.forEach((r, i) => {
      if (r.status === 'fulfilled' || !acked.includes(peers[i]!)) return;
      kept.push(`${peers[i]}: ${(r.reason as Error).message}`);
    });
    for (const k of kept)
      this.log?.error(
        { change: change.id, fid: change.fid, reqId: change.requestId },
        `replicated change ${change.id} to ${change.fid} failed and is kept on ${k}`,
      );
    return kept;
  }

  /** Asks one replica to undo a change (undo-log.ts). Throws when it did not answer 2xx. */
  private async undo(peer: string, change: Change): Promise<void> {
    const q = new URLSearchParams({ type: 'replicate', undo: change.id });
    const headers: Record<string, string> = change.token ? { Authorization: `Bearer ${change.token}` } : {};
    const res = await this.send(peer, `/${change.fid}?${q}`, {
      method: 'DELETE',
      headers,
      requestId: change.requestId,
      timeoutMs: UNDO_TIMEOUT_MS,
    });
    if (res.status < 200 || res.status >= 300) {
      throw new Error(`undo answered HTTP ${res.status}: ${res.body.toString('utf8').slice(0, 200)}`);
    }
  }

  /**
   * Fans out a write the primary has appended, while its own copy becomes
   * durable: `local` settles when it has (or has failed), and `rollback` takes
   * that copy back. The replicas' round trip (their append and fsync) overlaps
   * the primary's fsync instead of following it, so a replicated write waits
   * for the slower of the two rather than their sum. `peers` as peers() gave
   * them before the write.
   *
   * Whatever fails, the client hears of it only once the change is taken back
   * (decision 0004): a failed replica rolls back the primary's copy and undoes
   * the others; a failed local write (a full disk, a failed fsync, a write the
   * volume refused) undoes the change on every replica and throws the local
   * error, as it would have without replicas.
   */
  async write(
    peers: string[],
    volumeId: number,
    w: ReplicaWrite,
    local: Promise<unknown>,
    rollback: LocalRollback,
  ): Promise<void> {
    const change: Change = { fid: w.fid, token: w.token, id: newChangeId(), requestId: w.requestId };
    const data = w.data;
    let send: (peer: string) => Promise<number>;
    const entry =
      data instanceof Uint8Array && data.length < MAX_BATCHED_WRITE_BYTES && batchedWrite(w, change.id);
    if (entry && data instanceof Uint8Array) {
      // Small writes to a busy replica wait and go together (replica-batches.ts).
      send = (peer) =>
        this.batches.add(peer, { entry, data, alone: () => this.sendWrite(peer, w, change.id) });
    } else {
      // A spooled body is hashed once for every replica's signature (an extra read of the spool file).
      const bodySha256 =
        this.clusterKey && !(data instanceof Uint8Array) ? await fileSha256Hex(data.path) : undefined;
      send = (peer) => this.sendWrite(peer, w, change.id, bodySha256);
    }
    await this.fanOut('write', volumeId, peers, change, send, rollback, local);
  }

  /** One write to one replica as a request of its own: `PUT /<fid>?type=replicate&change=<id>`. */
  private async sendWrite(
    peer: string,
    w: ReplicaWrite,
    changeId: string,
    bodySha256?: string,
  ): Promise<number> {
    const headers: Record<string, string> = { 'Content-Type': mimeOf(w.meta) || 'application/octet-stream' };
    if (w.meta.flags & FLAG_GZIP) headers['Content-Encoding'] = 'gzip';
    if (w.meta.name?.length) {
      headers['Content-Disposition'] =
        `attachment; filename*=UTF-8''${encodeURIComponent(DECODER.decode(w.meta.name))}`;
    }
    if (w.meta.pairs?.length) {
      for (const [k, v] of Object.entries(
        JSON.parse(DECODER.decode(w.meta.pairs)) as Record<string, string>,
      )) {
        headers[`Kelp-${k}`] = v;
      }
    }
    if (w.token) headers.Authorization = `Bearer ${w.token}`;
    const q = new URLSearchParams({ type: 'replicate', change: changeId });
    // No Content-Disposition stores an empty name: a record without one is said so.
    if (w.meta.name === undefined) q.set('noname', 'true');
    if (w.meta.lastModified !== undefined) q.set('ts', String(w.meta.lastModified));
    if (w.meta.ttl) q.set('ttl', formatTtl(w.meta.ttl));
    const res = await this.send(peer, `/${w.fid}?${q}`, {
      method: 'PUT',
      headers,
      body: w.data,
      bodySha256,
      requestId: w.requestId,
      timeoutMs: REPLICA_TIMEOUT_MS,
    });
    return res.status;
  }

  /** Several small writes to one replica in one request (replica-batch.ts), signed as one body. */
  private async sendBatch(
    peer: string,
    writes: BatchedWrite[],
    data: Uint8Array[],
  ): Promise<BatchedResult[]> {
    const res = await this.send(peer, REPLICA_BATCH_URL, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: encodeBatch(writes, data),
      timeoutMs: REPLICA_TIMEOUT_MS,
    });
    const why = () =>
      `batch of ${writes.length} answered HTTP ${res.status}: ${res.body.toString('utf8').slice(0, 200)}`;
    // A replica running code from before batches takes the path for a fid (400), or does not route it.
    if (BATCH_NOT_UNDERSTOOD.has(res.status)) throw new BatchNotUnderstood(why());
    if (res.status !== 200) throw new Error(why());
    return (JSON.parse(res.body.toString('utf8')) as { results: BatchedResult[] }).results;
  }

  /** Fans out a delete the primary applied; `peers` as peers() gave them before. */
  async delete(peers: string[], volumeId: number, d: ReplicaDelete, rollback: LocalRollback): Promise<void> {
    const headers: Record<string, string> = d.token ? { Authorization: `Bearer ${d.token}` } : {};
    const change: Change = { fid: d.fid, token: d.token, id: newChangeId(), requestId: d.requestId };
    const q = new URLSearchParams({ type: 'replicate', change: change.id });
    await this.fanOut(
      'delete',
      volumeId,
      peers,
      change,
      async (peer) => {
        const res = await this.send(peer, `/${d.fid}?${q}`, {
          method: 'DELETE',
          headers,
          requestId: d.requestId,
          timeoutMs: REPLICA_TIMEOUT_MS,
        });
        // Already gone there (e.g. a retried delete) is what we wanted.
        return res.status === 404 ? 204 : res.status;
      },
      rollback,
    );
  }
}

/**
 * Names one replicated change; unguessable, so it cannot be used to undo
 * another: a random UUID, 122 bits from the CSPRNG. randomUUID draws from a
 * buffered batch of random bytes, 0.2 µs a call where randomBytes(16) took
 * 2.5 µs (once per replicated write).
 */
function newChangeId(): string {
  return randomUUID();
}

/**
 * A write as a replica batch carries it: the stored data's meta as fields.
 * Undefined when its text is too long for a batch (it goes on its own).
 */
function batchedWrite(w: ReplicaWrite, changeId: string): BatchedWrite | undefined {
  const m = w.meta;
  const textBytes =
    (m.name?.length ?? 0) + (m.mime?.length ?? 0) + (m.pairs?.length ?? 0) + (w.token?.length ?? 0);
  // UTF-8 bytes bound the characters they decode to; the request id is at most MAX_REQUEST_ID_LENGTH.
  if (textBytes + (w.requestId?.length ?? 0) > MAX_BATCHED_TEXT_CHARS) return undefined;
  const entry: BatchedWrite = { fid: w.fid, change: changeId, size: (w.data as Uint8Array).length };
  if (m.flags & FLAG_GZIP) entry.gzip = true;
  if (m.lastModified !== undefined) entry.ts = m.lastModified;
  if (m.ttl) entry.ttl = formatTtl(m.ttl);
  // Present even when empty: an empty name or type is stored (flag and a zero length), an absent one is not,
  // and the replica's record must be the primary's byte for byte.
  if (m.mime !== undefined) entry.mime = DECODER.decode(m.mime);
  if (m.name !== undefined) entry.name = DECODER.decode(m.name);
  if (m.pairs?.length) entry.pairs = DECODER.decode(m.pairs);
  if (w.token) entry.token = w.token;
  if (w.requestId) entry.reqId = w.requestId;
  return entry;
}

function mimeOf(meta: NeedleMeta): string {
  return meta.mime?.length ? DECODER.decode(meta.mime) : '';
}
