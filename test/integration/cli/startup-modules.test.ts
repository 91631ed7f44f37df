/**
 * What each server process loads (issue 15: RAM per needle): every module a
 * process imports stays in its RSS, so `kelp volume` must not load the
 * master's (zod, etcd's gRPC client) nor jose without a signing key, `kelp master` must not load the volume
 * server's image library, and neither loads sharp or pino-pretty until a
 * resize or a terminal needs them. Real `kelp` processes, with a preload that
 * records every module they load (fixtures/record-loaded.ts).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnUntilReady } from '../../support/process.ts';
import { CLI, cleanEnv, removeTempDirs, tempDir } from './harness.ts';

const RECORD = fileURLToPath(new URL('./fixtures/record-loaded.mjs', import.meta.url));

afterAll(removeTempDirs);

/** Package names (`zod`, `@grpc/grpc-js`) of the modules a kelp command loaded until it was listening. */
async function packagesLoaded(args: string[], ready: RegExp): Promise<Set<string>> {
  const dir = tempDir();
  const out = join(dir, 'loaded.txt');
  const p = await spawnUntilReady(['--import', RECORD, CLI, ...args], {
    what: `kelp ${args[0]}`,
    ready,
    env: cleanEnv({ KELP_LOADED_OUT: out }),
  });
  await p.stop();
  const names = new Set<string>();
  for (const url of readFileSync(out, 'utf8').split('\n')) {
    const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
    if (m) names.add(m[1]!);
  }
  return names;
}

describe('modules a server process loads', () => {
  it('kelp volume: none of the master, sharp or pino-pretty', async () => {
    const dir = tempDir();
    const names = await packagesLoaded(
      ['volume', '--ip', '127.0.0.1', '--port', '0', '--dir', dir, '--master', '', '--logFormat', 'json'],
      /kelp volume server listening/,
    );
    expect(names.has('prom-client'), 'the recorder saw packages at all').toBe(true);
    for (const heavy of ['zod', 'etcd3', '@grpc/grpc-js', 'sharp', 'pino-pretty', 'cli-progress', 'jose']) {
      expect(names.has(heavy), heavy).toBe(false);
    }
  });

  it('kelp master: zod (its schemas), but not sharp or pino-pretty', async () => {
    const names = await packagesLoaded(
      ['master', '--ip', '127.0.0.1', '--port', '0', '--mdir', tempDir(), '--logFormat', 'json'],
      /kelp master listening/,
    );
    expect(names.has('zod')).toBe(true);
    expect(names.has('sharp')).toBe(false);
    expect(names.has('pino-pretty')).toBe(false);
  });
});
