/**
 * The tiering service and `kelp tier` against a real master and volume server
 * (in-process, on 127.0.0.1) with the embedded local.default backend: a sealed
 * volume shows up in `kelp tier plan` with its reason, the service tiers it,
 * reads still work, heat brings it back; then `kelp tier upload / status /
 * download` as child processes.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MasterServer, startMaster } from '../../../origin/master/server.ts';
import { silentLogger } from '../../../origin/observability/log.ts';
import { startVolumeServer, type VolumeServer } from '../../../origin/volume/server.ts';
import { formatFid } from '../../../shared/fid.ts';
import { TierClient, type VolumeTierStatus } from '../../../tiering/service/client.ts';
import { parseRules, type TierDecision } from '../../../tiering/service/policy.ts';
import { TierService } from '../../../tiering/service/service.ts';
import { captureLogs } from '../../helpers/log-capture.ts';

const CLI = new URL('../../../origin/cli.ts', import.meta.url).pathname;
const BLOBS = 12;
/** Reads per day at which the test's rule stops uploading, and above which it brings a volume back. */
const MAX_READS = 15;
const PROMOTE_ABOVE = 30;

let dir: string;
let master: MasterServer;
let volume: VolumeServer;
let base: string;
let vid: number;
const blobs: { fid: string; bytes: Buffer }[] = [];

function toml(masterAddress: string): string {
  return `
[tier]
master = "${masterAddress}"

[[tier.policy]]
collection = "photos"
backend = "local.default"
minFullPercent = 100
quietFor = "0s"
maxReadsPerDay = ${MAX_READS}
promoteAboveReadsPerDay = ${PROMOTE_ABOVE}
`;
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function tierStatus(): Promise<VolumeTierStatus> {
  return (await (await fetch(`${base}/admin/tier/status?volume=${vid}`)).json()) as VolumeTierStatus;
}

async function readAll(): Promise<void> {
  for (const b of blobs) {
    const res = await fetch(`${base}/${b.fid}`);
    expect(res.status, b.fid).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(b.bytes), b.fid).toBe(true);
  }
}

/** A port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const srv = createServer().listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as AddressInfo;
  srv.close();
  await once(srv, 'close');
  return port;
}

/** `kelp ARGS` in the test's directory (its kelp.toml) to completion. */
async function kelp(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KELP_')));
  const child = spawn(process.execPath, [CLI, ...args], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    stdout += s;
  });
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
  });
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kelp-tier-service-'));
  master = await startMaster({
    host: '127.0.0.1',
    port: 0,
    mdir: join(dir, 'master'),
    pulseSeconds: 1,
    volumeSizeLimitBytes: 64 * 1024 * 1024,
    logger: silentLogger(),
  });
  volume = await startVolumeServer({
    host: '127.0.0.1',
    port: 0,
    locations: [{ dir: join(dir, 'data'), maxVolumes: 8 }],
    master: master.address,
    pulseSeconds: 1,
    logger: silentLogger(),
  });
  base = `http://${volume.address}`;
  writeFileSync(join(dir, 'kelp.toml'), toml(master.address));
  const assigned = await until('an assign', async () => {
    const res = await fetch(`http://${master.address}/dir/assign?collection=photos`, { method: 'POST' });
    return res.ok ? ((await res.json()) as { fid: string }) : undefined;
  });
  vid = Number(assigned.fid.split(',')[0]);
  // Keys far above the sequencer's, all in the assigned volume.
  for (let i = 0; i < BLOBS; i++) {
    const fid = formatFid({ volumeId: vid, key: 1_000_000n + BigInt(i), cookie: 0x1234 + i });
    const bytes = randomBytes(1000 + i * 3000);
    const res = await fetch(`${base}/${fid}`, { method: 'PUT', body: bytes });
    expect(res.status).toBe(201);
    blobs.push({ fid, bytes });
  }
  const sealed = await fetch(`${base}/admin/readonly?volume=${vid}`, { method: 'POST' });
  expect(sealed.status).toBe(200);
});

afterAll(async () => {
  await volume?.close();
  await master?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('kelp tier plan', () => {
  it('shows the sealed volume as the one to upload, with the reason, and why the others stay', async () => {
    const text = await kelp(['tier', 'plan']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(`rules from ${join(dir, 'kelp.toml')}:`);
    expect(text.stdout).toContain('would move 1 of');
    expect(text.stdout).toMatch(
      new RegExp(
        `volume ${vid} \\(photos\\): upload to local\\.default: sealed; last written .* ago, at least quietFor 0s; 0 reads/day, within maxReadsPerDay ${MAX_READS}`,
      ),
    );
    expect(text.stdout).toMatch(/stays: 0% full, under minFullPercent 100% \(and writable\)/);

    const json = await kelp(['tier', 'plan', '--json']);
    expect(json.code, json.stderr).toBe(0);
    const decisions = JSON.parse(json.stdout) as TierDecision[];
    expect(decisions.filter((d) => d.action !== 'none')).toEqual([
      expect.objectContaining({
        volumeId: vid,
        action: 'upload',
        backend: 'local.default',
        keepLocalDat: false,
      }),
    ]);
  });
});

describe('kelp tier serve (the service loop, in-process)', () => {
  it('tiers the sealed volume, keeps reads working, and brings it back once it turns hot', async () => {
    const logs: string[] = [];
    const service = new TierService({
      client: new TierClient(master.address),
      rules: parseRules([
        {
          collection: 'photos',
          backend: 'local.default',
          minFullPercent: 100,
          quietFor: '0s',
          maxReadsPerDay: MAX_READS,
          promoteAboveReadsPerDay: PROMOTE_ABOVE,
        },
      ]),
      intervalMs: 100,
      pollMs: 25,
      logger: captureLogs(logs).logger,
    });
    const abort = new AbortController();
    const running = service.run(abort.signal);
    try {
      const tiered = await until('the upload', async () => {
        const s = await tierStatus();
        return s.remote && s.job?.state === 'done' ? s : undefined;
      });
      expect(tiered.remote).toMatchObject({ backend: 'local.default' });
      expect(existsSync(join(dir, 'data', `photos_${vid}.dat`))).toBe(false);
      expect(logs.join('\n')).toContain(`volume ${vid} (photos): upload to local.default: sealed;`);

      // Reads from the tier: BLOBS reads/day, under MAX_READS: it stays tiered.
      await readAll();
      await new Promise((r) => setTimeout(r, 500));
      expect((await tierStatus()).remote).not.toBeNull();

      // Hot: over PROMOTE_ABOVE reads/day brings it back, byte-identical.
      await readAll();
      await readAll();
      // Done as the service saw it, not only detached: the job then still removes the object (and its
      // index and deletion set), and the service logs the move once its poll sees the end.
      await until('the download', async () =>
        logs.some((l) => / download done \(/.test(l)) && (await tierStatus()).remote === null
          ? true
          : undefined,
      );
      expect(existsSync(join(dir, 'data', `photos_${vid}.dat`))).toBe(true);
      await readAll();
      expect(logs.join('\n')).toMatch(
        new RegExp(
          `volume ${vid} \\(photos\\): download from local\\.default: tiered to local\\.default and hot: \\d+ reads/day, over promoteAboveReadsPerDay ${PROMOTE_ABOVE}`,
        ),
      );
      // Hot and local, the volume stays: the service goes idle rather than flapping. (The download's
      // own "done" line comes once its job has ended, after the remote copy is deleted: wait for it.)
      const moves = () => logs.filter((l) => / done \(/.test(l)).length;
      await until('the download to be logged as done', async () =>
        logs.some((l) => /: download done \(/.test(l)) ? true : undefined,
      );
      const before = moves();
      await new Promise((r) => setTimeout(r, 500));
      expect(moves()).toBe(before);
      expect((await tierStatus()).remote).toBeNull();
    } finally {
      abort.abort();
      await running;
    }
  });

  it('a restarted service skips what is already where the policy wants it', async () => {
    // A download makes a volume under the size limit writable again (origin/volume/volume.ts): seal it anew.
    expect((await fetch(`${base}/admin/readonly?volume=${vid}`, { method: 'POST' })).status).toBe(200);
    const service = new TierService({
      client: new TierClient(master.address),
      rules: parseRules([
        { collection: 'photos', backend: 'local.default', minFullPercent: 100, quietFor: '0s' },
      ]),
      intervalMs: 100,
      pollMs: 25,
      logger: silentLogger(),
    });
    expect((await service.round()).kind).toBe('moved');
    const key = (await tierStatus()).remote?.key;
    expect(key).toBeDefined();
    // A new service (a restart): the tiered volume is left alone, its object untouched.
    const restarted = new TierService({
      client: new TierClient(master.address),
      rules: parseRules([
        { collection: 'photos', backend: 'local.default', minFullPercent: 100, quietFor: '0s' },
      ]),
      intervalMs: 100,
      logger: silentLogger(),
    });
    expect(await restarted.round()).toEqual({ kind: 'idle' });
    expect((await tierStatus()).remote?.key).toBe(key);
    await readAll();
  });
});

describe('kelp tier upload / status / download (child processes)', () => {
  it('download brings the volume back, upload tiers it, status shows each state', async () => {
    // Left tiered by the test above.
    const down = await kelp(['tier', 'download', '--volume', String(vid)]);
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout).toMatch(
      new RegExp(`volume ${vid} on ${volume.address}: download from local\\.default done \\(.* in .* s\\)`),
    );
    expect((await tierStatus()).remote).toBeNull();
    await readAll();

    const again = await kelp(['tier', 'download', '--volume', String(vid)]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('not tiered; nothing to do');

    const local = await kelp(['tier', 'status']);
    expect(local.code, local.stderr).toBe(0);
    expect(local.stdout).toMatch(
      /^VOLUME\s+COLLECTION\s+SIZE\s+SEALED\s+ORIGIN READS\/DAY\s+EDGE READS\/DAY\s+LAST WRITE\s+TIER\s+SERVERS$/m,
    );
    expect(local.stdout).toMatch(
      new RegExp(
        `^${vid}\\s+photos\\s+[\\d.]+ KiB\\s+\\w+\\s+\\d+\\s+\\d+\\s+.+ago\\s+local\\s+${volume.address}$`,
        'm',
      ),
    );
    // Not a terminal: no bar, no escape sequence.
    expect(local.stdout + local.stderr).not.toContain('\u001b[');

    const up = await kelp([
      'tier',
      'upload',
      '--volume',
      String(vid),
      '--backend',
      'local.default',
      '--master',
      master.address,
    ]);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toMatch(
      new RegExp(`volume ${vid} on ${volume.address}: upload to local\\.default done`),
    );
    expect((await tierStatus()).remote).toMatchObject({ backend: 'local.default' });
    await readAll();

    const tiered = await kelp(['tier', 'status', '--once']);
    expect(tiered.stdout).toMatch(
      new RegExp(`^${vid}\\s+photos\\s+.*\\s+yes\\s+.*local\\.default\\s+${volume.address}$`, 'm'),
    );
    const json = await kelp(['tier', 'status', '--json']);
    const snapshot = JSON.parse(json.stdout) as {
      volumes: { id: number; remote?: string; replicas: unknown[] }[];
    };
    expect(snapshot.volumes.find((v) => v.id === vid)).toMatchObject({
      remote: 'local.default',
      replicas: [expect.objectContaining({ server: volume.address, remote: 'local.default' })],
    });

    const back = await kelp(['tier', 'download', '--volume', String(vid)]);
    expect(back.code, back.stderr).toBe(0);
    expect((await tierStatus()).remote).toBeNull();
    await readAll();
  });

  it('kelp tier serve runs rounds as a child process, logs its decisions, and stops on SIGTERM', async () => {
    // The volume is local and writable now (downloaded above): the policy leaves it, so --once exits at once.
    const oneShot = await kelp(['tier', 'serve', '--once', '--interval', '0.2s']);
    expect(oneShot.code, oneShot.stderr).toBe(0);
    // Not a terminal: one JSON object per line, the service's own lines marked as its component.
    const lines = messages(oneShot.stdout);
    expect(lines).toContainEqual(expect.objectContaining({ component: 'tier-service', level: 'info' }));
    const oneShotSaid = lines.map((l) => l.msg).join('\n');
    expect(oneShotSaid).toMatch(/^\d+ volumes, 0 to move$/m);
    expect(oneShotSaid).toMatch(new RegExp(`^volume ${vid} \\(photos\\): stays: `, 'm'));

    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KELP_')));
    const child = spawn(process.execPath, [CLI, 'tier', 'serve', '--interval', '0.2s', '--port', '0'], {
      cwd: dir,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (x: string) => {
      out += x;
    });
    child.stderr.setEncoding('utf8').on('data', (x: string) => {
      out += x;
    });
    const exited = once(child, 'exit');
    await until('the first round', async () => (/to move"/m.test(out) ? true : undefined));
    const said = () =>
      messages(out)
        .map((l) => l.msg)
        .join('\n');
    expect(said()).toContain(`kelp tier serve: master ${master.address}, a round every 200ms when idle`);
    expect(said()).toContain(`rules from ${join(dir, 'kelp.toml')}:`);
    expect(said()).toContain(
      `collection "photos" -> local.default: minFullPercent 100 (or sealed), quietFor 0s, maxReadsPerDay ${MAX_READS}, promoteAboveReadsPerDay ${PROMOTE_ABOVE}`,
    );
    child.kill('SIGTERM');
    const [code] = (await exited) as [number | null];
    expect(code, out).toBe(0);
    expect(said()).toContain('kelp tier serve: stopped');
  });

  it('fails with a reason: unknown volume, unknown backend, bad flags', async () => {
    const missing = await kelp(['tier', 'upload', '--volume', '4000', '--backend', 'local.default']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('kelp: volume 4000: the master knows no live server holding it');

    const nope = await kelp(['tier', 'upload', '--volume', String(vid), '--backend', 's3.nope']);
    expect(nope.code).toBe(1);
    expect(nope.stderr).toMatch(/no backend "s3\.nope" here \(configured: local\.default\)/);
    expect((await tierStatus()).remote).toBeNull();

    const bad = await kelp(['tier', 'download', '--volume', 'seven']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--volume: volume id "seven" is not a decimal u32');

    const none = await kelp(['tier', 'upload', '--volume', '1']);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toContain("required option '--backend <type.id>' not specified");

    const port = await closedPort();
    const down = await kelp(['tier', 'status', '--master', `127.0.0.1:${port}`]);
    expect(down.code).toBe(1);
    expect(down.stderr).toBe(`kelp: GET http://127.0.0.1:${port}/vol/status: ECONNREFUSED\n`);
  });
});

/** The JSON log lines of a process's output (other lines, e.g. from wrangler, are skipped). */
function messages(out: string): Array<{ msg: string; level: string; component?: string }> {
  return out
    .split('\n')
    .filter((l) => l.startsWith('{') && l.endsWith('}'))
    .map((l) => JSON.parse(l) as { msg: string; level: string; component?: string });
}
