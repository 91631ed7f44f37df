/**
 * The [log] options of every server command: level and format from a flag,
 * KELP_LOG_LEVEL / KELP_LOG_FORMAT or `[log]` in the config file, with the
 * usual precedence; a real `kelp master` writes JSON lines at the level asked
 * (access lines at debug), or readable lines with `--logFormat pretty`; and
 * SIGHUP stops it cleanly like SIGTERM.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ConfigError,
  MASTER_OPTIONS,
  resolveOptions,
  SERVER_OPTIONS,
  TIER_SERVE_OPTIONS,
  VOLUME_OPTIONS,
} from '../../../origin/config.ts';
import { CLI, cleanEnv, freePort, removeTempDirs, tempDir } from './harness.ts';

afterAll(removeTempDirs);

describe('[log] level and format', () => {
  it('come from the file, the env and the flag, in that order of strength, for every server command', () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, 'kelp.toml'), '[log]\nlevel = "warn"\nformat = "json"\n');
    for (const spec of [MASTER_OPTIONS, VOLUME_OPTIONS, SERVER_OPTIONS, TIER_SERVE_OPTIONS]) {
      expect(resolveOptions(spec, { cwd }).values).toMatchObject({ logLevel: 'warn', logFormat: 'json' });
      const env = { KELP_LOG_LEVEL: 'debug', KELP_LOG_FORMAT: 'pretty' };
      expect(resolveOptions(spec, { cwd, env }).values).toMatchObject({
        logLevel: 'debug',
        logFormat: 'pretty',
      });
      const flags = { logLevel: 'error' };
      expect(resolveOptions(spec, { cwd, env, flags }).values.logLevel).toBe('error');
    }
    expect(resolveOptions(MASTER_OPTIONS, { cwd: tempDir() }).values).toMatchObject({
      logLevel: 'info',
      logFormat: 'auto',
    });
  });

  it('refuse a level that does not exist, naming the ones that do', () => {
    expect(() => resolveOptions(MASTER_OPTIONS, { env: { KELP_LOG_LEVEL: 'loud' } })).toThrow(ConfigError);
    expect(() => resolveOptions(MASTER_OPTIONS, { env: { KELP_LOG_LEVEL: 'loud' } })).toThrow(
      /KELP_LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace, silent/,
    );
  });
});

/** `kelp master` on a free port with `args`; resolves once /healthz answers. */
async function kelpMaster(args: string[]) {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [CLI, 'master', '--port', String(port), '--mdir', tempDir(), ...args],
    {
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    out += s;
  });
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    out += s;
  });
  const exited = once(child, 'exit') as Promise<[number | null]>;
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch {
      // not yet
    }
    if (Date.now() > deadline || child.exitCode !== null)
      throw new Error(`kelp master did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    base,
    out: () => out,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      child.kill(signal);
      const [code] = await exited;
      return code;
    },
  };
}

const records = (out: string) =>
  out
    .split('\n')
    .filter((l) => l.startsWith('{') && l.endsWith('}'))
    .map((l) => JSON.parse(l) as { level: string; msg: string; component?: string; route?: string });

describe('kelp master', () => {
  it('writes JSON lines at the level asked: access lines at debug, nothing below warn at warn', async () => {
    const debug = await kelpMaster(['--logLevel', 'debug']);
    await fetch(`${debug.base}/dir/status`, { headers: { 'X-Request-Id': 'cli-log-1' } });
    await new Promise((r) => setTimeout(r, 100));
    expect(await debug.stop()).toBe(0);
    const lines = records(debug.out());
    expect(lines).toContainEqual(
      expect.objectContaining({
        level: 'info',
        msg: expect.stringMatching(/^kelp master listening on http:\/\//),
      }),
    );
    expect(lines).toContainEqual(
      expect.objectContaining({
        level: 'debug',
        component: 'master',
        msg: 'request',
        route: 'status',
        reqId: 'cli-log-1',
      }),
    );

    const quiet = await kelpMaster(['--logLevel', 'warn']);
    expect(await quiet.stop()).toBe(0);
    const levels = new Set(records(quiet.out()).map((r) => r.level));
    // An open cluster on loopback: the master warns about it, and says nothing at info.
    expect([...levels]).toEqual(['warn']);
  });

  it('writes readable lines with --logFormat pretty, and stops cleanly on SIGHUP', async () => {
    const pretty = await kelpMaster(['--logFormat', 'pretty']);
    expect(await pretty.stop('SIGHUP')).toBe(0);
    const out = pretty.out();
    expect(records(out)).toEqual([]);
    expect(out).toMatch(/INFO.*kelp master listening on http:\/\/127\.0\.0\.1:\d+/);
    expect(out).toMatch(/WARN.*master: no signing key: the cluster is OPEN/);
    expect(out).toMatch(/SIGHUP: stopping/);
  });
});
