/**
 * The master's status page at `/` (as SeaweedFS's master serves one): the
 * cluster, its data centers, racks and servers with their free slots, every
 * volume with its state, size, garbage, read heat and tier location, the
 * collections, the tier transfers running on the volume servers, and the
 * vacuum schedule. `/ui/fragments.json` gives the same sections for the
 * page's refresh (origin/http/html.ts). Nothing secret is shown.
 */
import type { ServerResponse } from 'node:http';
import type { HeartbeatVolume, TierJob } from '../../shared/api.ts';
import { VolumeClient } from '../../shared/client/volume-client.ts';
import { type ClusterView, clusterViewOf, holdersById } from '../admin/cluster.ts';
import type { VacuumSchedule } from '../admin/vacuum-schedule.ts';
import {
  bytes,
  esc,
  fragmentsOf,
  newNonce,
  renderPage,
  type Section,
  sendHtml,
  table,
} from '../http/html.ts';
import { sendJson } from '../http/respond.ts';
import { KELP_VERSION_STRING } from '../version.ts';
import type { EdgeHeat } from './edge-heat.ts';
import type { Topology } from './topology.ts';

/** Bound on asking one volume server for its tier transfers while rendering. */
const TIER_STATUS_TIMEOUT_MS = 1_000;
const TIER_STATUS_CLIENT = new VolumeClient({ timeoutMs: TIER_STATUS_TIMEOUT_MS });

function num(v: unknown): string {
  return `<span class="num">${esc(v)}</span>`;
}

function state(text: string, cls = text.split(' ')[0]): string {
  return `<span class="state-${esc(cls)}">${esc(text)}</span>`;
}

/** A volume's state over its copies: a move first, then tiered, full, sealed, writable. */
export function clusterVolumeState(copies: HeartbeatVolume[]): string {
  const moving =
    copies.find((v) => v.moving?.role === 'source')?.moving ?? copies.find((v) => v.moving)?.moving;
  if (moving) return moving.role === 'source' ? `moving to ${moving.peer}` : `arriving from ${moving.peer}`;
  if (copies.some((v) => v.remote)) return 'tiered';
  if (copies.some((v) => v.full)) return 'full';
  return copies.some((v) => v.readOnly) ? 'sealed' : 'writable';
}

export class MasterStatusPage {
  private readonly topology: Topology;
  /** Reads the edge answered without an origin (edge-heat.ts), shown beside the volume servers' own. */
  private readonly edgeHeat: EdgeHeat | undefined;
  private readonly self: () => string;
  private readonly schedule: VacuumSchedule;

  constructor(topology: Topology, self: () => string, schedule: VacuumSchedule, edgeHeat?: EdgeHeat) {
    this.edgeHeat = edgeHeat;
    this.topology = topology;
    this.self = self;
    this.schedule = schedule;
  }

  private async tierJobs(view: ClusterView): Promise<Array<{ server: string; job: TierJob }>> {
    const alive = view.nodes.filter((n) => n.alive);
    const all = await Promise.all(
      alive.map(async (n) => {
        try {
          const body = await TIER_STATUS_CLIENT.tierStatus(n.url);
          return (body.jobs ?? []).map((job) => ({ server: n.url, job }));
        } catch {
          // A server that does not answer in time shows no transfer: the page is not held up by it.
          return [];
        }
      }),
    );
    return all.flat();
  }

  async sections(): Promise<Section[]> {
    const view = clusterViewOf(this.topology);
    const holders = holdersById(view);
    const alive = view.nodes.filter((n) => n.alive);
    const slots = alive.reduce((a, n) => a + n.maxVolumeCount, 0);
    const used = alive.reduce((a, n) => a + n.volumes.length, 0);
    const s = this.schedule;
    const vacuum =
      s.intervalMs > 0
        ? `every ${Math.round(s.intervalMs / 60_000)} min at garbage ≥ ${s.garbageThreshold}` +
          (s.last
            ? `; last run ${s.last.startedAt}: ${s.last.compacted} compacted, ${s.last.failed} failed`
            : '') +
          (s.nextAt ? `; next ${new Date(s.nextAt).toISOString()}` : '')
        : 'off';
    const summary = table(
      'cluster',
      [
        'Leader',
        'Volume servers',
        'Volumes',
        'Slots used / total',
        'Free slots',
        'Volume size limit',
        'Vacuum',
      ],
      [
        [
          esc(this.self()),
          num(`${alive.length} alive / ${view.nodes.length}`),
          num(holders.size),
          num(`${used} / ${slots}`),
          num(Math.max(0, slots - used)),
          num(bytes(view.volumeSizeLimit)),
          esc(vacuum),
        ],
      ],
      '',
    );
    const nodes = table(
      'nodes',
      ['Data center', 'Rack', 'Server', 'State', 'Volumes / slots', 'Free slots', 'Last heartbeat'],
      view.nodes.map((n) => [
        esc(n.dataCenter),
        esc(n.rack),
        `<a href="http://${esc(n.publicUrl.replace(/^https?:\/\//, ''))}/ui/index.html">${esc(n.url)}</a>`,
        state(n.alive ? 'alive' : 'dead', n.alive ? 'writable' : 'dead'),
        num(`${n.volumes.length} / ${n.maxVolumeCount}`),
        num(Math.max(0, n.maxVolumeCount - n.volumes.length)),
        num(`${n.lastSeenSecondsAgo} s ago`),
      ]),
      'no volume server has joined yet',
    );
    const volumeRows: string[][] = [];
    const collections = new Map<string, { volumes: number; files: number; size: number }>();
    for (const [id, hs] of holders) {
      const copies = hs.map((h) => h.v);
      const v = copies.reduce((a, b) => (b.size > a.size ? b : a));
      const garbage = v.size > 0 ? v.deletedByteCount / v.size : 0;
      const st = clusterVolumeState(copies);
      volumeRows.push([
        num(id),
        esc(v.collection || '(default)'),
        state(st),
        num(bytes(v.size)),
        num(v.fileCount),
        num(`${(garbage * 100).toFixed(1)}%`),
        num(copies.reduce((a, c) => a + c.readsPerDay, 0)),
        num(this.edgeHeat?.perDay(id) ?? 0),
        esc(copies.find((c) => c.remote)?.remote ?? 'local'),
        esc(v.replicaPlacement),
        esc(v.ttl || '-'),
        esc(hs.map((h) => h.node.url).join(', ')),
      ]);
      const c = collections.get(v.collection) ?? { volumes: 0, files: 0, size: 0 };
      collections.set(v.collection, {
        volumes: c.volumes + 1,
        files: c.files + v.fileCount,
        size: c.size + v.size,
      });
    }
    const jobs = (await this.tierJobs(view)).map(({ server, job }) => [
      num(job.volumeId),
      esc(server),
      esc(job.action),
      esc(job.backend),
      state(job.state === 'failed' ? 'error' : job.state),
      num(job.total ? `${Math.floor((job.bytes / job.total) * 100)}%` : '-'),
      esc(job.error ?? ''),
    ]);
    return [
      { id: 'summary', title: 'Cluster', html: summary },
      { id: 'topology', title: 'Data centers, racks and volume servers', html: nodes },
      {
        id: 'volumes',
        title: 'Volumes',
        html: table(
          'volumes',
          [
            'Id',
            'Collection',
            'State',
            'Size',
            'Files',
            'Garbage',
            'Origin reads/day',
            'Edge reads/day',
            'Tier',
            'Replication',
            'TTL',
            'Servers',
          ],
          volumeRows,
          'no volumes yet',
        ),
      },
      {
        id: 'collections',
        title: 'Collections',
        html: table(
          'collections',
          ['Collection', 'Volumes', 'Files', 'Size'],
          [...collections]
            .sort((a, b) => a[0].localeCompare(b[0]))
            .map(([name, c]) => [esc(name || '(default)'), num(c.volumes), num(c.files), num(bytes(c.size))]),
          'none',
        ),
      },
      {
        id: 'tierjobs',
        title: 'Tier transfers',
        html: table(
          'tierjobs',
          ['Volume', 'Server', 'Action', 'Backend', 'State', 'Done', 'Error'],
          jobs,
          'none',
        ),
      },
    ];
  }

  async handle(res: ServerResponse, pathname: string): Promise<void> {
    if (pathname === '/ui/fragments.json') {
      sendJson(res, 200, fragmentsOf(await this.sections()), { 'Cache-Control': 'no-store' });
      return;
    }
    const nonce = newNonce();
    sendHtml(
      res,
      renderPage({
        title: 'Kelp master',
        subtitle: `${KELP_VERSION_STRING} · ${this.self()}`,
        sections: await this.sections(),
        fragmentsUrl: '/ui/fragments.json',
        nonce,
      }),
      nonce,
    );
  }
}
