/**
 * A one-node Ceph cluster (monitor, memstore OSD) with the RADOS Gateway in
 * front: the S3 implementation production clusters run, from Debian's
 * packages. ceph-rgw.sh beside this file builds it in a temp dir on free
 * ports; `stop()` ends the daemons by the pids they wrote. About 15 s to start
 * and 300 MB of RAM, so a test file starts one and shares it.
 *
 * Missing packages are a failure, not a skip: CI installs them (.ci/run), and
 * an S3 suite that silently skipped would hide a missing install step.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../support/ports.ts';
import { onPath } from '../support/system-packages.ts';

export const CEPH_APT_PACKAGES = ['ceph-mon', 'ceph-osd', 'radosgw'];
const BINARIES = ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'ceph', 'ceph-authtool', 'monmaptool'];
const START_TIMEOUT_MS = 90_000;
const SCRIPT = new URL('./ceph-rgw.sh', import.meta.url).pathname;

export interface CephRgw {
  readonly endpoint: string;
  readonly host: string;
  readonly port: number;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** The daemons' pids (mon, osd, rgw), for what they cost in CPU. */
  pids(): number[];
  stop(): Promise<void>;
}

export function assertCephInstalled(): void {
  const missing = BINARIES.filter((b) => !onPath(b));
  if (missing.length > 0) {
    throw new Error(
      `Ceph RGW is needed for the S3 tier tests and is not installed (missing: ${missing.join(', ')}). ` +
        `Install it with: apt-get update && apt-get install -y --no-install-recommends ${CEPH_APT_PACKAGES.join(' ')} ` +
        '(.ci/run does this).',
    );
  }
}

export { freePort };

function daemonPids(dir: string): number[] {
  try {
    return readdirSync(join(dir, 'run'))
      .filter((f) => f.endsWith('.pid'))
      .map((f) => Number(readFileSync(join(dir, 'run', f), 'utf8').trim()))
      .filter((pid) => Number.isInteger(pid) && pid > 0);
  } catch {
    return [];
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function killAll(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {}
  }
}

async function stopDaemons(dir: string): Promise<void> {
  const pids = daemonPids(dir);
  killAll(pids, 'SIGTERM');
  const deadline = Date.now() + 2_000;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  killAll(pids.filter(alive), 'SIGKILL');
}

export interface CephRgwOptions {
  /** The memstore OSD's capacity (held in RAM); 1 GiB unless a caller stores more (benches). */
  memstoreBytes?: number;
}

/** Starts tried: the ports are picked free before the daemons bind them, so another process can take one. */
const START_ATTEMPTS = 2;

/** A Ceph RGW on loopback; a start that fails (a port taken in between) is tried once more on new ports. */
export async function startCephRgw(opts: CephRgwOptions = {}): Promise<CephRgw> {
  assertCephInstalled();
  for (let attempt = 1; ; attempt++) {
    try {
      return await startCephRgwOnce(opts);
    } catch (err) {
      if (attempt >= START_ATTEMPTS) throw err;
    }
  }
}

async function startCephRgwOnce(opts: CephRgwOptions): Promise<CephRgw> {
  const root = await mkdtemp(join(tmpdir(), 'kelp-ceph-'));
  const dir = join(root, 'ceph');
  const [port, monPort] = [await freePort(), await freePort()];
  const accessKeyId = 'KELPTESTKEY';
  const secretAccessKey = `kelp-test-secret-${Math.random().toString(36).slice(2)}`;
  // If the test process dies without its afterAll, do not leave daemons behind.
  const onExit = () => killAll(daemonPids(dir), 'SIGKILL');
  process.once('exit', onExit);
  try {
    await new Promise<void>((resolve, reject) => {
      execFile(
        'bash',
        [SCRIPT],
        {
          env: {
            ...process.env,
            PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin`,
            D: dir,
            PORT: String(port),
            MON_PORT: String(monPort),
            ACCESS_KEY: accessKeyId,
            SECRET_KEY: secretAccessKey,
            ...(opts.memstoreBytes ? { MEMSTORE_BYTES: String(opts.memstoreBytes) } : {}),
          },
          timeout: START_TIMEOUT_MS,
        },
        (err, stdout, stderr) => {
          if (err || !/^READY /m.test(stdout)) {
            let log = '';
            try {
              log = readFileSync(join(dir, 'log', 'client.rgw.local.log'), 'utf8').slice(-2000);
            } catch {}
            reject(new Error(`Ceph RGW did not start: ${err?.message ?? ''}\n${stdout}\n${stderr}\n${log}`));
          } else resolve();
        },
      );
    });
  } catch (err) {
    await stopDaemons(dir);
    process.off('exit', onExit);
    await rm(root, { recursive: true, force: true });
    throw err;
  }
  return {
    endpoint: `http://127.0.0.1:${port}`,
    host: '127.0.0.1',
    port,
    accessKeyId,
    secretAccessKey,
    pids: () => daemonPids(dir),
    async stop() {
      await stopDaemons(dir);
      process.off('exit', onExit);
      await rm(root, { recursive: true, force: true });
    },
  };
}
