/**
 * The JavaScript tree deployments run (dist/, scripts/build.ts, decision
 * 0017): it is the build of these very sources, and `kelp` from it stores,
 * serves and tiers a blob without ever loading a TypeScript module (so Node's
 * type stripper stays out of the process). `npm test` builds it first.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { BUILT_DIRS, buildModule, DIST } from '../../../scripts/build.ts';
import type { AssignResponse, VolumeTierStatus } from '../../../shared/api.ts';
import { spawnUntilReady } from '../../support/process.ts';
import { waitFor } from '../../support/wait.ts';
import { cleanEnv, freePort, REPO_ROOT, removeTempDirs, runKelp, tempDir } from './harness.ts';

const RECORD = fileURLToPath(new URL('./fixtures/record-loaded.mjs', import.meta.url));
const DIST_CLI = join(DIST, 'origin/cli.js');

afterAll(removeTempDirs);

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

describe('dist/', () => {
  it('is the build of these sources, file for file (run `npm run build` after a change)', () => {
    expect(existsSync(DIST_CLI), 'dist/ missing: `npm run build`').toBe(true);
    const sources = BUILT_DIRS.flatMap((d) => filesUnder(join(REPO_ROOT, d))).filter(
      (f) => f.endsWith('.ts') && !f.endsWith('.d.ts'),
    );
    expect(sources.length).toBeGreaterThan(100);
    const expected = new Map(
      sources.map((f) => [
        relative(REPO_ROOT, f).replace(/\.ts$/, '.js'),
        buildModule(readFileSync(f, 'utf8')),
      ]),
    );
    const built = filesUnder(DIST).map((f) => relative(DIST, f));
    expect(built.sort()).toEqual([...expected.keys()].sort());
    const stale = [...expected].filter(([path, js]) => readFileSync(join(DIST, path), 'utf8') !== js);
    expect(stale.map(([path]) => path)).toEqual([]);
    // No module is named by its .ts source any more, nor do types survive where a line kept them.
    for (const js of expected.values()) expect(js).not.toMatch(/['"]\.{1,2}\/[^'"\n]*\.ts['"]/);
  });

  it('runs kelp server: a blob stored, served, tiered to local.default and served from there, with no TypeScript loaded', async () => {
    const dir = tempDir();
    const loadedOut = join(dir, 'loaded.txt');
    const [masterPort, volumePort] = [await freePort(), await freePort()];
    const server = await spawnUntilReady(
      [
        '--import',
        RECORD,
        DIST_CLI,
        'server',
        '--dir',
        join(dir, 'data'),
        '--master.port',
        String(masterPort),
        '--volume.port',
        String(volumePort),
        '--logFormat',
        'json',
      ],
      {
        what: 'kelp server (dist)',
        ready: /kelp volume server listening/,
        env: cleanEnv({ KELP_LOADED_OUT: loadedOut }),
      },
    );
    try {
      const master = `127.0.0.1:${masterPort}`;
      // Listening is not yet writable: the master grows a volume once the server's first heartbeat is in.
      const assigned = await waitFor('a writable volume', async () => {
        const res = await fetch(`http://${master}/dir/assign`);
        return res.status === 200 ? ((await res.json()) as AssignResponse) : void (await res.body?.cancel());
      });
      const blob = randomBytes(4096);
      const form = new FormData();
      form.append('file', new Blob([blob]), 'b.bin');
      const put = await fetch(`http://${assigned.url}/${assigned.fid}`, { method: 'POST', body: form });
      expect(put.status).toBe(201);
      const read = async () => {
        const res = await fetch(`http://${assigned.url}/${assigned.fid}`);
        expect(res.status).toBe(200);
        return Buffer.from(await res.arrayBuffer());
      };
      expect(await read()).toEqual(blob);
      // The tier path loads the backend registry (a require()) and hashes in a worker thread: both
      // name their module by a path the build rewrote.
      const volume = assigned.fid.split(',')[0]!;
      const tiered = await runKelp(
        ['tier', 'upload', '--volume', volume, '--backend', 'local.default', '--master', master],
        { cwd: dir },
      );
      expect(tiered.code, tiered.stderr.toString()).toBe(0);
      const status = (await (
        await fetch(`http://${assigned.url}/admin/tier/status?volume=${volume}`)
      ).json()) as VolumeTierStatus;
      expect(status.remote?.backend).toBe('local.default');
      expect(await read()).toEqual(blob);
    } finally {
      await server.stop();
    }
    const loaded = readFileSync(loadedOut, 'utf8').split('\n');
    expect(loaded.filter((u) => u.includes('/dist/tiering/backends/')).length).toBeGreaterThan(2);
    expect(loaded.filter((u) => u.endsWith('.ts'))).toEqual([]);
  }, 60_000);
});
