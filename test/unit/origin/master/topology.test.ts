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
