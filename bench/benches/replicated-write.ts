/**
 * Issue 10: what the cluster credential costs. 1 KiB writes to a volume
 * replicated "001" on two volume servers (every write fans out to the second),
 * with and without a cluster key, in the same run: with the key every
 * replica PUT carries an HMAC-SHA256 signature over its SHA-256 body hash,
 * which the replica checks before storing. Goal: ≥ 90 % of the open cluster.
 * Issue 15's goal is the open cluster ≥ 40 % of one bare group-commit server;
 * beside it, two bare servers replicating each write (the first forwards the
 * body to the second) show what two copies on this machine allow at the least.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clusterHeaders } from '../../origin/security/cluster-auth.ts';
import { compare } from '../lib/compare.ts';
import { BENCH_COOKIE, scratchDir } from '../lib/kelp.ts';
import { benchNodeFlags } from '../lib/node-flags.ts';
import { type Started, startBehind, startServer } from '../lib/process.ts';
import type { Bench } from '../run.ts';

const CLI = fileURLToPath(new URL('../../origin/cli.ts', import.meta.url));
const BARE = fileURLToPath(new URL('../baselines/bare-http.ts', import.meta.url));
const POST_1K = fileURLToPath(new URL('../lua/post-1k.lua', import.meta.url));
const putSeq = fileURLToPath(new URL('../lua/put-seq.lua', import.meta.url));
const KEYS_PER_RUN = 2 ** 24;
const BENCH_CLUSTER_KEY = 'bench-cluster-key';
/** Polls (100 ms apart) for both volume servers to join: three clusters start at once on a loaded machine. */
const JOIN_POLLS = 300;

/** A master and two volume servers, one volume "001" grown on both; resolves to the primary's port. */
export async function startReplicated(
  dir: string,
  clusterKey?: string,
): Promise<Started & { volumeId: number; replicas: string[] }> {
  const env: Record<string, string> = clusterKey ? { KELP_CLUSTER_KEY: clusterKey } : {};
  const master = await startServer(
    [
      ...benchNodeFlags(),
      CLI,
      'master',
      '--ip',
      '127.0.0.1',
      '--port',
      '0',
      '--mdir',
      `${dir}/m`,
      '--pulseSeconds',
      '1',
    ],
    { ready: /kelp master listening on http:\/\/127\.0\.0\.1:(\d+)/, env },
  );
  const base = `http://127.0.0.1:${master.port}`;
  const volumes = await Promise.all(
    ['a', 'b'].map((n) =>
      startServer(
        [
          ...benchNodeFlags(),
          CLI,
          'volume',
          '--ip',
          '127.0.0.1',
          '--port',
          '0',
          '--dir',
          `${dir}/${n}`,
          '--fsync',
          'batch',
        ],
        {
          ready: /kelp volume server listening on http:\/\/127\.0\.0\.1:(\d+)/,
          env: { ...env, KELP_MASTER: `127.0.0.1:${master.port}`, KELP_PULSE_SECONDS: '1' },
        },
      ),
    ),
  );
  const stop = async () => {
    for (const v of volumes) await v.stop();
    await master.stop();
  };
  try {
    for (let i = 0; ; i++) {
      const status = (await (await fetch(`${base}/dir/status`)).json()) as {
        Topology: { DataCenters: Array<{ Racks: Array<{ DataNodes: unknown[] }> }> };
      };
      // Both servers in (their volume slots depend on their disk, so count servers, not slots).
      const nodes = status.Topology.DataCenters.flatMap((d) => d.Racks.flatMap((r) => r.DataNodes));
      if (nodes.length >= 2) break;
      if (i > JOIN_POLLS) throw new Error('the volume servers never joined');
      await new Promise((r) => setTimeout(r, 100));
    }
    const path = '/vol/grow?count=1&replication=001';
    const grown = await fetch(`${base}${path}`, {
      method: 'POST',
      headers: clusterKey ? clusterHeaders(clusterKey, 'POST', path) : {},
    });
    const { volumeIds } = (await grown.json()) as { volumeIds: number[] };
    const volumeId = volumeIds[0]!;
    const lookup = (await (await fetch(`${base}/dir/lookup?volumeId=${volumeId}`)).json()) as {
      locations: Array<{ url: string }>;
    };
    const port = Number(lookup.locations[0]!.url.split(':')[1]);
    const pids = [master, ...volumes].map((s) => s.child?.pid).filter((p) => p !== undefined);
    return { port, volumeId, stop, pids, replicas: lookup.locations.map((l) => l.url) };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Two bare group-commit servers, the first forwarding each body to the second
 * and answering once both have synced it (bare-http.ts append-group-forward).
 */
function startBarePair(primaryDir: string, replicaDir: string): Promise<Started> {
  return startBehind(
    () => startServer([BARE, 'append-group', replicaDir]),
    (replica) =>
      startServer([BARE, 'append-group-forward', primaryDir], {
        env: { KELP_BENCH_PEER: String(replica.port) },
      }),
  );
}

const bench: Bench = {
  name: 'replicated-write',
  description: '1 KiB writes replicated 001 on two servers: open cluster vs cluster key (signed fan-out)',
  async run(ctx) {
    const scratch = scratchDir('replicated');
    for (const d of ['bare', 'bare-primary', 'bare-replica']) mkdirSync(join(scratch.dir, d));
    const runs = [0, 0];
    const volumeIds: number[] = [];
    const contender = (i: number, subject: string, key?: string) => ({
      subject,
      async start() {
        const s = await startReplicated(`${scratch.dir}/${i}`, key);
        volumeIds[i] = s.volumeId;
        return s;
      },
      load: (port: number) => ({
        url: `http://127.0.0.1:${port}/`,
        script: putSeq,
        env: {
          KELP_VOLUME: String(volumeIds[i]),
          KELP_COOKIE: BENCH_COOKIE.toString(16).padStart(8, '0'),
          KELP_KEY_BASE: String(1 + runs[i]!++ * KEYS_PER_RUN),
        },
      }),
    });
    try {
      return await compare(
        [
          // Issue 15's goal for replicated writes is a ratio to this (≥ 40 %); the
          // cluster key's cost is the ratio of the two rows below.
          {
            subject: 'bare append + group fdatasync (one copy)',
            start: () => startServer([BARE, 'append-group', join(scratch.dir, 'bare')]),
            load: (port: number) => ({ url: `http://127.0.0.1:${port}/`, script: POST_1K }),
          },
          {
            // Not a goal: what two copies on this machine's one disk and two cores allow at the least.
            subject: 'bare replicated: the same, forwarding each write to a second one',
            start: () => startBarePair(join(scratch.dir, 'bare-primary'), join(scratch.dir, 'bare-replica')),
            load: (port: number) => ({ url: `http://127.0.0.1:${port}/`, script: POST_1K }),
          },
          contender(0, 'replicated 001, open cluster'),
          contender(1, 'replicated 001, cluster key (signed replica PUTs)', BENCH_CLUSTER_KEY),
        ],
        { bench: 'replicated-write', ...ctx, goal: 'open ≥ 40 % of bare; key ≥ 90 % of open' },
      );
    } finally {
      scratch.remove();
    }
  },
};
export default bench;
