/**
 * /healthz and /readyz on every server: the master is ready once it has a
 * leader and a topology (a volume server joined, one pulse passed); a volume
 * server once its volumes are loaded and its master answers; `kelp tier
 * serve` (a real process, with its own small HTTP server) once its master and
 * the object stores its policies name answer. Readiness fails from the moment
 * a shutdown starts.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { promtool, scrape, total } from '../../helpers/metrics.ts';
import { CLI, cleanEnv, freePort } from '../cli/harness.ts';
import { master, stopAll, tempDir, volume, waitFor, waitForNodes } from '../cluster/harness.ts';

afterAll(stopAll);

interface Ready {
  ready: boolean;
  checks: Record<string, { ok: boolean; detail?: string }>;
}

async function readyz(base: string): Promise<{ status: number; body: Ready }> {
  const res = await fetch(`${base}/readyz`);
  return { status: res.status, body: (await res.json()) as Ready };
}

describe('the master', () => {
  it('is alive at once, and ready once a volume server joined and a pulse passed', async () => {
    const m = await master();
    expect((await fetch(`${m.base}/healthz`)).status).toBe(200);
    const before = await readyz(m.base);
    expect(before.status).toBe(503);
    expect(before.body.checks.topology).toEqual({ ok: false, detail: 'no volume server has joined' });
    expect(before.body.checks.leader).toEqual({ ok: true, detail: m.address });
    await volume(m.address);
    await waitForNodes(m, 1);
    await waitFor('the master to be ready', async () => (await readyz(m.base)).status === 200, 5_000);
    expect((await readyz(m.base)).body.checks.topology).toEqual({ ok: true, detail: '1 volume servers' });
    m.health.markStopping();
    const stopping = await readyz(m.base);
    expect(stopping.status).toBe(503);
    expect(stopping.body.checks.shutdown).toEqual({ ok: false, detail: 'shutting down' });
    // Alive still: a restart would not help a server that is draining.
    expect((await fetch(`${m.base}/healthz`)).status).toBe(200);
  });
});

describe('a volume server', () => {
  it('is ready while its master answers, and not once the master is gone', async () => {
    const m = await master();
    const v = await volume(m.address);
    await waitForNodes(m, 1);
    await waitFor('the volume server to be ready', async () => (await readyz(v.base)).status === 200);
    expect((await readyz(v.base)).body.checks).toEqual({
      volumes: { ok: true, detail: expect.stringMatching(/^\d+ loaded$/) },
      master: { ok: true, detail: `joined ${m.address}` },
    });
    await m.close();
    await waitFor('readiness to fail', async () => (await readyz(v.base)).status === 503, 10_000);
    expect((await readyz(v.base)).body.checks.master).toEqual({
      ok: false,
      detail: `cannot reach ${m.address}`,
    });
    expect((await fetch(`${v.base}/healthz`)).status).toBe(200);
  });

  it('is ready standalone (no master to reach)', async () => {
    const v = await volume('', { master: undefined });
    const r = await readyz(v.base);
    expect(r.status).toBe(200);
    expect(r.body.checks.master).toEqual({ ok: true, detail: 'standalone (no master)' });
    expect((await fetch(`${v.base}/readyz`, { method: 'POST' })).status).toBe(405);
  });
});

// s3rver, a fake S3 (test/tiering/s3-s3rver.test.ts): enough to answer the readiness probe's HEAD.
type S3rverClass = new (
  o: Record<string, unknown>,
) => {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  httpServer: Server;
};
const S3rver = createRequire(import.meta.url)('s3rver') as S3rverClass;

describe('kelp tier serve', () => {
  const stops: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop();
  });

  async function tierServe(masterAddress: string, s3Endpoint: string) {
    const dir = tempDir('kelp-tier-serve-');
    writeFileSync(
      join(dir, 'kelp.toml'),
      [
        '[[tier.policy]]',
        'backend = "s3.cold"',
        '[[tier.policy]]',
        'collection = "logs"',
        'backend = "local.default"',
        '[backend.s3.cold]',
        `endpoint = "${s3Endpoint}"`,
        'region = "us-east-1"',
        'bucket = "cold"',
        'forcePathStyle = true',
        'accessKeyId = "S3RVER"',
        'secretAccessKey = "S3RVER"',
        '',
      ].join('\n'),
    );
    const child = spawn(
      process.execPath,
      [CLI, 'tier', 'serve', '--master', masterAddress, '--port', '0', '--interval', '0.2s'],
      { cwd: dir, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      out += s;
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      out += s;
    });
    const exited = once(child, 'exit');
    stops.push(async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    });
    const base = await waitFor('kelp tier serve to listen', () => {
      const m = /health and metrics listening on (http:\/\/[\d.]+:\d+)/.exec(out);
      return m?.[1];
    });
    return { base, child, exited, out: () => out };
  }

  it('is ready when its master and the object store its policy names answer', async () => {
    const m = await master();
    await volume(m.address);
    await waitForNodes(m, 1);
    const s3 = new S3rver({
      address: '127.0.0.1',
      port: 0,
      silent: true,
      directory: tempDir('kelp-s3rver-'),
      configureBuckets: [{ name: 'cold' }],
    });
    const { port } = await s3.run();
    stops.push(() => s3.close());
    const t = await tierServe(m.address, `http://127.0.0.1:${port}`);
    expect((await fetch(`${t.base}/healthz`)).status).toBe(200);
    const r = await readyz(t.base);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.checks.backends?.detail).toBe(
      's3.cold: answers; local.default: on the volume servers: checked there',
    );
    // Its rounds are counted, and its exposition passes promtool.
    await waitFor('a round', async () => total(await scrape(t.base), 'kelp_tier_service_rounds_total') > 0);
    const text = await (await fetch(`${t.base}/metrics`)).text();
    const check = promtool(['check', 'metrics'], text);
    expect(check, check.output).toMatchObject({ ok: true });
    expect((await fetch(`${t.base}/anything-else`)).status).toBe(404);
    t.child.kill('SIGTERM');
    const [code] = (await t.exited) as [number | null];
    expect(code, t.out()).toBe(0);
  });

  it('is not ready when the object store does not answer, nor when the master is gone', async () => {
    const m = await master();
    // A list of masters, the first down: the one that answers makes the check pass.
    const dead = `127.0.0.1:${await freePort()}`;
    const t = await tierServe(`${dead},${m.address}`, `http://127.0.0.1:${await freePort()}`);
    const r = await readyz(t.base);
    expect(r.status).toBe(503);
    expect(r.body.checks.backends?.ok).toBe(false);
    expect(r.body.checks.backends?.detail).toMatch(/^s3\.cold: /);
    expect(r.body.checks.master).toEqual({ ok: true, detail: `${m.address} answers` });
    await m.close();
    const gone = await readyz(t.base);
    expect(gone.body.checks.master?.ok).toBe(false);
  });
});
