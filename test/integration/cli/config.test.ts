/**
 * origin/config.ts: defaults < TOML file < KELP_* env < flags, one key at a
 * time; the naming rule; unknown keys and bad values named in the error.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { serverConfigs } from '../../../origin/commands/server.ts';
import { volumeConfig } from '../../../origin/commands/volume.ts';
import {
  COMMAND_OPTIONS,
  ConfigError,
  envName,
  MASTER_OPTIONS,
  resolveOptions,
  SERVER_OPTIONS,
  UPLOAD_OPTIONS,
  VOLUME_OPTIONS,
} from '../../../origin/config.ts';
import { removeTempDirs, tempDir } from './harness.ts';

afterAll(removeTempDirs);

/** A fresh directory holding `kelp.toml` with `toml` (or nothing). */
function dirWith(toml?: string, name = 'kelp.toml'): string {
  const dir = tempDir();
  if (toml !== undefined) writeFileSync(join(dir, name), toml);
  return dir;
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

describe('precedence: defaults < toml < env < flags', () => {
  const toml = '[master]\nport = 1001\n';
  const env = { KELP_PORT: '1002' };
  const flags = { port: '1003' };

  it.each([
    ['nothing set', undefined, {}, {}, 9333, 'default'],
    ['toml only', toml, {}, {}, 1001, 'file'],
    ['env over toml', toml, env, {}, 1002, 'env'],
    ['env without toml', undefined, env, {}, 1002, 'env'],
    ['flag over env and toml', toml, env, flags, 1003, 'flag'],
    ['flag over toml', toml, {}, flags, 1003, 'flag'],
  ])('%s', (_name, file, envVars, flagValues, port, source) => {
    const cwd = dirWith(file);
    const r = resolveOptions(MASTER_OPTIONS, { cwd, env: envVars, flags: flagValues });
    expect(r.values.port).toBe(port);
    expect(r.sources.port).toBe(source);
  });

  it('decides each key on its own: a layer only overrides the keys it sets', () => {
    const cwd = dirWith('[master]\nport = 1001\nip = "0.0.0.0"\npulseSeconds = 7\nmdir = "/from/file"\n');
    const r = resolveOptions(MASTER_OPTIONS, {
      cwd,
      env: { KELP_PORT: '1002', KELP_PULSE_SECONDS: '8' },
      flags: { pulseSeconds: '9' },
    });
    expect(r.values).toMatchObject({ port: 1002, ip: '0.0.0.0', pulseSeconds: 9, mdir: '/from/file' });
    expect(r.values.defaultReplication).toBe('000');
    expect(r.sources).toMatchObject({
      port: 'env',
      ip: 'file',
      pulseSeconds: 'flag',
      defaultReplication: 'default',
    });
  });

  it('treats an empty env var as unset', () => {
    const cwd = dirWith('[master]\nport = 1001\n');
    expect(resolveOptions(MASTER_OPTIONS, { cwd, env: { KELP_PORT: '' } }).values.port).toBe(1001);
  });

  it('applies to kelp server: [server.master] port < KELP_MASTER_PORT < --master.port', () => {
    const cwd = dirWith(
      '[server]\ndir = "/srv/kelp"\n[server.master]\nport = 2001\n[server.volume]\nport = 3001\n',
    );
    const fileOnly = resolveOptions(SERVER_OPTIONS, { cwd });
    expect(fileOnly.values).toMatchObject({ dir: '/srv/kelp', 'master.port': 2001, 'volume.port': 3001 });
    const env = { KELP_MASTER_PORT: '2002', KELP_VOLUME_PORT: '3002' };
    expect(resolveOptions(SERVER_OPTIONS, { cwd, env }).values).toMatchObject({
      'master.port': 2002,
      'volume.port': 3002,
    });
    const flags = { 'master.port': '2003' };
    expect(resolveOptions(SERVER_OPTIONS, { cwd, env, flags }).values).toMatchObject({
      'master.port': 2003,
      'volume.port': 3002,
    });
  });

  it('takes the signing key from [jwt.signing] key, then KELP_JWT_SIGNING_KEY, never from a flag', () => {
    const cwd = dirWith('[jwt.signing]\nkey = "from-file"\n');
    expect(resolveOptions(VOLUME_OPTIONS, { cwd }).values.signingKey).toBe('from-file');
    const env = { KELP_JWT_SIGNING_KEY: 'from-env' };
    expect(resolveOptions(MASTER_OPTIONS, { cwd, env }).values.signingKey).toBe('from-env');
    expect(resolveOptions(MASTER_OPTIONS, { cwd, flags: { signingKey: 'x' } }).values.signingKey).toBe(
      'from-file',
    );
    expect(resolveOptions(MASTER_OPTIONS, { cwd: dirWith() }).values.signingKey).toBeUndefined();
    for (const schema of Object.values(COMMAND_OPTIONS)) {
      for (const o of Object.values(schema)) expect(o.flag ?? '').not.toMatch(/key|secret|jwt/i);
    }
  });
});

describe('the config file', () => {
  it('is ./kelp.toml when present, or --config FILE, or KELP_CONFIG; --config wins', () => {
    const cwd = dirWith('[volume]\nrack = "cwd"\n');
    writeFileSync(join(cwd, 'other.toml'), '[volume]\nrack = "other"\n');
    writeFileSync(join(cwd, 'third.toml'), '[volume]\nrack = "third"\n');
    expect(resolveOptions(VOLUME_OPTIONS, { cwd }).values.rack).toBe('cwd');
    expect(resolveOptions(VOLUME_OPTIONS, { cwd, configFile: 'other.toml' }).values.rack).toBe('other');
    const env = { KELP_CONFIG: 'third.toml' };
    expect(resolveOptions(VOLUME_OPTIONS, { cwd, env }).values.rack).toBe('third');
    expect(resolveOptions(VOLUME_OPTIONS, { cwd, env, configFile: 'other.toml' }).values.rack).toBe('other');
    expect(resolveOptions(VOLUME_OPTIONS, { cwd, configFile: 'other.toml' }).configFile).toBe(
      join(cwd, 'other.toml'),
    );
  });

  it('must exist when named', () => {
    const cwd = dirWith();
    expect(configError(() => resolveOptions(VOLUME_OPTIONS, { cwd, configFile: 'nope.toml' }))).toMatch(
      /nope\.toml does not exist/,
    );
  });

  it('refuses an unknown key, naming it and its section', () => {
    const cwd = dirWith('[master]\nport = 1\nprot = 2\n');
    const msg = configError(() => resolveOptions(MASTER_OPTIONS, { cwd }));
    expect(msg).toContain('unknown key "prot" in [master]');
    expect(msg).toContain('known there: port, ip');
  });

  it('refuses an unknown section and a typo in a section another command reads', () => {
    expect(
      configError(() => resolveOptions(MASTER_OPTIONS, { cwd: dirWith('[mastr]\nport = 1\n') })),
    ).toContain('unknown key "port" in [mastr]');
    expect(
      configError(() => resolveOptions(MASTER_OPTIONS, { cwd: dirWith('[volume]\ndatacenter = "x"\n') })),
    ).toContain('unknown key "datacenter" in [volume]');
    expect(configError(() => resolveOptions(MASTER_OPTIONS, { cwd: dirWith('port = 1\n') }))).toContain(
      'unknown key "port"',
    );
    expect(
      configError(() => resolveOptions(SERVER_OPTIONS, { cwd: dirWith('[server.master]\nrack = "r"\n') })),
    ).toContain('unknown key "rack" in [server.master]');
  });

  it('names the file and key of a value of the wrong type or range', () => {
    const cwd = dirWith('[master]\nport = "x"\n');
    const msg = configError(() => resolveOptions(MASTER_OPTIONS, { cwd }));
    expect(msg).toContain(join(cwd, 'kelp.toml'));
    expect(msg).toContain('"port" in [master]: must be an integer 0-65535');
    expect(
      configError(() => resolveOptions(MASTER_OPTIONS, { cwd: dirWith('[master]\nport = 70000\n') })),
    ).toContain('must be an integer 0-65535');
  });

  it('reports TOML syntax errors with the file name', () => {
    const cwd = dirWith('[master\nport = 1\n');
    expect(configError(() => resolveOptions(MASTER_OPTIONS, { cwd }))).toContain(join(cwd, 'kelp.toml'));
  });

  it('takes lists as TOML arrays or comma-separated strings', () => {
    const cwd = dirWith('[volume]\ndir = ["/a", "/b"]\nmax = [2, 3]\n');
    expect(resolveOptions(VOLUME_OPTIONS, { cwd }).values).toMatchObject({ dir: ['/a', '/b'], max: [2, 3] });
    const env = { KELP_DIR: '/c, /d', KELP_MAX: '4' };
    expect(resolveOptions(VOLUME_OPTIONS, { cwd, env }).values).toMatchObject({
      dir: ['/c', '/d'],
      max: [4],
    });
  });
});

describe('values', () => {
  it('names the flag or env var of a bad value', () => {
    const cwd = dirWith();
    expect(configError(() => resolveOptions(MASTER_OPTIONS, { cwd, flags: { port: '99999' } }))).toBe(
      '--port: must be an integer 0-65535',
    );
    expect(configError(() => resolveOptions(VOLUME_OPTIONS, { cwd, env: { KELP_FSYNC: 'sometimes' } }))).toBe(
      'KELP_FSYNC: must be one of batch, always, never',
    );
    expect(
      configError(() => resolveOptions(MASTER_OPTIONS, { cwd, flags: { defaultReplication: '3x0' } })),
    ).toMatch(/^--defaultReplication: /);
    expect(configError(() => resolveOptions(UPLOAD_OPTIONS, { cwd, flags: { ttl: '5q' } }))).toMatch(
      /^--ttl: /,
    );
    expect(configError(() => resolveOptions(VOLUME_OPTIONS, { cwd, flags: { master: 'nohost' } }))).toBe(
      '--master: must be HOST:PORT',
    );
  });

  it('normalises: http:// on a master address, TTL and placement forms', () => {
    const cwd = dirWith();
    const r = resolveOptions(UPLOAD_OPTIONS, {
      cwd,
      flags: { master: 'http://127.0.0.1:9444/', replication: '001', ttl: '3d' },
    });
    expect(r.values).toEqual({ master: '127.0.0.1:9444', collection: '', replication: '001', ttl: '3d' });
    expect(resolveOptions(VOLUME_OPTIONS, { cwd, flags: { master: '' } }).values.master).toBe('');
  });
});

describe('naming rule', () => {
  it('derives env vars from flag names: KELP_ + UPPER_SNAKE, dots to underscores', () => {
    expect(envName('port')).toBe('KELP_PORT');
    expect(envName('volumeSizeLimitMB')).toBe('KELP_VOLUME_SIZE_LIMIT_MB');
    expect(envName('dataCenter')).toBe('KELP_DATA_CENTER');
    expect(envName('master.pulseSeconds')).toBe('KELP_MASTER_PULSE_SECONDS');
    expect(VOLUME_OPTIONS.master.env).toBe('KELP_MASTER');
    expect(VOLUME_OPTIONS.dir.env).toBe('KELP_DIR');
    expect(SERVER_OPTIONS['volume.publicUrl'].toml).toBe('server.volume.publicUrl');
    for (const schema of Object.values(COMMAND_OPTIONS)) {
      for (const o of Object.values(schema)) if (o.flag) expect(o.env).toBe(envName(o.flag));
    }
  });
});

describe('kelp server', () => {
  it('keeps master state in DIR/master and volumes in DIR unless told otherwise', () => {
    const cwd = dirWith();
    const { values } = resolveOptions(SERVER_OPTIONS, { cwd, flags: { dir: '/srv/kelp' } });
    const c = serverConfigs(values);
    expect(c.master.mdir).toBe('/srv/kelp/master');
    expect(c.volume.locations).toEqual([{ dir: '/srv/kelp', maxVolumes: 8 }]);
    const moved = serverConfigs(
      resolveOptions(SERVER_OPTIONS, { cwd, flags: { 'master.mdir': '/m' } }).values,
    );
    expect(moved.master.mdir).toBe('/m');
  });
});

describe('[resize]', () => {
  const toml = `
[resize]
maxSourcePixels = 1000000
maxSide = 2000
concurrency = 3
maxQueue = 0
timeoutSeconds = 4
signingKey = "resize-secret"

[resize.presets.thumb]
width = 50
height = 50
mode = "cover"

[resize.presets.card]
width = 640
format = "webp"
quality = 80
`;

  it('is read by kelp volume and kelp server into the read config, presets as a table of tables', () => {
    const cwd = dirWith(toml);
    for (const read of [
      volumeConfig(resolveOptions(VOLUME_OPTIONS, { cwd }).values).read!,
      serverConfigs(resolveOptions(SERVER_OPTIONS, { cwd }).values).volume.read,
    ]) {
      expect(read.resizer!.config).toMatchObject({
        maxSourcePixels: 1_000_000,
        concurrency: 3,
        maxQueue: 0,
        timeoutSeconds: 4,
      });
      expect(read.resizeLimits).toEqual({
        maxSide: 2000,
        presets: {
          thumb: { width: 50, height: 50, mode: 'fill' },
          card: { width: 640, format: 'webp', quality: 80 },
        },
      });
      expect(read.resizeSigningKey).toBe('resize-secret');
    }
  });

  it('has defaults, flags and env vars (KELP_RESIZE_*), but no flag for the signing key or presets', () => {
    const cwd = dirWith();
    const d = volumeConfig(resolveOptions(VOLUME_OPTIONS, { cwd }).values).read!;
    expect(d.resizer!.config).toMatchObject({ maxSourcePixels: 50_000_000, concurrency: 2, maxQueue: 64 });
    expect(d.resizeLimits).toEqual({ maxSide: 4096, presets: {} });
    expect(d.resizeSigningKey).toBeUndefined();
    const { values } = resolveOptions(VOLUME_OPTIONS, {
      cwd: dirWith(toml),
      env: {
        KELP_RESIZE_MAX_SIDE: '1500',
        KELP_RESIZE_SIGNING_KEY: 'from-env',
        KELP_RESIZE_PRESETS: '{"tiny":{"width":10}}',
      },
      flags: { 'resize.maxSide': '1200' },
    });
    expect(values['resize.maxSide']).toBe(1200);
    expect(values['resize.signingKey']).toBe('from-env');
    expect(values['resize.presets']).toEqual({ tiny: { width: 10 } });
    expect(VOLUME_OPTIONS['resize.signingKey'].flag).toBeUndefined();
    expect(VOLUME_OPTIONS['resize.presets'].flag).toBeUndefined();
    expect(SERVER_OPTIONS['resize.maxSide'].env).toBe('KELP_RESIZE_MAX_SIDE');
    expect(SERVER_OPTIONS['resize.maxSide'].toml).toBe('resize.maxSide');
  });

  it('refuses bad presets and unknown [resize] keys, naming them', () => {
    expect(
      configError(() => resolveOptions(VOLUME_OPTIONS, { cwd: dirWith('[resize.presets.x]\nwidth = 0\n') })),
    ).toMatch(/preset "x": width must be 1\.\.4096/);
    expect(
      configError(() => resolveOptions(VOLUME_OPTIONS, { cwd: dirWith('[resize.presets.x]\nwidht = 10\n') })),
    ).toMatch(/preset "x": unknown key "widht"/);
    expect(
      configError(() => resolveOptions(VOLUME_OPTIONS, { cwd: dirWith('[resize]\nmaxSid = 10\n') })),
    ).toMatch(/unknown key "maxSid" in \[resize\]/);
    expect(
      configError(() =>
        resolveOptions(VOLUME_OPTIONS, { cwd: dirWith(), env: { KELP_RESIZE_PRESETS: 'not json' } }),
      ),
    ).toMatch(/KELP_RESIZE_PRESETS: must be a JSON object/);
  });
});
