/**
 * `kelp server` as a child process on free ports, driven by `kelp upload` and
 * `kelp download` as further child processes; `kelp master` picking its port
 * from kelp.toml, KELP_PORT and --port; clean exits on SIGINT and SIGTERM.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, removeTempDirs, runKelp, type Started, startKelp, tempDir } from './harness.ts';

afterAll(removeTempDirs);

describe('kelp server + upload + download', () => {
  let server: Started;
  let master: string;
  let work: string;

  beforeAll(async () => {
    work = tempDir();
    const [masterPort, volumePort] = [await freePort(), await freePort()];
    server = await startKelp(
      [
        'server',
        '--dir',
        join(work, 'data'),
        '--master.port',
        `${masterPort}`,
        '--volume.port',
        `${volumePort}`,
      ],
      2,
    );
    master = `127.0.0.1:${masterPort}`;
    expect(server.urls).toEqual([`http://${master}`, `http://127.0.0.1:${volumePort}`]);
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('uploads files and downloads them back byte-identical (to a file and to stdout)', async () => {
    const big = join(work, 'blob.bin');
    const small = join(work, 'hello.txt');
    const bytes = randomBytes(200_000);
    writeFileSync(big, bytes);
    writeFileSync(small, 'hello kelp\n');

    const up = await runKelp(['upload', '--master', master, big, small]);
    expect(up.code, up.stderr).toBe(0);
    const lines = up.stdout
      .toString()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { fileName: string; fid: string; fileUrl: string; size: number });
    expect(lines).toHaveLength(2);
    expect(lines[0]).toEqual({
      fileName: 'blob.bin',
      fid: expect.stringMatching(/^\d+,[0-9a-f]{9,}$/),
      fileUrl: expect.stringContaining(lines[0]!.fid),
      size: 200_000,
    });
    expect(lines[1]).toMatchObject({ fileName: 'hello.txt', size: 11 });

    const out = join(work, 'back.bin');
    const down = await runKelp(['download', lines[0]!.fid, '--master', master, '-o', out]);
    expect(down.code, down.stderr).toBe(0);
    expect(readFileSync(out).equals(bytes)).toBe(true);

    const toStdout = await runKelp(['download', lines[1]!.fid], { env: { KELP_MASTER: master } });
    expect(toStdout.code, toStdout.stderr).toBe(0);
    expect(toStdout.stdout.toString()).toBe('hello kelp\n');
  });

  it('takes the master from kelp.toml [client] in the working directory', async () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, 'kelp.toml'), `[client]\nmaster = "${master}"\n`);
    writeFileSync(join(cwd, 'a.txt'), 'from toml');
    const up = await runKelp(['upload', 'a.txt'], { cwd });
    expect(up.code, up.stderr).toBe(0);
    const { fid } = JSON.parse(up.stdout.toString()) as { fid: string };
    const down = await runKelp(['download', fid], { cwd });
    expect(down.stdout.toString()).toBe('from toml');
  });

  it('fails clearly: a missing file, an unknown fid, a master that is down', async () => {
    const missing = await runKelp(['upload', '--master', master, join(work, 'nope')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('not a file');

    const unknown = await runKelp(['download', '--master', master, '4242,01637037d6']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('404');

    const down = await runKelp(['download', '--master', `127.0.0.1:${await freePort()}`, '3,01637037d6']);
    expect(down.code).toBe(1);
    expect(down.stderr).toContain('ECONNREFUSED');
  });
});

describe('server processes', () => {
  it('kelp master takes its port from kelp.toml < KELP_PORT < --port', async () => {
    const cwd = tempDir();
    const [a, b, c] = [await freePort(), await freePort(), await freePort()];
    writeFileSync(join(cwd, 'kelp.toml'), `[master]\nport = ${a}\nmdir = "m"\n`);
    const cases: Array<[string[], Record<string, string>, number]> = [
      [[], {}, a],
      [[], { KELP_PORT: `${b}` }, b],
      [['--port', `${c}`], { KELP_PORT: `${b}` }, c],
    ];
    for (const [args, env, port] of cases) {
      const m = await startKelp(['master', ...args], 1, { cwd, env });
      expect(m.urls[0]).toBe(`http://127.0.0.1:${port}`);
      expect(m.output()).toContain(`state in ${join(cwd, 'm')}`);
      expect(await m.stop('SIGINT')).toBe(0);
    }
  });

  it('kelp volume stops cleanly on SIGTERM, kelp server on SIGINT', async () => {
    const volume = await startKelp(['volume', '--port', '0', '--dir', tempDir(), '--master', ''], 1);
    expect(volume.output()).toContain('no master');
    expect(await volume.stop('SIGTERM')).toBe(0);
    const server = await startKelp(
      ['server', '--dir', tempDir(), '--master.port', '0', '--volume.port', '0'],
      2,
    );
    expect(await server.stop('SIGINT')).toBe(0);
  });

  it('refuses a kelp.toml with an unknown key before starting anything (exit 2)', async () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, 'kelp.toml'), '[volume]\nmaxVolumes = 3\n');
    const r = await runKelp(['volume', '--port', '0'], { cwd });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown key "maxVolumes" in [volume]');
  });
});

describe('a secured kelp server (signing key from kelp.toml)', () => {
  it('upload passes the write token from the assign; writes without one get 401; the key is not in argv', async () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, 'kelp.toml'), '[jwt.signing]\nkey = "test-signing-key"\n');
    const server = await startKelp(
      ['server', '--dir', 'data', '--master.port', '0', '--volume.port', '0'],
      2,
      {
        cwd,
      },
    );
    try {
      expect(server.output()).toContain('writes need a signed token');
      expect(server.child.spawnargs.join(' ')).not.toContain('test-signing-key');
      const [masterUrl, volumeUrl] = server.urls as [string, string];
      const master = masterUrl.replace('http://', '');
      writeFileSync(join(cwd, 'secret.txt'), 'guarded');
      const up = await runKelp(['upload', '--master', master, 'secret.txt'], { cwd });
      expect(up.code, up.stderr).toBe(0);
      const { fid } = JSON.parse(up.stdout.toString()) as { fid: string };
      const down = await runKelp(['download', '--master', master, fid], { cwd });
      expect(down.stdout.toString()).toBe('guarded');

      const assigned = (await (await fetch(`${masterUrl}/dir/assign`)).json()) as { fid: string };
      const form = new FormData();
      form.append('file', new Blob(['no token']), 'x.txt');
      const res = await fetch(`${volumeUrl}/${assigned.fid}`, { method: 'POST', body: form });
      expect(res.status).toBe(401);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});
