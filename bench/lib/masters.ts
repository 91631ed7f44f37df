/**
 * Clusters of the several-masters benches: one master on its file store, or
 * three masters on a real three-member etcd (test/integration/masters/etcd.ts
 * starts it; Debian's etcd-server must be installed), each with one
 * volume server heartbeating every master. Everything is a real `kelp`
 * process on 127.0.0.1.
 */
import { fileURLToPath } from 'node:url';
import { type EtcdCluster, freePort, startEtcdCluster } from '../../test/integration/masters/etcd.ts';
import { scratchDir } from './kelp.ts';
import { type Started, startServer } from './process.ts';

const CLI = fileURLToPath(new URL('../../origin/cli.ts', import.meta.url));
const MASTER_READY = /kelp master listening on http:\/\/127\.0\.0\.1:(\d+)/;
const VOLUME_READY = /kelp volume server listening on http:\/\/127\.0\.0\.1:(\d+)/;
/** Polls of a cluster coming up (100 ms apart). */
const READY_POLLS = 200;

export interface BenchCluster {
  /** host:port of each master, in start order. */
  masters: string[];
  /** The master processes (index as `masters`). */
  processes: Started[];
  etcd?: EtcdCluster;
  /** Starts master i again on its port (after a kill). */
  restartMaster(i: number): Promise<void>;
  stop(): Promise<void>;
}

export function startMaster(
  port: number,
  mdir: string,
  etcd?: EtcdCluster,
  prefix = 'bench',
): Promise<Started> {
  const args = [
    CLI,
    'master',
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    '--mdir',
    mdir,
    '--pulseSeconds',
    '1',
  ];
  if (etcd) args.push('--etcd', etcd.endpoints.join(','), '--etcdPrefix', prefix);
  return startServer(args, { ready: MASTER_READY });
}

export async function clusterStatus(master: string): Promise<{ IsLeader: boolean; Leader: string }> {
  const res = await fetch(`http://${master}/cluster/status`, { signal: AbortSignal.timeout(2_000) });
  return (await res.json()) as { IsLeader: boolean; Leader: string };
}

/** The leader every master given names, once they agree (undefined until then). */
export async function agreedLeader(masters: string[]): Promise<string | undefined> {
  const all = await Promise.all(masters.map((m) => clusterStatus(m).catch(() => undefined)));
  if (all.some((s) => !s)) return undefined;
  const leaders = masters.filter((_, i) => all[i]!.IsLeader);
  return leaders.length === 1 && all.every((s) => s!.Leader === leaders[0]) ? leaders[0] : undefined;
}

/** Waits until `check` says yes, 100 ms apart, at most READY_POLLS times. */
export async function poll<T>(what: string, check: () => Promise<T | undefined | false>): Promise<T> {
  for (let i = 0; i < READY_POLLS; i++) {
    const v = await check().catch(() => undefined);
    if (v) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** One master (file store) or three on etcd, and one volume server heartbeating them all. */
export async function startBenchCluster(kind: 'single' | 'etcd'): Promise<BenchCluster> {
  const scratch = scratchDir(`masters-${kind}`);
  const etcd = kind === 'etcd' ? await startEtcdCluster(3) : undefined;
  const ports = kind === 'etcd' ? [await freePort(), await freePort(), await freePort()] : [await freePort()];
  const masters = ports.map((p) => `127.0.0.1:${p}`);
  const processes: Started[] = [];
  let volume: Started | undefined;
  const stop = async () => {
    await volume?.stop();
    for (const p of processes) await p.stop();
    await etcd?.stop();
    scratch.remove();
  };
  try {
    for (const [i, port] of ports.entries())
      processes.push(await startMaster(port, `${scratch.dir}/m${i}`, etcd));
    volume = await startServer(
      [CLI, 'volume', '--ip', '127.0.0.1', '--port', '0', '--dir', `${scratch.dir}/v`, '--max', '20'],
      { ready: VOLUME_READY, env: { KELP_MASTER: masters.join(','), KELP_PULSE_SECONDS: '1' } },
    );
    await poll('one leader', async () => (kind === 'single' ? masters[0] : agreedLeader(masters)));
    // Every master knows the volume server, and the leader has grown volumes.
    await poll('an assign', async () => (await fetch(`http://${masters[0]}/dir/assign`)).ok);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    masters,
    processes,
    ...(etcd ? { etcd } : {}),
    async restartMaster(i) {
      processes[i] = await startMaster(ports[i]!, `${scratch.dir}/m${i}`, etcd);
    },
    stop,
  };
}
