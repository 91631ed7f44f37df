/**
 * Issue 13: what several masters on etcd cost an assign. `GET /dir/assign`
 * at one master on its file store (the baseline) and at the leader of three
 * masters on a three-member etcd, in the same run; keys come from ranges
 * reserved in etcd a batch at a time, so etcd is off an assign's path. A
 * third row asks a follower, which forwards to the leader. Goal: the leader
 * ≥ 50 % of the single master. The failover gap (leader kill → first
 * assign) is bench/masters-failover.ts.
 */

import { compare } from '../lib/compare.ts';
import { type BenchCluster, startBenchCluster } from '../lib/masters.ts';
import type { Started } from '../lib/process.ts';
import type { Bench } from '../run.ts';

/** The cluster's master `pick` as the bench's server; the cluster stops with the last of its rows. */
function contender(cluster: () => Promise<BenchCluster>, pick: (c: BenchCluster) => Promise<string>) {
  return async (): Promise<Started> => {
    const c = await cluster();
    const master = await pick(c);
    return { port: Number(master.split(':')[1]), stop: async () => {} };
  };
}

const bench: Bench = {
  name: 'masters',
  description:
    'GET /dir/assign: one master (file store) vs the leader and a follower of three masters on etcd',
  async run(ctx) {
    let single: Promise<BenchCluster> | undefined;
    let etcd: Promise<BenchCluster> | undefined;
    const singleCluster = () => {
      single ??= startBenchCluster('single');
      return single;
    };
    const etcdCluster = () => {
      etcd ??= startBenchCluster('etcd');
      return etcd;
    };
    const leader = async (c: BenchCluster) => {
      for (const m of c.masters) {
        const s = (await (await fetch(`http://${m}/cluster/status`)).json()) as { IsLeader: boolean };
        if (s.IsLeader) return m;
      }
      throw new Error('no leader');
    };
    try {
      return await compare(
        [
          {
            subject: 'one master, file store',
            start: contender(singleCluster, async (c) => c.masters[0]!),
            load: (port) => ({ url: `http://127.0.0.1:${port}/dir/assign` }),
          },
          {
            subject: 'leader of 3 masters on etcd',
            start: contender(etcdCluster, leader),
            load: (port) => ({ url: `http://127.0.0.1:${port}/dir/assign` }),
          },
          {
            subject: 'follower of 3 masters on etcd (forwards to the leader)',
            start: contender(etcdCluster, (c) => followerOf(c, leader)),
            load: (port) => ({ url: `http://127.0.0.1:${port}/dir/assign` }),
          },
        ],
        { bench: 'masters assign', ...ctx, goal: '≥ 50 % of one master' },
      );
    } finally {
      await (await single?.catch(() => undefined))?.stop();
      await (await etcd?.catch(() => undefined))?.stop();
    }
  },
};

async function followerOf(c: BenchCluster, leader: (c: BenchCluster) => Promise<string>): Promise<string> {
  const l = await leader(c);
  return c.masters.find((m) => m !== l)!;
}

export default bench;
