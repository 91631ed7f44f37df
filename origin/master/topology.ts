/**
 * The master's picture of the cluster, built only from heartbeats: data
 * centers → racks → nodes → volumes. A node that misses three pulses is dead:
 * it drops out of lookups and its volumes stop being writable (a volume is
 * writable only while every copy its placement asks for is alive).
 */
import type { HeartbeatRequest, HeartbeatVolume, Location, TierLocation } from '../../shared/api.ts';
import { BadRequestError } from '../../shared/errors.ts';
import { copyCount, parsePlacement } from '../../shared/placement.ts';
import { MAX_VOLUMES_PER_NODE } from './heartbeat-schema.ts';

/** Pulses a node may miss before it counts as dead (docs/format.md §7). */
export const MISSED_PULSES_DEAD = 3;
/** Above this fraction of the size limit a volume is "crowded": growth starts before it fills. */
export const CROWDED_FRACTION = 0.9;
/** What an assign adds to a volume's size estimate until the next heartbeat (docs/format.md §7). */
export const ASSIGN_SIZE_ESTIMATE = 1024 * 1024;

export interface DataNode {
  url: string;
  publicUrl: string;
  dataCenter: string;
  rack: string;
  maxVolumeCount: number;
  volumes: Map<number, HeartbeatVolume>;
  lastSeen: number;
}

export interface LayoutKey {
  collection: string;
  replication: string;
  ttl: string;
}

export interface NodeFilter {
  dataCenter?: string;
  rack?: string;
  dataNode?: string;
}

/** A volume growth created on a node, until the node's beats have had time to report it. */
interface Unreported {
  v: HeartbeatVolume;
  at: number;
  /** In the node's map only on growth's word: its last full list did not have it. */
  unconfirmed: boolean;
}

/** One string per layout, for the open-volume index. */
function layoutKeyOf(collection: string, replication: string, ttl: string): string {
  return `${collection}\u0000${replication}\u0000${ttl}`;
}

export class Topology {
  readonly nodes = new Map<string, DataNode>();
  pulseSeconds: number;
  volumeSizeLimit: number;
  private readonly now: () => number;
  /** Bytes assigned to a volume since its last reported size. */
  private readonly pending = new Map<number, number>();
  /**
   * Volumes growth created on a node (by url) that the node's heartbeats have
   * not reported yet: a beat built just before the volume existed must not
   * hide it (lookups would miss a replica, writes would fail for want of copies).
   */
  private readonly unreported = new Map<string, Map<number, Unreported>>();
  /**
   * Urls of the nodes that hold each volume, kept with every change to a
   * node's volumes: a lookup reads its holders here, O(copies), instead of
   * scanning every node (up to MAX_NODES) three times. Checked against the
   * node on use, so an entry left by a node dropped from `nodes` is harmless.
   */
  readonly #holderUrls = new Map<number, Set<string>>();
  /**
   * The volumes of each layout that may take writes: some copy reports it
   * neither read-only nor on a full disk (a volume server marks a volume
   * read-only when it reaches the size limit, so full volumes leave it). Kept with every change to a volume's
   * copies, O(copies), so an assign looks at these instead of scanning every
   * volume of every node: with 10^4 volumes that scan was 4.6 ms of CPU per
   * assign. What changes with time alone (a node's liveness, the sizes
   * assigned since its last beat) is still checked per assign.
   */
  readonly #open = new Map<string, Set<number>>();
  /** Each indexed volume's layout, and its key in `#open`. */
  readonly #layoutOf = new Map<number, LayoutKey & { key: string }>();

  constructor(opts: { pulseSeconds: number; volumeSizeLimit: number; now: () => number }) {
    this.pulseSeconds = opts.pulseSeconds;
    this.volumeSizeLimit = opts.volumeSizeLimit;
    this.now = opts.now;
  }

  /**
   * Records a heartbeat; returns the ids of volumes this node did not report
   * before. A delta (`deltaOf`) is applied to the node as known: the caller
   * checked that it is known and that the delta is relative to this master's
   * session.
   */
  heartbeat(hb: HeartbeatRequest): number[] {
    const known = this.nodes.get(hb.url);
    if (hb.deltaOf !== undefined && known) return this.#applyDelta(known, hb);
    const before = new Set(known?.volumes.keys() ?? []);
    const node: DataNode = {
      url: hb.url,
      publicUrl: hb.publicUrl || hb.url,
      dataCenter: hb.dataCenter || 'DefaultDataCenter',
      rack: hb.rack || 'DefaultRack',
      maxVolumeCount: hb.maxVolumeCount,
      volumes: new Map(hb.volumes.map((v) => [v.id, v])),
      lastSeen: this.now(),
    };
    const fresh = this.unreported.get(hb.url);
    for (const [id, entry] of fresh ?? []) {
      // Kept for a few pulses even once reported: a slow beat from before may still arrive.
      if (this.#expired(entry)) fresh!.delete(id);
      else if (!node.volumes.has(id)) {
        node.volumes.set(id, entry.v);
        entry.unconfirmed = true;
      } else entry.unconfirmed = false;
    }
    if (fresh?.size === 0) this.unreported.delete(hb.url);
    this.nodes.set(hb.url, node);
    for (const id of before) if (!node.volumes.has(id)) this.#unindex(id, hb.url);
    for (const id of node.volumes.keys()) {
      if (!before.has(id)) this.#index(id, hb.url);
      else this.#refresh(id);
    }
    for (const v of hb.volumes) this.pending.delete(v.id);
    return hb.volumes.map((v) => v.id).filter((id) => !before.has(id));
  }

  /**
   * A delta on the node as this master knows it: O(volumes in the delta),
   * where a full list rebuilds the node's map. Volumes growth created and the
   * node has not reported yet stay as they are (a full list, at most
   * FULL_BEAT_EVERY pulses away, settles them).
   */
  #applyDelta(node: DataNode, hb: HeartbeatRequest): number[] {
    const deleted = hb.deletedVolumes ?? [];
    let grows = 0;
    for (const v of hb.volumes) if (!node.volumes.has(v.id)) grows++;
    for (const id of deleted) if (node.volumes.has(id)) grows--;
    // Checked before any change: a delta cannot grow a node past what a full list may hold.
    if (node.volumes.size + grows > MAX_VOLUMES_PER_NODE) {
      throw new BadRequestError(`malformed heartbeat: more than ${MAX_VOLUMES_PER_NODE} volumes`);
    }
    const fresh: number[] = [];
    for (const v of hb.volumes) {
      if (!node.volumes.has(v.id)) fresh.push(v.id);
      node.volumes.set(v.id, v);
      this.#index(v.id, node.url);
    }
    for (const id of deleted) {
      node.volumes.delete(id);
      this.#unindex(id, node.url);
      this.unreported.get(hb.url)?.delete(id);
    }
    // Deltas expire growth's entries too, else a volume only growth vouched for (the node, restarted or
    // moved off it, never reported it) would stay in lookups until the next full list.
    const waiting = this.unreported.get(hb.url);
    for (const [id, entry] of waiting ?? []) {
      if (hb.volumes.some((v) => v.id === id)) entry.unconfirmed = false;
      if (!this.#expired(entry)) continue;
      waiting!.delete(id);
      if (entry.unconfirmed) {
        node.volumes.delete(id);
        this.#unindex(id, node.url);
      }
    }
    if (waiting?.size === 0) this.unreported.delete(hb.url);
    node.publicUrl = hb.publicUrl || hb.url;
    node.dataCenter = hb.dataCenter || 'DefaultDataCenter';
    node.rack = hb.rack || 'DefaultRack';
    node.maxVolumeCount = hb.maxVolumeCount;
    node.lastSeen = this.now();
    // Sizes the node did not resend are unchanged since its last beat: current as of now.
    for (const id of this.pending.keys()) if (node.volumes.has(id)) this.pending.delete(id);
    return fresh;
  }

  /** A volume the master just created on the node: known at once, before the node's next heartbeat. */
  addVolume(url: string, v: HeartbeatVolume): void {
    const node = this.nodes.get(url);
    if (node) {
      node.volumes.set(v.id, v);
      this.#index(v.id, url);
    }
    const fresh = this.unreported.get(url) ?? new Map<number, Unreported>();
    fresh.set(v.id, { v, at: this.now(), unconfirmed: false });
    this.unreported.set(url, fresh);
  }

  /** Forgets volumes deleted at the master's request (they must not linger as "unreported"). */
  removeVolume(url: string, volumeId: number): void {
    this.nodes.get(url)?.volumes.delete(volumeId);
    this.#unindex(volumeId, url);
    this.unreported.get(url)?.delete(volumeId);
  }

  #expired(entry: Unreported): boolean {
    return this.now() - entry.at > MISSED_PULSES_DEAD * this.pulseSeconds * 1000;
  }

  isAlive(node: DataNode): boolean {
    return this.now() - node.lastSeen <= MISSED_PULSES_DEAD * this.pulseSeconds * 1000;
  }

  aliveNodes(filter: NodeFilter = {}): DataNode[] {
    return [...this.nodes.values()].filter(
      (n) =>
        this.isAlive(n) &&
        (!filter.dataCenter || n.dataCenter === filter.dataCenter) &&
        (!filter.rack || n.rack === filter.rack) &&
        (!filter.dataNode || n.url === filter.dataNode || n.publicUrl === filter.dataNode),
    );
  }

  freeSlots(node: DataNode): number {
    return Math.max(0, node.maxVolumeCount - node.volumes.size);
  }

  /** Forgets a node (it left, or was dead too long) and its volumes. */
  removeNode(url: string): boolean {
    const node = this.nodes.get(url);
    if (!node) return false;
    this.nodes.delete(url);
    for (const id of node.volumes.keys()) this.#unindex(id, url);
    return true;
  }

  #index(volumeId: number, url: string): void {
    const urls = this.#holderUrls.get(volumeId);
    if (urls) urls.add(url);
    else this.#holderUrls.set(volumeId, new Set([url]));
    this.#refresh(volumeId);
  }

  #unindex(volumeId: number, url: string): void {
    const urls = this.#holderUrls.get(volumeId);
    if (urls?.delete(url) && urls.size === 0) this.#holderUrls.delete(volumeId);
    this.#refresh(volumeId);
  }

  /** Puts the volume in its layout's open set, or takes it out, as its copies now report it. */
  #refresh(volumeId: number): void {
    let first: HeartbeatVolume | undefined;
    // Open while any copy takes writes: whether the others count depends on their liveness,
    // which only writable() can tell (a dead node's read-only copy does not close a volume).
    let open = false;
    for (const url of this.#holderUrls.get(volumeId) ?? []) {
      const v = this.nodes.get(url)?.volumes.get(volumeId);
      if (v === undefined) continue;
      first ??= v;
      if (!(v.readOnly || v.full)) {
        open = true;
        break;
      }
    }
    let layout = this.#layoutOf.get(volumeId);
    // Every beat refreshes every volume it lists: the layout's key is built only when it is new.
    if (
      layout !== undefined &&
      (first === undefined ||
        layout.collection !== first.collection ||
        layout.replication !== first.replicaPlacement ||
        layout.ttl !== first.ttl)
    ) {
      this.#open.get(layout.key)?.delete(volumeId);
      this.#layoutOf.delete(volumeId);
      layout = undefined;
    }
    if (first === undefined) return;
    if (layout === undefined) {
      const { collection, replicaPlacement: replication, ttl } = first;
      layout = { key: layoutKeyOf(collection, replication, ttl), collection, replication, ttl };
      this.#layoutOf.set(volumeId, layout);
    }
    const ids = this.#open.get(layout.key);
    if (!open) ids?.delete(volumeId);
    else if (ids) ids.add(volumeId);
    else this.#open.set(layout.key, new Set([volumeId]));
  }

  /** Alive nodes holding the volume: O(copies), from the index. */
  holders(volumeId: number): DataNode[] {
    const out: DataNode[] = [];
    for (const url of this.#holderUrls.get(volumeId) ?? []) {
      const n = this.nodes.get(url);
      if (n !== undefined && this.isAlive(n) && n.volumes.has(volumeId)) out.push(n);
    }
    return out;
  }

  locations(volumeId: number): Location[] {
    return this.holders(volumeId).map((n) => ({
      url: n.url,
      publicUrl: n.publicUrl,
      dataCenter: n.dataCenter,
    }));
  }

  /**
   * Where a tiered volume's bytes are in its bucket, as an alive holder
   * reports it (docs/decisions/0010-origin-free-reads.md). Replicas share one
   * object; when they do not (each uploaded its own), any is as good.
   */
  tierLocation(volumeId: number): TierLocation | undefined {
    for (const n of this.holders(volumeId)) {
      const t = n.volumes.get(volumeId)?.tier;
      if (t) return t;
    }
    return undefined;
  }

  /** The volume as any alive holder reports it. */
  volume(volumeId: number): HeartbeatVolume | undefined {
    for (const n of this.holders(volumeId)) {
      const v = n.volumes.get(volumeId);
      if (v) return v;
    }
    return undefined;
  }

  maxVolumeId(): number {
    let max = 0;
    for (const n of this.nodes.values()) for (const id of n.volumes.keys()) if (id > max) max = id;
    return max;
  }

  /** Adds an assign's expected bytes to the volume's size until the next heartbeat says otherwise. */
  noteAssigned(volumeId: number, bytes = ASSIGN_SIZE_ESTIMATE): void {
    this.pending.set(volumeId, (this.pending.get(volumeId) ?? 0) + bytes);
  }

  /**
   * Volumes of the layout that take writes now: every copy alive, none
   * read-only or on a full disk, under the size limit (counting assigns since the last beat),
   * and, with a filter, held by a node that matches it.
   */
  writable(
    layout: LayoutKey,
    filter: NodeFilter = {},
  ): Array<{ id: number; size: number; crowded: boolean }> {
    const out: Array<{ id: number; size: number; crowded: boolean }> = [];
    const ids = this.#open.get(layoutKeyOf(layout.collection, layout.replication, layout.ttl));
    if (ids === undefined) return out;
    const copies = copyCount(parsePlacement(layout.replication));
    const filtered = filter.dataCenter || filter.rack || filter.dataNode;
    const allowed = filtered ? new Set(this.aliveNodes(filter)) : undefined;
    for (const id of ids) {
      let largest: HeartbeatVolume | undefined;
      let alive = 0;
      let blocked = false;
      let matches = !filtered;
      for (const n of this.holders(id)) {
        const v = n.volumes.get(id)!;
        if (
          v.collection !== layout.collection ||
          v.replicaPlacement !== layout.replication ||
          v.ttl !== layout.ttl
        )
          continue;
        alive++;
        if (v.readOnly || v.full) blocked = true;
        if (largest === undefined || v.size > largest.size) largest = v;
        if (allowed?.has(n)) matches = true;
      }
      if (largest === undefined || blocked || !matches || alive < copies) continue;
      const size = largest.size + (this.pending.get(id) ?? 0);
      if (size >= this.volumeSizeLimit) continue;
      out.push({ id, size, crowded: size >= this.volumeSizeLimit * CROWDED_FRACTION });
    }
    return out;
  }

  /** Forget nodes dead for a long time (their volumes are long out of lookups already). */
  prune(forgetAfterPulses = 100): void {
    const limit = forgetAfterPulses * this.pulseSeconds * 1000;
    for (const [url, n] of this.nodes) if (this.now() - n.lastSeen > limit) this.removeNode(url);
  }
}
