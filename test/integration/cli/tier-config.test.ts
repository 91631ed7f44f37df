/**
 * The tiering parts of kelp.toml (origin/tier-config.ts): [backend.<type>.<id>]
 * sections with KELP_BACKEND_* env overrides and secrets from env or file,
 * [[tier.policy]] tables, the [tier] options; and `kelp volume` handing the
 * backends to its volume server without ever printing a secret.
 */

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { serverConfigs } from '../../../origin/commands/server.ts';
import { volumeConfig } from '../../../origin/commands/volume.ts';
import {
  ConfigError,
  loadConfigFile,
  resolveOptions,
  SERVER_OPTIONS,
  TIER_SERVE_OPTIONS,
  VOLUME_OPTIONS,
} from '../../../origin/config.ts';
import { backendEnvName, loadBackends, loadTierRules } from '../../../origin/tier-config.ts';
import { createBackend } from '../../../tiering/backends/create-backend.ts';
import { freePort, removeTempDirs, startKelp, tempDir } from './harness.ts';

afterAll(removeTempDirs);

function fileWith(toml: string): { path: string; dir: string } {
  const dir = tempDir();
  const path = join(dir, 'kelp.toml');
  writeFileSync(path, toml);
  return { path, dir };
}

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

function backendsOf(toml: string, env: Record<string, string> = {}) {
  const { path, dir } = fileWith(toml);
  return loadBackends(loadConfigFile(path), env, { configFile: path, cwd: dir });
}

const S3 = `
[backend.s3.archive]
endpoint = "http://127.0.0.1:7480"
bucket = "kelp-archive"
storageClass = "STANDARD_IA"
partSize = 8388608
forcePathStyle = true
[backend.s3.archive.retry]
attempts = 6
`;

describe('[backend.<type>.<id>] sections', () => {
  it('become backend configs named type.id, with S3 defaults filled in', () => {
    const got = backendsOf(
      `${S3}\n[backend.gcs.default]\nbucket = "g"\napiEndpoint = "http://127.0.0.1:9199"\n`,
    );
    expect(got).toEqual([
      { type: 'gcs', id: 'default', bucket: 'g', apiEndpoint: 'http://127.0.0.1:9199' },
      {
        type: 's3',
        id: 'archive',
        endpoint: 'http://127.0.0.1:7480',
        bucket: 'kelp-archive',
        storageClass: 'STANDARD_IA',
        partSize: 8388608,
        forcePathStyle: true,
        region: 'us-east-1',
        retry: { attempts: 6 },
      },
    ]);
  });

  it('resolve a local path from the working directory; local.default needs no path', () => {
    const { path, dir } = fileWith('[backend.local.cold]\npath = "cold"\n[backend.local.default]\n');
    // An empty section flattens to nothing, so only local.cold is listed; the server adds local.default.
    expect(loadBackends(loadConfigFile(path), {}, { cwd: dir })).toEqual([
      { type: 'local', id: 'cold', path: join(dir, 'cold') },
    ]);
    expect(configError(() => backendsOf('[backend.local.cold]\nretry.attempts = 2\n'))).toBe(
      '[backend.local.cold]: "path" is required (or KELP_BACKEND_LOCAL_COLD_PATH)',
    );
  });

  it('take any field from KELP_BACKEND_<TYPE>_<ID>_<FIELD>, over the file, or define a backend by env alone', () => {
    const env = {
      KELP_BACKEND_S3_ARCHIVE_ACCESS_KEY_ID: 'AKIAEXAMPLE',
      KELP_BACKEND_S3_ARCHIVE_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG',
      KELP_BACKEND_S3_ARCHIVE_BUCKET: 'from-env',
      KELP_BACKEND_S3_ARCHIVE_RETRY_MAX_DELAY_MS: '2000',
      KELP_BACKEND_GCS_COLD_STORE_BUCKET: 'cold',
      KELP_BACKEND_GCS_COLD_STORE_RESUMABLE: 'false',
      KELP_PORT: '1', // not a backend variable
    };
    const got = backendsOf(`${S3}\n[backend.gcs.cold-store]\nprojectId = "p"\n`, env);
    expect(got.find((b) => b.id === 'archive')).toMatchObject({
      bucket: 'from-env',
      accessKeyId: 'AKIAEXAMPLE',
      secretAccessKey: 'wJalrXUtnFEMI/K7MDENG',
      retry: { attempts: 6, maxDelayMs: 2000 },
    });
    expect(got.find((b) => b.id === 'cold-store')).toEqual({
      type: 'gcs',
      id: 'cold-store',
      projectId: 'p',
      bucket: 'cold',
      resumable: false,
    });
    expect(backendsOf('', { KELP_BACKEND_S3_DEFAULT_BUCKET: 'b' })).toEqual([
      { type: 's3', id: 'default', bucket: 'b', region: 'us-east-1' },
    ]);
    expect(backendEnvName('s3', 'cold-store', 'secretAccessKey')).toBe(
      'KELP_BACKEND_S3_COLD_STORE_SECRET_ACCESS_KEY',
    );
  });

  it('read a secret key from secretAccessKeyFile', () => {
    const { path, dir } = fileWith(
      '[backend.s3.default]\nbucket = "b"\naccessKeyId = "AKIA1"\nsecretAccessKeyFile = "s3.secret"\n',
    );
    writeFileSync(join(dir, 's3.secret'), 'from-a-file\n');
    const [b] = loadBackends(loadConfigFile(path), {}, { cwd: dir });
    expect(b).toMatchObject({ accessKeyId: 'AKIA1', secretAccessKey: 'from-a-file' });
    expect(b).not.toHaveProperty('secretAccessKeyFile');
    writeFileSync(path, '[backend.s3.default]\nbucket = "b"\nsecretAccessKeyFile = "nope"\n');
    expect(configError(() => loadBackends(loadConfigFile(path), {}, { cwd: dir }))).toMatch(
      /cannot read secretAccessKeyFile/,
    );
  });

  it('refuse half a key pair, a missing bucket, a wrong type, without echoing a secret', () => {
    const half = configError(() =>
      backendsOf('[backend.s3.x]\nbucket = "b"\n', { KELP_BACKEND_S3_X_SECRET_ACCESS_KEY: 'sekrit-value' }),
    );
    expect(half).toMatch(/give both accessKeyId and secretAccessKey/);
    expect(half).not.toContain('sekrit-value');
    expect(configError(() => backendsOf('[backend.gcs.x]\nprojectId = "p"\n'))).toMatch(
      /\[backend.gcs.x\]: "bucket" is required/,
    );
    expect(configError(() => backendsOf('[backend.s3.x]\nbucket = "b"\npartSize = "big"\n'))).toMatch(
      /"partSize" in \[backend.s3.x\]: must be an integer/,
    );
    expect(configError(() => backendsOf('', { KELP_BACKEND_S3_X_BUKET: 'b' }))).toMatch(
      /KELP_BACKEND_S3_X_BUKET: no field of a s3 backend ends it/,
    );
    expect(configError(() => backendsOf('', { KELP_BACKEND_AZURE_X_BUCKET: 'b' }))).toMatch(/must be one of/);
  });

  it('an R2 backend: account id, keys from the env, region auto (the S3 API underneath)', async () => {
    const got = backendsOf(
      '[backend.r2.default]\naccountId = "0123456789abcdef0123456789abcdef"\nbucket = "kelp-tier"\n',
      {
        KELP_BACKEND_R2_DEFAULT_ACCESS_KEY_ID: 'AKR2',
        KELP_BACKEND_R2_DEFAULT_SECRET_ACCESS_KEY: 'r2-secret',
      },
    );
    expect(got).toEqual([
      {
        type: 'r2',
        id: 'default',
        accountId: '0123456789abcdef0123456789abcdef',
        bucket: 'kelp-tier',
        accessKeyId: 'AKR2',
        secretAccessKey: 'r2-secret',
      },
    ]);
    const backend = await createBackend(got[0]!);
    expect(backend).toMatchObject({ type: 'r2', name: 'r2.default' });
    expect(JSON.stringify(backend.describe())).not.toContain('r2-secret');
    await backend.close();
    expect(
      configError(() => backendsOf('[backend.r2.default]\nbucket = "b"\nsecretAccessKey = "s"\n')),
    ).toMatch(/accessKeyId/);
  });

  it('are checked by every command: an unknown key or type is an error naming what is known', () => {
    const typo = fileWith('[backend.s3.archive]\nbuckett = "b"\n');
    expect(configError(() => resolveOptions(VOLUME_OPTIONS, { cwd: typo.dir }))).toMatch(
      /unknown key "buckett" in \[backend.s3.archive\] \(known there: bucket, region/,
    );
    const type = fileWith('[backend.azure.x]\nbucket = "b"\n');
    expect(configError(() => loadConfigFile(type.path))).toMatch(/type local, s3, r2, gcs/);
  });

  it('reach the volume server config of kelp volume and kelp server', () => {
    const backends = backendsOf(S3);
    const { values } = resolveOptions(VOLUME_OPTIONS, { cwd: tempDir() });
    expect(volumeConfig(values, backends).backends).toBe(backends);
    const server = resolveOptions(SERVER_OPTIONS, { cwd: tempDir() }).values;
    expect(serverConfigs(server, backends).volume.backends).toBe(backends);
  });
});

describe('[[tier.policy]] and [tier]', () => {
  const POLICY = `
[tier]
master = "10.0.0.1:9333"
interval = "30s"

[[tier.policy]]
collection = "photos"
backend = "s3.archive"
minAge = "7d"
quietFor = "24h"
maxReadsPerDay = 10
promoteAboveReadsPerDay = 1000

[[tier.policy]]
backend = "local"
`;

  it('load as rules, and [tier] as the options of kelp tier serve', () => {
    const { path, dir } = fileWith(POLICY);
    const rules = loadTierRules(loadConfigFile(path), path);
    expect(rules.map((r) => [r.collection, r.backend])).toEqual([
      ['photos', 's3.archive'],
      [undefined, 'local.default'],
    ]);
    const r = resolveOptions(TIER_SERVE_OPTIONS, { cwd: dir });
    expect(r.values).toMatchObject({
      master: '10.0.0.1:9333',
      interval: 30_000,
      ip: '127.0.0.1',
      port: 9336,
    });
    expect(
      resolveOptions(TIER_SERVE_OPTIONS, { cwd: dir, env: { KELP_INTERVAL: '5m' } }).values.interval,
    ).toBe(300_000);
    expect(resolveOptions(TIER_SERVE_OPTIONS, { cwd: tempDir() }).values.interval).toBe(60_000);
    expect(
      configError(() => resolveOptions(TIER_SERVE_OPTIONS, { cwd: dir, flags: { interval: '0' } })),
    ).toBe('--interval: must be longer than 0');
    expect(loadTierRules(new Map())).toEqual([]);
  });

  it('refuse a typo in a rule at load, and a bad value when used', () => {
    const typo = fileWith('[[tier.policy]]\nbackend = "s3"\nquietfor = "1h"\n');
    expect(configError(() => loadConfigFile(typo.path))).toMatch(
      /unknown key "quietfor" in \[\[tier.policy\]\] #1 \(known there: collection, backend/,
    );
    const table = fileWith('[tier.policy]\nbackend = "s3"\n');
    expect(configError(() => loadConfigFile(table.path))).toMatch(/must be written \[\[tier.policy\]\]/);
    const bad = fileWith('[[tier.policy]]\nbackend = "s3"\nquietFor = "soon"\n');
    expect(configError(() => loadTierRules(loadConfigFile(bad.path), bad.path))).toMatch(
      /tier.policy\[0\]: "quietFor": invalid duration "soon"/,
    );
  });
});

describe('kelp volume with tier backends', () => {
  it('hands them to its volume server and prints them with the secret redacted', async () => {
    const cwd = tempDir();
    writeFileSync(
      join(cwd, 'kelp.toml'),
      `${S3}\n[backend.local.cold]\npath = "cold"\n[volume]\nmaster = ""\ndir = "${join(cwd, 'data')}"\n`,
    );
    const secret = 'wJalrXUtnFEMI-do-not-print-me';
    const server = await startKelp(['volume', '--port', String(await freePort())], 1, {
      cwd,
      env: {
        KELP_BACKEND_S3_ARCHIVE_ACCESS_KEY_ID: 'AKIAEXAMPLEKEY',
        KELP_BACKEND_S3_ARCHIVE_SECRET_ACCESS_KEY: secret,
      },
    });
    try {
      const status = (await (await fetch(`${server.urls[0]}/admin/tier/status`)).json()) as {
        backends: string[];
      };
      expect(status.backends.sort()).toEqual(['local.cold', 'local.default', 's3.archive']);
      await new Promise((r) => setTimeout(r, 100));
      const out = server.output();
      // Log lines are JSON (stdout is not a terminal): the backends line is one message.
      const line = out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => (JSON.parse(l) as { msg: string }).msg)
        .find((m) => m.startsWith('tier backends:'));
      expect(line).toMatch(/tier backends: local\.default .*s3\.archive/);
      expect(line).toContain('"secretAccessKey":"[redacted]"');
      expect(line).toContain('"accessKeyId":"AKIA…"');
      expect(out).not.toContain(secret);
      expect(out).not.toContain('AKIAEXAMPLEKEY');
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});
