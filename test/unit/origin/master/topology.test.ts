/**
 * Growth's word on a volume (Topology.addVolume) against the node's own
 * heartbeats, full lists and deltas alike: a volume the node never reports
 * leaves lookups once growth's grace period is over, whichever kind of beat
 * comes next (it once stayed until the next full list, FULL_BEAT_EVERY pulses
 * away: volume-move.test.ts's "kill -9 of the source before finish").
 */
import { describe, expect, it } from 'vitest';
import { MISSED_PULSES_DEAD, Topology } from '../../../../origin/master/topology.ts';
import type { HeartbeatRequest, HeartbeatVolume } from '../../../../shared/api.ts';

const URL = '127.0.0.1:8080';
const PULSE_MS = 1000;

function volume(id: number): HeartbeatVolume {
  return {
    id,
    collection: '',
    size: 8,
    fileCount: 0,
    deleteCount: 0,
    deletedByteCount: 0,
    readOnly: false,
    replicaPlacement: '000',
    ttl: '',
    compactRevision: 0,
    readsPerDay: 0,
    modifiedAt: 0,
  };
}

function beat(volumes: HeartbeatVolume[], deltaOf?: string): HeartbeatRequest {
  return {
    url: URL,
    publicUrl: URL,
    dataCenter: '',
    rack: '',
    maxVolumeCount: 8,
    maxFileKey: '0',
    volumes,
    ...(deltaOf ? { deltaOf } : {}),
  };
}

function setup() {
  let now = 1_000_000;
  const topology = new Topology({ pulseSeconds: PULSE_MS / 1000, volumeSizeLimit: 2 ** 30, now: () => now });
  return { topology, tick: (ms: number) => (now += ms) };
}

describe('Topology: volumes growth created', () => {
  it('keeps one the node has not reported yet, within the grace period', () => {
    const { topology, tick } = setup();
    topology.heartbeat(beat([]));
    topology.addVolume(URL, volume(7));
    tick(PULSE_MS);
    topology.heartbeat(beat([])); // a beat built before the volume existed
    expect(topology.locations(7).map((l) => l.url)).toEqual([URL]);
    topology.heartbeat(beat([], 'session'));
    expect(topology.locations(7).map((l) => l.url)).toEqual([URL]);
  });

  it('drops one the node never reports once the grace period is over, on a delta as on a full list', () => {
    const { topology, tick } = setup();
    topology.heartbeat(beat([]));
    topology.addVolume(URL, volume(7));
    topology.heartbeat(beat([])); // full list without it: still on growth's word
    tick((MISSED_PULSES_DEAD + 1) * PULSE_MS);
    topology.heartbeat(beat([], 'session')); // a delta with nothing changed
    expect(topology.locations(7)).toEqual([]);
  });

  it('keeps one the node reported, past the grace period, on deltas that do not mention it', () => {
    const { topology, tick } = setup();
    topology.heartbeat(beat([]));
    topology.addVolume(URL, volume(7));
    topology.heartbeat(beat([volume(7)]));
    tick((MISSED_PULSES_DEAD + 1) * PULSE_MS);
    topology.heartbeat(beat([], 'session'));
    expect(topology.locations(7).map((l) => l.url)).toEqual([URL]);
  });
});

/**
 * writable() reads an index of each layout's open volumes kept with every
 * change; here it is checked against a scan of every volume of every alive
 * node (what it did before the index) over random heartbeats, full and delta,
 * growth, deletes, nodes leaving and dying, and filters.
 */
describe('Topology: writable volumes from the open-volume index', () => {
  const LIMIT = 1000;
  const LAYOUTS = [
    { collection: '', replication: '000', ttl: '' },
    { collection: 'pics', replication: '000', ttl: '' },
    { collection: '', replication: '001', ttl: '' },
    { collection: '', replication: '000', ttl: '3m' },
  ];
  const NODES = ['127.0.0.1:8001', '127.0.0.1:8002', '127.0.0.1:8003', '127.0.0.1:8004'];

  /** The scan writable() replaced: every alive node's volumes of the layout, grouped by id. */
  function scan(t: Topology, layout: (typeof LAYOUTS)[number], filter: { rack?: string } = {}) {
    const byId = new Map<number, { holders: string[]; blocked: boolean; size: number }>();
    for (const n of t.aliveNodes()) {
      for (const v of n.volumes.values()) {
        if (
          v.collection !== layout.collection ||
          v.replicaPlacement !== layout.replication ||
          v.ttl !== layout.ttl
        )
          continue;
        const e = byId.get(v.id) ?? { holders: [], blocked: false, size: 0 };
        e.holders.push(n.url);
        e.blocked ||= v.readOnly || v.full === true;
        e.size = Math.max(e.size, v.size);
        byId.set(v.id, e);
      }
    }
    const copies = layout.replication === '001' ? 2 : 1;
    const allowed = new Set(t.aliveNodes(filter).map((n) => n.url));
    return [...byId]
      .filter(([, e]) => !e.blocked && e.holders.length >= copies && e.size < LIMIT)
      .filter(([, e]) => !filter.rack || e.holders.some((h) => allowed.has(h)))
      .map(([id]) => id)
      .sort((a, b) => a - b);
  }

  it("a dead node's read-only copy does not close a volume an alive node holds open", () => {
    let now = 1_000_000;
    const t = new Topology({ pulseSeconds: 1, volumeSizeLimit: LIMIT, now: () => now });
    const send = (url: string, readOnly: boolean) =>
      t.heartbeat({ ...beat([{ ...volume(1), readOnly }]), url, publicUrl: url });
    send(NODES[0]!, true);
    send(NODES[1]!, false);
    expect(t.writable(LAYOUTS[0]!)).toEqual([]);
    now += 5_000;
    send(NODES[1]!, false);
    expect(t.writable(LAYOUTS[0]!).map((v) => v.id)).toEqual([1]);
    expect(scan(t, LAYOUTS[0]!)).toEqual([1]);
  });

  it('answers what a scan of every node answers, after every kind of change', () => {
    // mulberry32: a seeded sequence, so a failure replays.
    let seed = 7;
    const random = (n: number) => {
      seed = (seed + 0x6d2b79f5) | 0;
      let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
      return ((x ^ (x >>> 14)) >>> 0) % n;
    };
    let now = 1_000_000;
    const t = new Topology({ pulseSeconds: 1, volumeSizeLimit: LIMIT, now: () => now });
    const sessions = new Map<string, boolean>();
    const held = new Map<string, Map<number, HeartbeatVolume>>(NODES.map((u) => [u, new Map()]));
    const volumeOf = (id: number): HeartbeatVolume => {
      const layout = LAYOUTS[id % LAYOUTS.length]!;
      return {
        ...volume(id),
        collection: layout.collection,
        replicaPlacement: layout.replication,
        ttl: layout.ttl,
        size: random(LIMIT + 200),
        readOnly: random(6) === 0,
        ...(random(10) === 0 ? { full: true } : {}),
      };
    };
    const send = (url: string, delta: HeartbeatVolume[] | undefined, deleted: number[] = []) => {
      const rack = url.endsWith('1') || url.endsWith('2') ? 'r1' : 'r2';
      const base = { ...beat([]), url, publicUrl: url, rack };
      if (delta && sessions.get(url))
        t.heartbeat({ ...base, volumes: delta, deltaOf: 's', deletedVolumes: deleted });
      else {
        t.heartbeat({ ...base, volumes: [...held.get(url)!.values()] });
        sessions.set(url, true);
      }
    };
    for (let step = 0; step < 3000; step++) {
      const url = NODES[random(NODES.length)]!;
      const mine = held.get(url)!;
      switch (random(8)) {
        case 0:
        case 1: {
          // A volume created or changed on the node, told by a delta.
          const v = volumeOf(1 + random(12));
          mine.set(v.id, v);
          send(url, [v]);
          break;
        }
        case 2: {
          // A full list with new sizes and states.
          for (const [id] of mine) mine.set(id, volumeOf(id));
          send(url, undefined);
          break;
        }
        case 3: {
          const id = 1 + random(12);
          if (mine.delete(id)) send(url, [], [id]);
          break;
        }
        case 4: {
          // Growth's word, before the node reports it.
          const v = volumeOf(1 + random(12));
          t.addVolume(url, v);
          break;
        }
        case 5: {
          const id = 1 + random(12);
          mine.delete(id);
          t.removeVolume(url, id);
          break;
        }
        case 6:
          if (random(10) === 0) {
            t.removeNode(url);
            sessions.delete(url);
          }
          break;
        default:
          // Time passes: nodes that stop beating die, growth's grace period ends.
          now += random(1500);
      }
      for (const layout of LAYOUTS) {
        const got = t
          .writable(layout)
          .map((v) => v.id)
          .sort((a, b) => a - b);
        expect(got, `step ${step}, layout ${JSON.stringify(layout)}`).toEqual(scan(t, layout));
        const inRack = t
          .writable(layout, { rack: 'r2' })
          .map((v) => v.id)
          .sort((a, b) => a - b);
        expect(inRack, `step ${step}, rack r2`).toEqual(scan(t, layout, { rack: 'r2' }));
      }
    }
  });
});
