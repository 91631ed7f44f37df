/**
 * `/dir/assign`: pick a writable volume of the layout (growing one if there
 * is none, or all are crowded; concurrent assigns to the same servers share
 * one, sticky-picks.ts), take fresh keys from the sequencer, and hand out
 * `<vid>,<key><cookie>` with the location to upload to.
 */
import { randomInt } from 'node:crypto';
import type { AssignResponse } from '../../shared/api.ts';
import { parseCollection } from '../../shared/collection.ts';
import { InvalidParamError, NoSpaceError, UnavailableError } from '../../shared/errors.ts';
import { formatFid } from '../../shared/fid.ts';
import { formatPlacement, parsePlacement } from '../../shared/placement.ts';
import { formatTtl, parseTtl } from '../../shared/ttl.ts';
import { signFileToken } from '../security/jwt.ts';
import type { VolumeGrowth } from './growth.ts';
import type { Sequencer } from './sequencer.ts';
import type { StickyPicks } from './sticky-picks.ts';
import type { DataNode, LayoutKey, NodeFilter, Topology } from './topology.ts';

/** Most keys one assign may reserve. */
export const MAX_ASSIGN_COUNT = 10_000;

export interface AssignRequest {
  count: number;
  layout: LayoutKey;
  filter: NodeFilter;
}

export interface AssignContext {
  topology: Topology;
  sequencer: Sequencer;
  growth: VolumeGrowth;
  signingKey?: string;
  defaultReplication: string;
  /** Concurrent assigns to the same servers share a volume (sticky-picks.ts); none: every pick is fresh. */
  picks?: StickyPicks;
}

/**
 * SeaweedFS's `disk` parameter (a disk type: `hdd`, `ssd`, or a custom tag):
 * Kelp has one kind of disk, SeaweedFS's default, so `hdd` or none is taken
 * and any other is refused rather than quietly placed on the wrong kind.
 */
export function assertDiskType(q: URLSearchParams): void {
  const disk = q.get('disk');
  if (disk && disk !== 'hdd') {
    throw new InvalidParamError(`disk type "${disk}" is not supported: Kelp has one kind of disk (hdd)`);
  }
}

export function parseAssignRequest(q: URLSearchParams, defaultReplication: string): AssignRequest {
  assertDiskType(q);
  const countRaw = q.get('count') ?? '1';
  const count = Number(countRaw);
  if (!/^\d+$/.test(countRaw) || count < 1 || count > MAX_ASSIGN_COUNT) {
    throw new InvalidParamError(`count must be 1..${MAX_ASSIGN_COUNT}`);
  }
  return {
    count,
    layout: {
      collection: parseCollection(q.get('collection')),
      replication: formatPlacement(parsePlacement(q.get('replication') || defaultReplication)),
      ttl: formatTtl(parseTtl(q.get('ttl') ?? '')),
    },
    filter: parseNodeFilter(q),
  };
}

/** Where a volume may go or be picked from: `dataCenter`, `rack`, `dataNode` (assign and grow). */
export function parseNodeFilter(q: URLSearchParams): NodeFilter {
  const filter: NodeFilter = {};
  for (const k of ['dataCenter', 'rack', 'dataNode'] as const) {
    const v = q.get(k);
    if (v) filter[k] = v;
  }
  return filter;
}

/** A volume at random, weighted by the room it has left (docs/format.md §7). */
function pickWeighted(vols: Array<{ id: number; size: number }>, limit: number): number {
  const weights = vols.map((v) => Math.max(1, limit - v.size));
  let r = Math.random() * weights.reduce((a, b) => a + b, 0);
  for (let i = 0; i < vols.length; i++) {
    r -= weights[i]!;
    if (r <= 0) return vols[i]!.id;
  }
  return vols[vols.length - 1]!.id;
}

/** The layout and the servers holding a volume, as sticky-picks.ts remembers picks by. */
function stickyKey(layout: LayoutKey, holders: DataNode[]): string {
  const urls = holders.map((n) => n.url);
  if (urls.length > 1) urls.sort();
  return `${layout.collection}|${layout.replication}|${layout.ttl}|${urls.join(',')}`;
}

export async function assign(ctx: AssignContext, req: AssignRequest): Promise<AssignResponse> {
  const { topology } = ctx;
  if (topology.aliveNodes().length === 0) {
    // Warming up, or every volume server is down: worth retrying, unlike a full cluster (406).
    throw new UnavailableError(
      'no volume server has joined this master yet; retry shortly',
      topology.pulseSeconds,
    );
  }
  if (req.filter.dataCenter && !topology.aliveNodes().some((n) => n.dataCenter === req.filter.dataCenter)) {
    throw new InvalidParamError(`unknown data center ${req.filter.dataCenter}`);
  }
  let vols = topology.writable(req.layout, req.filter);
  if (vols.length === 0 || vols.every((v) => v.crowded)) {
    try {
      await ctx.growth.grow(req.layout, req.filter);
    } catch (err) {
      // Crowded volumes still take writes; only an empty layout makes growth failure fatal.
      if (!(err instanceof NoSpaceError) || vols.length === 0) throw err;
    }
    vols = topology.writable(req.layout, req.filter);
  }
  if (vols.length === 0) throw new UnavailableError('no writable volume yet; retry shortly', 1);
  const picked = pickWeighted(vols, topology.volumeSizeLimit);
  const volumeId = ctx.picks
    ? ctx.picks.choose(stickyKey(req.layout, topology.holders(picked)), picked, vols)
    : picked;
  const holders = topology.holders(volumeId);
  const filtered = holders.filter((n) => topology.aliveNodes(req.filter).includes(n));
  const pool = filtered.length ? filtered : holders;
  const node = pool[randomInt(pool.length)]!;
  const key = await ctx.sequencer.take(req.count);
  const fid = formatFid({ volumeId, key, cookie: randomInt(0, 2 ** 32) >>> 0 });
  topology.noteAssigned(volumeId);
  const out: AssignResponse = { fid, url: node.url, publicUrl: node.publicUrl, count: req.count };
  if (ctx.signingKey) out.auth = await signFileToken(ctx.signingKey, fid, { count: req.count });
  return out;
}
