/**
 * Issue 13: the failover gap of three masters on etcd, as a client sees it.
 * `node bench/masters-failover.ts [--kills 10]`: three masters on a real
 * three-member etcd and one volume server (bench/lib/masters.ts); each round
 * SIGKILLs the leader and measures the time from the kill to the first
 * successful assign (the survivors asked every 20 ms, in order, as clients
 * do), then starts the killed master again and waits for the three to agree
 * on a leader. Prints p50 and max over the kills. Bounded: KILL_TIMEOUT_MS per
 * kill, at most 50 kills.
 */
import { parseArgs } from 'node:util';
import { LEASE_SECONDS } from '../origin/master/election.ts';
import { agreedLeader, poll, startBenchCluster } from './lib/masters.ts';
import { median } from './lib/table.ts';

const MAX_KILLS = 50;
const KILL_TIMEOUT_MS = 30_000;
const PROBE_EVERY_MS = 20;

const { values } = parseArgs({ options: { kills: { type: 'string', default: '10' } } });
const kills = Math.min(MAX_KILLS, Math.max(1, Number(values.kills) || 10));

async function assignOk(master: string): Promise<boolean> {
  try {
    const res = await fetch(`http://${master}/dir/assign`, { signal: AbortSignal.timeout(2_000) });
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}

const cluster = await startBenchCluster('etcd');
const gaps: number[] = [];
const elections: number[] = [];
try {
  for (let k = 0; k < kills; k++) {
    const leader = await poll('the masters to agree on a leader', () => agreedLeader(cluster.masters));
    const i = cluster.masters.indexOf(leader);
    const survivors = cluster.masters.filter((m) => m !== leader);
    const killedAt = performance.now();
    cluster.processes[i]!.child!.kill('SIGKILL');
    let gap: number | undefined;
    while (performance.now() - killedAt < KILL_TIMEOUT_MS && gap === undefined) {
      for (const m of survivors) {
        if (await assignOk(m)) {
          gap = performance.now() - killedAt;
          break;
        }
      }
      if (gap === undefined) await new Promise((r) => setTimeout(r, PROBE_EVERY_MS));
    }
    if (gap === undefined)
      throw new Error(`no assign answered within ${KILL_TIMEOUT_MS} ms of kill ${k + 1}`);
    const elected = await poll('a new leader', () => agreedLeader(survivors));
    elections.push(performance.now() - killedAt);
    gaps.push(gap);
    console.error(
      `kill ${k + 1}: leader ${leader} killed; first assign after ${gap.toFixed(0)} ms; new leader ${elected}`,
    );
    await cluster.restartMaster(i);
  }
} finally {
  await cluster.stop();
}

const ms = (n: number) => `${n.toFixed(0)} ms`;
console.log(
  `\nfailover of 3 masters on etcd (lease ${LEASE_SECONDS} s), ${kills} leader kills (SIGKILL), node ${process.version}`,
);
console.log('| measure | p50 | max | min |');
console.log('|---|---|---|---|');
console.log(
  `| leader kill → first successful assign | ${ms(median(gaps))} | ${ms(Math.max(...gaps))} | ${ms(Math.min(...gaps))} |`,
);
console.log(
  `| leader kill → all survivors name the new leader | ${ms(median(elections))} | ${ms(Math.max(...elections))} | ${ms(Math.min(...elections))} |`,
);
