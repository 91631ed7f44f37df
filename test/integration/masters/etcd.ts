/**
 * A real etcd cluster for the several-masters tests: Debian's `etcd-server`
 * (which `npm test`'s global setup installs when missing), three members on
 * 127.0.0.1 with fresh data directories and free ports. Members can be
 * killed (SIGKILL) and started again on the same data; `stop()` ends every
 * process this file started and removes the data.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../support/ports.ts';

export const ETCD_BIN = '/usr/bin/etcd';
/** How long a member may take to answer /health after it starts. */
const READY_TIMEOUT_MS = 20_000;
/** Starts of a cluster tried before giving up, when a port picked free was taken before etcd bound it. */
const START_ATTEMPTS = 3;
/** What etcd says when another process took a port between freePort() and its bind. */
const PORT_TAKEN = /address already in use/;

/**
 * etcd must be there: `npm test` installs Debian's etcd-server when it is
 * missing (test/support/system-packages.ts); a bench run outside it says how.
 */
function requireEtcd(): void {
  if (existsSync(ETCD_BIN)) return;
  throw new Error(
    `${ETCD_BIN} not found: npm test installs it (test/support/system-packages.ts), or as root: apt-get install -y etcd-server`,
  );
}

export { freePort };

export interface EtcdMember {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  child: ChildProcess | undefined;
}

export interface EtcdCluster {
  /** host:port of each member's client URL. */
  endpoints: string[];
  members: EtcdMember[];
  /** SIGKILL member i and wait for it to be gone. */
  kill(i: number): Promise<void>;
  /** Start member i again on its data directory; resolves once it is healthy. */
  restart(i: number): Promise<void>;
  /** Kill every member (SIGKILL: etcd needs no clean stop) and remove the data. */
  stop(): Promise<void>;
  /** Index of the member that is etcd's raft leader now. */
  leaderIndex(): Promise<number>;
  /** Whether member i answers and names a leader other than member `lost` (false while it cannot tell). */
  knowsLeaderOtherThan(i: number, lost: number): Promise<boolean>;
}

/** A member's id and the id of the leader it knows (etcd's v3 JSON gateway). */
async function memberStatus(port: number): Promise<{ id: string; leader: string }> {
  const res = await fetch(`http://127.0.0.1:${port}/v3/maintenance/status`, {
    method: 'POST',
    body: '{}',
    signal: AbortSignal.timeout(2_000),
  });
  const body = (await res.json()) as { header: { member_id: string }; leader: string };
  return { id: body.header.member_id, leader: body.leader };
}

async function healthy(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(1_000) });
    const body = (await res.json()) as { health?: string };
    return body.health === 'true';
  } catch {
    return false;
  }
}

async function waitHealthy(ports: number[], output: () => string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const ok = await Promise.all(ports.map(healthy));
    if (ok.every(Boolean)) return;
    // A member that could not bind has exited: no need to wait out the deadline.
    if (Date.now() > deadline || PORT_TAKEN.test(output())) {
      throw new Error(`etcd did not become healthy:\n${output().slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Three (or `size`) etcd members on loopback, healthy. Ports are picked free
 * and then bound by etcd, so another process on the machine can take one in
 * between: that start is stopped and tried again on new ports.
 */
export async function startEtcdCluster(size = 3): Promise<EtcdCluster> {
  requireEtcd();
  for (let attempt = 1; ; attempt++) {
    try {
      return await startEtcdClusterOnce(size);
    } catch (err) {
      if (attempt >= START_ATTEMPTS || !PORT_TAKEN.test((err as Error).message)) throw err;
    }
  }
}

async function startEtcdClusterOnce(size: number): Promise<EtcdCluster> {
  const root = mkdtempSync(join(tmpdir(), 'kelp-etcd-'));
  const token = `kelp-test-${process.pid}-${Date.now()}`;
  const members: EtcdMember[] = [];
  for (let i = 0; i < size; i++) {
    members.push({
      name: `e${i}`,
      clientPort: await freePort(),
      peerPort: await freePort(),
      dataDir: join(root, `e${i}`),
      child: undefined,
    });
  }
  const initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(',');
  let out = '';
  const launch = (m: EtcdMember) => {
    const child = spawn(
      ETCD_BIN,
      [
        '--name',
        m.name,
        '--data-dir',
        m.dataDir,
        '--listen-client-urls',
        `http://127.0.0.1:${m.clientPort}`,
        '--advertise-client-urls',
        `http://127.0.0.1:${m.clientPort}`,
        '--listen-peer-urls',
        `http://127.0.0.1:${m.peerPort}`,
        '--initial-advertise-peer-urls',
        `http://127.0.0.1:${m.peerPort}`,
        '--initial-cluster',
        initialCluster,
        '--initial-cluster-state',
        'new',
        '--initial-cluster-token',
        token,
        '--logger',
        'zap',
        '--log-level',
        'error',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (s: string) => {
      out = (out + s).slice(-20_000);
    });
    m.child = child;
  };
  const kill = async (m: EtcdMember) => {
    const child = m.child;
    m.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  };
  const stop = async () => {
    await Promise.all(members.map(kill));
    rmSync(root, { recursive: true, force: true });
  };
  for (const m of members) launch(m);
  try {
    await waitHealthy(
      members.map((m) => m.clientPort),
      () => out,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  /** Member ids by index, as last read (a killed member's is needed after it is gone). */
  const ids = new Map<number, string>();
  return {
    endpoints: members.map((m) => `127.0.0.1:${m.clientPort}`),
    members,
    kill: (i) => kill(members[i]!),
    async restart(i) {
      const m = members[i]!;
      await kill(m);
      launch(m);
      await waitHealthy([m.clientPort], () => out);
    },
    stop,
    async leaderIndex() {
      const all = await Promise.all(members.map((m) => memberStatus(m.clientPort)));
      const i = all.findIndex((s) => s.id === all[0]!.leader);
      if (i < 0) throw new Error('no etcd member is the leader');
      for (const [j, st] of all.entries()) ids.set(j, st.id);
      return i;
    },
    async knowsLeaderOtherThan(i, lost) {
      try {
        const st = await memberStatus(members[i]!.clientPort);
        return st.leader !== undefined && st.leader !== '0' && st.leader !== ids.get(lost);
      } catch {
        return false;
      }
    },
  };
}
