/**
 * The cluster as the admin operations see it, and the calls they make to
 * volume servers. The same operations run in two places
 * (docs/admin.md): in the master, behind its authenticated `/vol/*`
 * endpoints and its vacuum schedule, with the topology it holds and calls
 * signed with the cluster key; and in `kelp admin ...`, with the master's
 * `/vol/list` and calls carrying the admin key (or the cluster signature).
 * Only the view and the credentials differ.
 */
import type {
  HeartbeatVolume,
  VacuumReport,
  VolumeServerStatus,
  VolumeStatusJson,
} from '../../shared/api.ts';
import { type AuthHeaders, signWith } from '../../shared/client/http.ts';
import { VolumeClient } from '../../shared/client/volume-client.ts';
import { KelpError, UpstreamError } from '../../shared/errors.ts';
import type { Topology } from '../master/topology.ts';
import type { CopyReport, VolumeSnapshot } from '../volume/volume-move.ts';

/** Bound on the small calls. */
export const CALL_TIMEOUT_MS = 30_000;
/** Bound on the calls that copy or compact a whole volume. */
export const LONG_CALL_TIMEOUT_MS = 60 * 60_000;

export interface AdminNode {
  url: string;
  publicUrl: string;
  dataCenter: string;
  rack: string;
  maxVolumeCount: number;
  alive: boolean;
  /** Seconds since its last heartbeat. */
  lastSeenSecondsAgo: number;
  volumes: HeartbeatVolume[];
}

/** `GET /vol/list` on the master (`kelp admin volume.list`). */
export interface ClusterView {
  volumeSizeLimit: number;
  nodes: AdminNode[];
}

export function clusterViewOf(topology: Topology, now = Date.now()): ClusterView {
  const nodes = [...topology.nodes.values()]
    .map((n) => ({
      url: n.url,
      publicUrl: n.publicUrl,
      dataCenter: n.dataCenter,
      rack: n.rack,
      maxVolumeCount: n.maxVolumeCount,
      alive: topology.isAlive(n),
      lastSeenSecondsAgo: Math.max(0, Math.round((now - n.lastSeen) / 1000)),
      volumes: [...n.volumes.values()].sort((a, b) => a.id - b.id),
    }))
    .sort(
      (a, b) =>
        a.dataCenter.localeCompare(b.dataCenter) ||
        a.rack.localeCompare(b.rack) ||
        a.url.localeCompare(b.url),
    );
  return { volumeSizeLimit: topology.volumeSizeLimit, nodes };
}

/** Each volume id with the alive nodes holding it. */
export function holdersById(view: ClusterView): Map<number, { node: AdminNode; v: HeartbeatVolume }[]> {
  const out = new Map<number, { node: AdminNode; v: HeartbeatVolume }[]>();
  for (const node of view.nodes) {
    if (!node.alive) continue;
    for (const v of node.volumes) out.set(v.id, [...(out.get(v.id) ?? []), { node, v }]);
  }
  return new Map([...out].sort((a, b) => a[0] - b[0]));
}

/** The credentials of one call (the cluster signature, or the admin key). */
export type { AuthHeaders };

/** One volume as a volume server's `/status` lists it. */
export type ServerVolume = VolumeStatusJson;

/** Calls to volume servers' admin endpoints; every failure an UpstreamError naming the call. */
export class VolumeServerClient {
  private readonly client: VolumeClient;

  constructor(auth: AuthHeaders) {
    this.client = new VolumeClient({
      timeoutMs: CALL_TIMEOUT_MS,
      sign: signWith(auth),
    });
  }

  /** One call through the shared client; its failure (no answer, or the server's error as `cause`) an UpstreamError. */
  private async call<T>(
    server: string,
    method: string,
    pathAndQuery: string,
    timeoutMs = CALL_TIMEOUT_MS,
  ): Promise<T> {
    try {
      return await this.client.json<T>(server, pathAndQuery, { method, timeoutMs });
    } catch (err) {
      if (!(err instanceof KelpError)) throw err;
      throw new UpstreamError(err.message, { cause: err });
    }
  }

  /** The server's volumes, live (fresher than the master's heartbeat copy). */
  async volumes(server: string): Promise<ServerVolume[]> {
    return (await this.call<VolumeServerStatus>(server, 'GET', '/status')).Volumes;
  }

  vacuum(server: string, volumeId: number, garbageThreshold: number): Promise<VacuumReport> {
    const q = new URLSearchParams({ volume: String(volumeId), garbageThreshold: String(garbageThreshold) });
    return this.call(server, 'POST', `/admin/vacuum?${q}`, LONG_CALL_TIMEOUT_MS);
  }

  async mark(server: string, volumeId: number, readOnly: boolean): Promise<void> {
    await this.call(server, 'POST', `/admin/${readOnly ? 'readonly' : 'writable'}?volume=${volumeId}`);
  }

  freeze(server: string, volumeId: number, peer: string, mode: 'move' | 'copy'): Promise<VolumeSnapshot> {
    const q = new URLSearchParams({ volume: String(volumeId), peer, mode });
    return this.call(server, 'POST', `/admin/volume/freeze?${q}`);
  }

  async unfreeze(server: string, volumeId: number): Promise<void> {
    await this.call(server, 'POST', `/admin/volume/unfreeze?volume=${volumeId}`);
  }

  copy(target: string, volumeId: number, source: string, mode: 'move' | 'copy'): Promise<CopyReport> {
    const q = new URLSearchParams({ volume: String(volumeId), source, mode });
    return this.call(target, 'POST', `/admin/volume/copy?${q}`, LONG_CALL_TIMEOUT_MS);
  }

  async mount(target: string, volumeId: number, source: string): Promise<void> {
    const q = new URLSearchParams({ volume: String(volumeId), source });
    await this.call(target, 'POST', `/admin/volume/mount?${q}`);
  }

  async finish(target: string, volumeId: number): Promise<void> {
    await this.call(target, 'POST', `/admin/volume/finish?volume=${volumeId}`);
  }

  async deleteVolume(
    server: string,
    volumeId: number,
    why: { movedTo: string } | { extra: true } | { abortArrival: true },
  ): Promise<void> {
    const q = new URLSearchParams({ volume: String(volumeId) });
    if ('movedTo' in why) q.set('movedTo', why.movedTo);
    else if ('extra' in why) q.set('extra', 'true');
    else q.set('abortArrival', 'true');
    await this.call(server, 'POST', `/admin/volume/delete?${q}`);
  }
}
