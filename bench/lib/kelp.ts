/**
 * Starting a Kelp volume server for a bench (the real CLI, as a user runs it)
 * and filling it with blobs over HTTP.
 */

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatFid } from '../../shared/fid.ts';
import { benchNodeFlags } from './node-flags.ts';
import { type Started, startServer } from './process.ts';

const CLI = fileURLToPath(new URL('../../origin/cli.ts', import.meta.url));
const READY = /kelp volume server listening on http:\/\/127\.0\.0\.1:(\d+)/;

export type FsyncPolicy = 'batch' | 'always' | 'never';

/** A bench's scratch directory, removed by the returned function. */
export function scratchDir(label: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), `kelp-bench-${label}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * `kelp volume --port 0 --dir <dir> --fsync <policy> --master ''` on
 * 127.0.0.1: standalone, so no heartbeat competes for the CPU. Extra Node
 * flags (e.g. `--cpu-prof`) come from KELP_BENCH_NODE_FLAGS. `cli` may be
 * another checkout's origin/cli.ts (see comparedCli).
 */
export function startKelpVolume(
  dir: string,
  fsync: FsyncPolicy,
  extraArgs: string[] = [],
  cli: string = CLI,
): Promise<Started> {
  const nodeFlags = benchNodeFlags();
  const args = [
    'volume',
    '--ip',
    '127.0.0.1',
    '--port',
    '0',
    '--dir',
    dir,
    '--fsync',
    fsync,
    '--master',
    '',
    ...extraArgs,
  ];
  return startServer([...nodeFlags, cli, ...args], { ready: READY });
}

/** One request on a keep-alive agent; resolves with the status, rejects on a socket error. */
function send(
  port: number,
  method: string,
  path: string,
  body: Uint8Array | undefined,
  agent: Agent,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error(`${method} ${path}: no answer`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** `POST /admin/assign_volume?volume=<id>`. */
export async function assignVolume(port: number, volumeId: number): Promise<void> {
  const agent = new Agent({ keepAlive: false });
  const status = await send(port, 'POST', `/admin/assign_volume?volume=${volumeId}`, undefined, agent);
  if (status !== 200) throw new Error(`assign_volume ${volumeId}: HTTP ${status}`);
}

const REQUEST_TIMEOUT_MS = 10_000;
/** A fill that takes longer than this is a broken server, not a slow one. */
const FILL_DEADLINE_MS = 180_000;

/** The cookie every bench blob carries. */
export const BENCH_COOKIE = 0x1234abcd;

/**
 * PUTs `count` blobs of `size` random bytes to keys 1..count of volume
 * `volumeId`, `concurrency` at a time, and returns their paths (`/1,<fid>`).
 */
export async function fillVolume(
  port: number,
  volumeId: number,
  count: number,
  size: number,
  concurrency = 32,
): Promise<string[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const paths = Array.from(
    { length: count },
    (_, i) => `/${formatFid({ volumeId, key: BigInt(i + 1), cookie: BENCH_COOKIE })}`,
  );
  const pool = randomBytes(size * 64);
  let next = 0;
  const deadline = performance.now() + FILL_DEADLINE_MS;
  const worker = async () => {
    while (next < count) {
      if (performance.now() > deadline)
        throw new Error(`fill: ${next} of ${count} blobs after ${FILL_DEADLINE_MS} ms`);
      const i = next++;
      const at = (i % 64) * size;
      const status = await send(port, 'PUT', paths[i]!, pool.subarray(at, at + size), agent);
      if (status !== 201) throw new Error(`PUT ${paths[i]}: HTTP ${status}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  agent.destroy();
  return paths;
}

/**
 * KELP_BENCH_COMPARE_TREE: another checkout of Kelp (e.g. a `git worktree` of
 * an older commit) whose volume server a bench runs beside this one's, in the
 * same rounds on the same data, for before/after figures from one run.
 */
export function comparedCli(): { cli: string; label: string } | undefined {
  const tree = process.env.KELP_BENCH_COMPARE_TREE;
  if (!tree) return undefined;
  return { cli: join(tree, 'origin/cli.ts'), label: process.env.KELP_BENCH_COMPARE_LABEL ?? tree };
}
