/**
 * Volume growth: when a layout has no writable volume left (or all are
 * crowded), pick nodes that satisfy its replica placement and create new
 * volumes on them. "xyz" = x copies in other data centers, y in other racks of
 * the same data center, z on other nodes of the same rack (docs/format.md §7).
 */
import { VolumeClient } from '../../shared/client/volume-client.ts';
import { KelpError, NoSpaceError, UpstreamError } from '../../shared/errors.ts';
import { copyCount, type Placement, parsePlacement } from '../../shared/placement.ts';
import { withClusterAuth } from '../security/cluster-auth.ts';
import type { MasterStateStore } from './state-store.ts';
import type { DataNode, LayoutKey, NodeFilter, Topology } from './topology.ts';

/** Volumes grown at once per copy count (SeaweedFS: 7 for one copy, 6 for two, 3 for three). */
export function growthTarget(copies: number): number {
  if (copies === 1) return 7;
  if (copies === 2) return 6;
  if (copies === 3) return 3;
  return 1;
}

function shuffle<T>(xs: T[]): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

function groupBy<T>(xs: T[], key: (x: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const x of xs) m.set(key(x), [...(m.get(key(x)) ?? []), x]);
  return m;
}

/**
 * Nodes for one new volume: the first is the main copy; null when the
 * placement cannot be met with the free slots there are.
 */
export function planPlacement(
  candidates: DataNode[],
  placement: Placement,
  filter: NodeFilter,
  used: Map<DataNode, number> = new Map(),
): DataNode[] | null {
  const slots = (n: DataNode) => n.maxVolumeCount - n.volumes.size - (used.get(n) ?? 0);
  // Emptiest nodes first (ties at random), so growth spreads volumes and leaves room for replicas.
  const emptiest = (nodes: DataNode[]) => shuffle(nodes).sort((a, b) => slots(b) - slots(a));
  const free = candidates.filter((n) => slots(n) > 0);
  const byDc = groupBy(free, (n) => n.dataCenter);
  for (const [dc, dcNodes] of shuffle([...byDc])) {
    if (filter.dataCenter && dc !== filter.dataCenter) continue;
    const otherDcs = shuffle([...byDc.keys()].filter((d) => d !== dc));
    if (otherDcs.length < placement.diffDataCenter) continue;
    const byRack = groupBy(dcNodes, (n) => n.rack);
    for (const [rack, rackNodes] of shuffle([...byRack])) {
      if (filter.rack && rack !== filter.rack) continue;
      const mains = filter.dataNode
        ? rackNodes.filter((n) => n.url === filter.dataNode || n.publicUrl === filter.dataNode)
        : emptiest(rackNodes);
      const main = mains[0];
      if (!main) continue;
      const sameRack = emptiest(rackNodes.filter((n) => n !== main)).slice(0, placement.sameRack);
      if (sameRack.length < placement.sameRack) continue;
      const otherRacks = shuffle([...byRack.keys()].filter((r) => r !== rack)).slice(0, placement.diffRack);
      if (otherRacks.length < placement.diffRack) continue;
      const rackPicks = otherRacks.map((r) => emptiest(byRack.get(r)!)[0]!);
      const dcPicks = otherDcs.slice(0, placement.diffDataCenter).map((d) => emptiest(byDc.get(d)!)[0]!);
      return [main, ...sameRack, ...rackPicks, ...dcPicks];
    }
  }
  return null;
}

/** Asks a volume server to create a volume (its `/admin/assign_volume`). */
export type AllocateVolume = (node: DataNode, volumeId: number, layout: LayoutKey) => Promise<void>;

/** A volume server that does not create a volume in this long fails the growth. */
export const ALLOCATE_TIMEOUT_MS = 10_000;

/** `/admin/assign_volume` over HTTP, signed as a cluster member's call when a cluster key is set. */
export const allocateOverHttp = (clusterKey?: string): AllocateVolume => {
  const volumes = new VolumeClient({
    timeoutMs: ALLOCATE_TIMEOUT_MS,
    sign: (method, url, headers, body) => withClusterAuth(clusterKey, method, url, headers, body),
  });
  return async (node, volumeId, layout) => {
    const q = new URLSearchParams({
      volume: String(volumeId),
      collection: layout.collection,
      replication: layout.replication,
      ttl: layout.ttl,
    });
    try {
      await volumes.json(node.url, `/admin/assign_volume?${q}`, { method: 'POST' });
    } catch (err) {
      if (!(err instanceof KelpError)) throw err;
      throw new UpstreamError(`${node.url} refused volume ${volumeId}: ${err.message}`, { cause: err });
    }
  };
};

export class VolumeGrowth {
  private readonly topology: Topology;
  private readonly state: MasterStateStore;
  private readonly allocate: AllocateVolume;
  /** One growth at a time per layout: concurrent assigns wait for the same one. */
  private readonly inFlight = new Map<string, Promise<number[]>>();

  constructor(topology: Topology, state: MasterStateStore, allocate: AllocateVolume = allocateOverHttp()) {
    this.topology = topology;
    this.state = state;
    this.allocate = allocate;
  }

  /** Grows `count` volumes (default: the growth target), or as many as fit; NoSpaceError if none. */
  grow(layout: LayoutKey, filter: NodeFilter = {}, count?: number): Promise<number[]> {
    // An explicit count is part of the key: /vol/grow?count=2 must not be answered with an assign's growth.
    const key = `${layout.collection}|${layout.replication}|${layout.ttl}|${filter.dataCenter ?? ''}|${filter.rack ?? ''}|${filter.dataNode ?? ''}|${count ?? ''}`;
    const running = this.inFlight.get(key);
    if (running) return running;
    const p = this.growNow(layout, filter, count).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, p);
    return p;
  }

  /** Why growth found no place, in the operator's terms: every slot taken, or none where the placement needs. */
  private noSlotsMessage(layout: LayoutKey, filter: NodeFilter): string {
    const nodes = this.topology.aliveNodes();
    const free = nodes.reduce((sum, n) => sum + this.topology.freeSlots(n), 0);
    const used = nodes.reduce((sum, n) => sum + n.volumes.size, 0);
    const what = [
      layout.collection ? `collection "${layout.collection}"` : 'the default collection',
      `replication ${layout.replication}`,
      layout.ttl ? `TTL ${layout.ttl}` : '',
    ]
      .filter(Boolean)
      .join(', ');
    if (free === 0) {
      return (
        `every volume slot is in use (${used} volumes on ${nodes.length} volume servers), so no volume can be ` +
        `created for ${what}: each collection, replication and TTL needs volumes of its own. Add a volume ` +
        'server, raise its -max (0 follows free disk), or delete a collection (kelp admin collection.delete)'
      );
    }
    return (
      `no free volume slots meet replication "${layout.replication}"` +
      (filter.dataCenter ? ` in data center ${filter.dataCenter}` : '') +
      ` (${free} free slots on ${nodes.length} volume servers, but not in the data centers, racks and servers it needs)`
    );
  }

  private async nextVolumeId(): Promise<number> {
    const known = this.topology.maxVolumeId();
    // Saved before use: neither a restart nor the next leader hands out the same id again
    // (a shared store refuses the update to a master that no longer leads).
    const saved = await this.state.update((s) => ({
      ...s,
      maxVolumeId: Math.max(s.maxVolumeId, known) + 1,
    }));
    return saved.maxVolumeId;
  }

  private async growNow(layout: LayoutKey, filter: NodeFilter, count?: number): Promise<number[]> {
    const placement = parsePlacement(layout.replication);
    const target = count ?? growthTarget(copyCount(placement));
    const used = new Map<DataNode, number>();
    const plans: DataNode[][] = [];
    for (let i = 0; i < target; i++) {
      const plan = planPlacement(this.topology.aliveNodes(), placement, filter, used);
      if (!plan) break;
      for (const n of plan) used.set(n, (used.get(n) ?? 0) + 1);
      plans.push(plan);
    }
    if (plans.length === 0) throw new NoSpaceError(this.noSlotsMessage(layout, filter));
    const created: number[] = [];
    for (const plan of plans) {
      const id = await this.nextVolumeId();
      await Promise.all(plan.map((n) => this.allocate(n, id, layout)));
      for (const n of plan) {
        this.topology.addVolume(n.url, {
          id,
          collection: layout.collection,
          size: 8,
          fileCount: 0,
          deleteCount: 0,
          deletedByteCount: 0,
          readOnly: false,
          readsPerDay: 0,
          modifiedAt: Math.floor(Date.now() / 1000),
          replicaPlacement: layout.replication,
          ttl: layout.ttl,
          compactRevision: 0,
        });
      }
      created.push(id);
    }
    return created;
  }
}
