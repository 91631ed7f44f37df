/**
 * Replication fan-out (brief §5): the server that takes a write stores it,
 * then sends the same needle to every other replica of the volume with
 * `?type=replicate`, and answers success only when all of them have it.
 * Deletes go the same way. Replica locations come from the master's lookup,
 * cached briefly and dropped whenever a fan-out fails.
 */
import { UnavailableError, UpstreamError } from '../../shared/errors.ts';
import { FLAG_GZIP, type NeedleMeta } from '../../shared/needle.ts';
import { formatTtl } from '../../shared/ttl.ts';
import { type FileBody, peerRequest } from '../http/client.ts';
import {
  clusterHeaders,
  EMPTY_SHA256,
  fileSha256Hex,
  sha256Hex,
  signedPath,
} from '../security/cluster-auth.ts';

/** Seconds a lookup of replica locations is trusted. */
const LOCATIONS_TTL_MS = 5_000;
/** A replica that does not answer in this long fails the write. */
const REPLICA_TIMEOUT_MS = 30_000;
const DECODER = new TextDecoder();

export interface ReplicaWrite {
  /** The fid text as the client sent it (delta suffix included). */
  fid: string;
  /** The stored bytes: in memory, or a spooled upload streamed from its file to each replica. */
  data: Uint8Array | FileBody;
  meta: NeedleMeta;
  /** The client's token, forwarded as is (it is bound to the fid, not to a server). */
  token?: string;
}

export class Replicator {
  private readonly master: string | undefined;
  private readonly self: Set<string>;
  private readonly cache = new Map<number, { at: number; urls: string[] }>();

  private readonly clusterKey: string | undefined;

  constructor(master: string | undefined, selfUrls: string[], clusterKey?: string) {
    this.master = master;
    this.self = new Set(selfUrls);
    this.clusterKey = clusterKey;
  }

  /** A replica takes `type=replicate` only from a cluster member: every peer request is signed. */
  private signed(
    method: string,
    url: string,
    headers: Record<string, string>,
    bodyHash = EMPTY_SHA256,
  ): Record<string, string> {
    if (!this.clusterKey) return headers;
    return { ...headers, ...clusterHeaders(this.clusterKey, method, signedPath(url), bodyHash) };
  }

  /** The other replicas of a volume: every location the master knows, minus this server. */
  async peers(volumeId: number, copies: number): Promise<string[]> {
    const hit = this.cache.get(volumeId);
    let urls = hit && Date.now() - hit.at < LOCATIONS_TTL_MS ? hit.urls : undefined;
    if (!urls) {
      if (!this.master)
        throw new UnavailableError(`volume ${volumeId} is replicated but no master is configured`);
      const res = await fetch(`http://${this.master}/dir/lookup?volumeId=${volumeId}`, {
        signal: AbortSignal.timeout(5_000),
      }).catch((err: unknown) => {
        throw new UnavailableError(`cannot reach master ${this.master} to find replicas`, 1, { cause: err });
      });
      const body = res.ok ? ((await res.json()) as { locations: Array<{ url: string }> }) : { locations: [] };
      urls = body.locations.map((l) => l.url).filter((u) => !this.self.has(u));
      this.cache.set(volumeId, { at: Date.now(), urls });
    }
    if (urls.length < copies - 1) {
      this.cache.delete(volumeId);
      throw new UnavailableError(
        `volume ${volumeId} needs ${copies} copies but only ${urls.length + 1} are alive; not written everywhere`,
        5,
      );
    }
    return urls;
  }

  private async sendAll(
    volumeId: number,
    copies: number,
    send: (peer: string) => Promise<number>,
  ): Promise<void> {
    const peers = await this.peers(volumeId, copies);
    const results = await Promise.allSettled(peers.map(send));
    const failed = results.flatMap((r, i) =>
      r.status === 'rejected'
        ? [`${peers[i]}: ${(r.reason as Error).message}`]
        : r.value >= 200 && r.value < 300
          ? []
          : [`${peers[i]}: HTTP ${r.value}`],
    );
    if (failed.length) {
      this.cache.delete(volumeId);
      throw new UpstreamError(`replication failed (${failed.join('; ')})`);
    }
  }

  async write(volumeId: number, copies: number, w: ReplicaWrite): Promise<void> {
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
    const q = new URLSearchParams({ type: 'replicate' });
    if (w.meta.lastModified !== undefined) q.set('ts', String(w.meta.lastModified));
    if (w.meta.ttl) q.set('ttl', formatTtl(w.meta.ttl));
    // One hash of the body for every replica (a spooled body is read once more for it).
    const bodyHash =
      this.clusterKey === undefined
        ? undefined
        : w.data instanceof Uint8Array
          ? sha256Hex(w.data)
          : await fileSha256Hex(w.data.path);
    await this.sendAll(volumeId, copies, async (peer) => {
      const url = `http://${peer}/${w.fid}?${q}`;
      const res = await peerRequest(url, {
        method: 'PUT',
        headers: this.signed('PUT', url, headers, bodyHash),
        body: w.data,
        timeoutMs: REPLICA_TIMEOUT_MS,
      });
      return res.status;
    });
  }

  async delete(volumeId: number, copies: number, fid: string, token?: string): Promise<void> {
    const headers: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
    await this.sendAll(volumeId, copies, async (peer) => {
      const url = `http://${peer}/${fid}?type=replicate`;
      const res = await peerRequest(url, {
        method: 'DELETE',
        headers: this.signed('DELETE', url, headers),
        timeoutMs: REPLICA_TIMEOUT_MS,
      });
      // Already gone there (e.g. a retried delete) is what we wanted.
      return res.status === 404 ? 204 : res.status;
    });
  }
}

function mimeOf(meta: NeedleMeta): string {
  return meta.mime?.length ? DECODER.decode(meta.mime) : '';
}
