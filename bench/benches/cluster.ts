/**
 * The full path through `kelp server` (master + volume server in one process,
 * `--volume.fsync batch`): 1 KiB writes as assign + upload (the master's
 * `/submit`, one request each) and 1 KiB random reads from the volume server,
 * each beside the bare node:http baseline doing the same I/O in the same run.
 * SeaweedFS's published figures (4-core laptop, c=16): 15,708 writes/s and
 * 47,019 reads/s.
 */
import { writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compare } from '../lib/compare.ts';
import { scratchDir } from '../lib/kelp.ts';
import { benchNodeFlags } from '../lib/node-flags.ts';
import { type Started, startServer } from '../lib/process.ts';
import type { Bench } from '../run.ts';

const CLI = fileURLToPath(new URL('../../origin/cli.ts', import.meta.url));
const BARE = fileURLToPath(new URL('../baselines/bare-http.ts', import.meta.url));
const LUA = (name: string) => fileURLToPath(new URL(`../lua/${name}`, import.meta.url));
/** One assign reserves them all (the master's MAX_ASSIGN_COUNT). */
const READ_BLOBS = 10_000;

/** `kelp server` on free ports; resolves once its volume server has joined the master. */
export async function startCluster(dir: string): Promise<{ master: Started; volumePort: number }> {
  const master = await startServer(
    [
      ...benchNodeFlags(),
      CLI,
      'server',
      '--dir',
      dir,
      '--master.port',
      '0',
      '--volume.port',
      '0',
      '--volume.fsync',
      'batch',
    ],
    { ready: /kelp master listening on http:\/\/127\.0\.0\.1:(\d+)/ },
  );
  for (let i = 0; i < 100; i++) {
    const status = (await (await fetch(`http://127.0.0.1:${master.port}/dir/status`)).json()) as {
      Topology: { DataCenters: Array<{ Racks: Array<{ DataNodes: Array<{ Url: string }> }> }> };
    };
    const url = status.Topology.DataCenters[0]?.Racks[0]?.DataNodes[0]?.Url;
    if (url) return { master, volumePort: Number(url.split(':')[1]) };
    await new Promise((r) => setTimeout(r, 100));
  }
  await master.stop();
  throw new Error('the volume server of kelp server never joined its master');
}

function put(port: number, path: string, body: Buffer, agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'PUT', path, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** One assign of `count` keys (fid, fid_1, ...), then bounded-concurrency PUTs; returns the read paths. */
async function fill(masterPort: number, volumePort: number, count: number): Promise<string[]> {
  const res = await fetch(`http://127.0.0.1:${masterPort}/dir/assign?count=${count}`);
  const assign = (await res.json()) as { fid?: string; error?: string };
  if (!assign.fid) throw new Error(`assign ${count}: HTTP ${res.status} ${assign.error}`);
  const paths = Array.from({ length: count }, (_, i) => `/${assign.fid}${i ? `_${i}` : ''}`);
  const agent = new Agent({ keepAlive: true, maxSockets: 32 });
  const body = Buffer.alloc(1024, 7);
  let next = 0;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < paths.length) {
        const path = paths[next++]!;
        const status = await put(volumePort, path, body, agent);
        if (status !== 201) throw new Error(`fill ${path}: HTTP ${status}`);
      }
    }),
  );
  agent.destroy();
  return paths;
}

const bench: Bench = {
  name: 'cluster',
  description: 'kelp server: /submit (assign + upload) 1 KiB writes and random 1 KiB reads vs bare node:http',
  async run(ctx) {
    const scratch = scratchDir('cluster');
    try {
      const writes = await compare(
        [
          {
            subject: 'bare append + group fdatasync',
            start: () => startServer([BARE, 'append-group', scratch.dir]),
            load: (port) => ({ url: `http://127.0.0.1:${port}/`, script: LUA('post-1k.lua') }),
          },
          {
            subject: 'kelp /submit (assign + upload, fsync batch)',
            start: async () => (await startCluster(join(scratch.dir, 'w'))).master,
            load: (port) => ({ url: `http://127.0.0.1:${port}/submit`, script: LUA('submit-1k.lua') }),
          },
        ],
        { bench: 'cluster write', ...ctx, goal: 'SeaweedFS: 15,708/s on 4 cores' },
      );
      const dir = join(scratch.dir, 'r');
      const cluster = await startCluster(dir);
      const paths = await fill(cluster.master.port, cluster.volumePort, READ_BLOBS);
      const pathsFile = join(scratch.dir, 'paths.txt');
      writeFileSync(pathsFile, `${paths.join('\n')}\n`);
      const reads = await compare(
        [
          {
            subject: 'bare readSync 1 KiB at a random offset',
            start: () => startServer([BARE, 'pread-sync', scratch.dir]),
            load: (port) => ({ url: `http://127.0.0.1:${port}/` }),
          },
          {
            subject: `kelp volume server, ${READ_BLOBS} blobs, random`,
            start: async () => ({ ...cluster.master, port: cluster.volumePort, stop: async () => {} }),
            load: (port) => ({
              url: `http://127.0.0.1:${port}/`,
              script: LUA('random-path.lua'),
              env: { KELP_PATHS: pathsFile },
            }),
          },
        ],
        { bench: 'cluster read', ...ctx, goal: 'SeaweedFS: 47,019/s on 4 cores' },
      );
      await cluster.master.stop();
      return [...writes, ...reads];
    } finally {
      scratch.remove();
    }
  },
};
export default bench;
