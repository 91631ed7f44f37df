/**
 * The master's metrics (docs/operations.md lists each), all read from the
 * topology at scrape time: volume servers alive and dead, volumes by state as
 * their holders report them, copies missing, free slots, the sequencer.
 */
import type { HeartbeatVolume } from '../../shared/api.ts';
import { copyCount, parsePlacement } from '../../shared/placement.ts';
import type { Sequencer } from '../master/sequencer.ts';
import type { Topology } from '../master/topology.ts';
import { collectedGauge, METRIC_PREFIX as P, type ServerMetrics } from './metrics.ts';

export interface TopologySource {
  topology: Topology;
  sequencer: Sequencer;
  /** The leader's address, or '' when none is known. */
  leader: () => string;
  /** This master's own address (leader when they match); defaults to the leader. */
  self?: () => string;
}

/** A volume's state as the master sees it, with the size limit the master set (volume-metrics.ts's terms). */
function stateOf(v: HeartbeatVolume, sizeLimit: number): string {
  if (v.remote) return 'tiered';
  if (!v.readOnly) return 'writable';
  return v.size >= sizeLimit ? 'full' : 'sealed';
}

export function observeTopology(metrics: ServerMetrics, src: TopologySource): void {
  const r = metrics.registry;
  const { topology } = src;

  collectedGauge(
    r,
    `${P}master_volume_servers`,
    'Volume servers this master knows, by state (alive: heard within 3 pulses; dead: not, and not yet forgotten)',
    ['state'],
    () => {
      let alive = 0;
      for (const n of topology.nodes.values()) if (topology.isAlive(n)) alive++;
      return [
        [{ state: 'alive' }, alive],
        [{ state: 'dead' }, topology.nodes.size - alive],
      ];
    },
  );

  /** Each volume once, as an alive holder reports it, with its count of alive copies. */
  const volumes = () => {
    const byId = new Map<number, { v: HeartbeatVolume; copies: number }>();
    for (const n of topology.aliveNodes()) {
      for (const v of n.volumes.values()) {
        const e = byId.get(v.id);
        if (e) e.copies++;
        else byId.set(v.id, { v, copies: 1 });
      }
    }
    return byId.values();
  };

  collectedGauge(
    r,
    `${P}master_volumes`,
    'Volumes in the cluster by state (writable, full, sealed, tiered) and backend, each counted once',
    ['state', 'backend'],
    () => {
      const by = new Map<string, number>();
      for (const s of ['writable', 'full', 'sealed']) by.set(`${s}|`, 0);
      for (const { v } of volumes()) {
        const key = `${stateOf(v, topology.volumeSizeLimit)}|${v.remote ?? ''}`;
        by.set(key, (by.get(key) ?? 0) + 1);
      }
      return [...by].map(([k, n]) => {
        const [state, backend] = k.split('|') as [string, string];
        return [{ state, backend }, n] as const;
      });
    },
  );

  collectedGauge(
    r,
    `${P}master_volumes_missing_copies`,
    'Volumes with fewer alive copies than their replica placement asks for (they refuse writes)',
    [],
    () => {
      let missing = 0;
      for (const { v, copies } of volumes()) {
        try {
          if (copies < copyCount(parsePlacement(v.replicaPlacement))) missing++;
        } catch {
          // a placement the heartbeat schema let through but the parser refuses: not this metric's business
        }
      }
      return [[{}, missing]];
    },
  );

  collectedGauge(
    r,
    `${P}master_volume_slots`,
    'Volume slots on alive volume servers: max in all, free still unused',
    ['kind'],
    () => {
      let max = 0;
      let free = 0;
      for (const n of topology.aliveNodes()) {
        max += n.maxVolumeCount;
        free += topology.freeSlots(n);
      }
      return [
        [{ kind: 'max' }, max],
        [{ kind: 'free' }, free],
      ];
    },
  );

  collectedGauge(r, `${P}master_is_leader`, '1 when this master is the leader, else 0', [], () => {
    const leader = src.leader();
    const self = src.self?.() ?? leader;
    return [[{}, leader !== '' && leader === self ? 1 : 0]];
  });

  collectedGauge(
    r,
    `${P}master_next_file_key`,
    'The next file key the sequencer hands out (as a float: exact up to 2^53)',
    [],
    () => [[{}, Number(src.sequencer.peek())]],
  );
}
