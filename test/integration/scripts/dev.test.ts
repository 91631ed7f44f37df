/**
 * `npm start` (scripts/dev.ts) ends its whole stack (kelp server, kelp tier
 * serve, wrangler with its workerd and esbuild) when it is told to, and only
 * then: a SIGTERM to npm alone (what `kill PID` and many supervisors send; npm
 * does not pass it on to the script), SIGINT or SIGHUP to the script alone
 * (not to its process group), and the death of npm by SIGKILL. Real
 * processes, real signals; a second stack beside a developer's (own data
 * directory and ports).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { cleanEnv, freePort, REPO_ROOT, removeTempDirs, tempDir } from '../cli/harness.ts';

/** Starting the stack takes wrangler's bundling and workerd's start: seconds. */
const START_TIMEOUT_MS = 60_000;
/** The stack's own grace is 8 s per part; all of it gone well within this. */
const STOP_TIMEOUT_MS = 30_000;

interface Stack {
  npm: ChildProcess;
  out(): string;
  /** Every process under npm when the stack was up. */
  pids: number[];
  /** The script itself (node scripts/dev.ts). */
  dev: number;
  /** host:port of the master, volume server, edge and tier service. */
  addresses: string[];
}

/** pid -> parent pid, from /proc. */
function processTable(): Map<number, { ppid: number; state: string; cmd: string }> {
  const table = new Map<number, { ppid: number; state: string; cmd: string }>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8').replaceAll('\0', ' ');
      table.set(Number(name), { state: rest[0]!, ppid: Number(rest[1]), cmd });
    } catch {
      // gone while reading
    }
  }
  return table;
}

function descendants(root: number): number[] {
  const table = processTable();
  const out: number[] = [];
  const queue = [root];
  while (queue.length) {
    const p = queue.shift()!;
    for (const [pid, info] of table) {
      if (info.ppid === p && !out.includes(pid)) {
        out.push(pid);
        queue.push(pid);
      }
    }
  }
  return out;
}

/** Alive: present and not a zombie (an orphan's zombie waits for init, which may not reap here). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function refuses(address: string): Promise<boolean> {
  const [host, port] = address.split(':') as [string, string];
  return new Promise((resolve) => {
    const socket = connect({ host, port: Number(port) });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

const stacks: Stack[] = [];

async function startStack(): Promise<Stack> {
  const dir = tempDir('kelp-dev-');
  const npm = spawn('npm', ['start', '--', '--master.port', '0', '--volume.port', '0'], {
    cwd: REPO_ROOT,
    env: cleanEnv({
      KELP_DEV_DIR: dir,
      KELP_DEV_EDGE_PORT: String(await freePort()),
      KELP_DEV_TIER_PORT: '0',
      WRANGLER_SEND_METRICS: 'false',
    }),
    // A group of its own: the signals below reach exactly the process they name.
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  npm.stdout!.setEncoding('utf8').on('data', (s: string) => {
    out += s;
  });
  npm.stderr!.setEncoding('utf8').on('data', (s: string) => {
    out += s;
  });
  const partial = { npm, out: () => out, pids: [] as number[], dev: 0, addresses: [] as string[] };
  stacks.push(partial);
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!out.includes('Kelp is running')) {
    if (Date.now() > deadline || npm.exitCode !== null) throw new Error(`npm start did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  // The banner is printed at once; give it a moment to arrive whole.
  await new Promise((r) => setTimeout(r, 200));
  partial.pids = descendants(npm.pid!);
  const table = processTable();
  partial.dev = partial.pids.find(
    (p) => table.get(p)?.cmd.includes('scripts/dev.ts') && table.get(p)?.cmd.startsWith('node'),
  )!;
  const urls = (label: RegExp) => label.exec(out)?.[1];
  partial.addresses = [
    urls(/master\s+http:\/\/(\S+)/),
    urls(/volume server\s+http:\/\/(\S+)/),
    urls(/edge Worker\s+http:\/\/(\S+)/),
    urls(/health and metrics on http:\/\/(\S+)/),
  ].filter((a): a is string => a !== undefined);
  return partial;
}

/** Waits until none of the stack's processes runs and none of its ports answers. */
async function expectAllGone(stack: Stack): Promise<void> {
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  let left: number[] = [];
  while (Date.now() < deadline) {
    left = stack.pids.filter(running);
    if (left.length === 0) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const table = processTable();
  expect(
    left.map((p) => `${p} ${table.get(p)?.cmd}`),
    stack.out(),
  ).toEqual([]);
  for (const address of stack.addresses) expect(await refuses(address), address).toBe(true);
}

afterEach(async () => {
  // Whatever a failed test left behind.
  for (const s of stacks.splice(0)) {
    for (const pid of s.pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
});
afterAll(removeTempDirs);

describe('npm start', () => {
  it('prints a banner whose commands use npx kelp, and every server answers /readyz', async () => {
    const stack = await startStack();
    expect(stack.addresses).toHaveLength(4);
    expect(stack.out()).toMatch(/^ {2}npx kelp tier status --master /m);
    expect(stack.out()).not.toMatch(/node origin\/cli\.ts/);
    // Ready within seconds (a loaded machine may fail a probe's deadline once: readiness is a poll).
    for (const address of [stack.addresses[0], stack.addresses[1], stack.addresses[3]]) {
      let status = 0;
      for (let tries = 0; tries < 20 && status !== 200; tries++) {
        if (tries) await new Promise((r) => setTimeout(r, 250));
        status = (await fetch(`http://${address}/readyz`)).status;
      }
      expect(status, address).toBe(200);
    }
    // A stack with more than the script under npm: the origin, the tier service, wrangler and workerd.
    expect(stack.pids.length).toBeGreaterThanOrEqual(6);
    process.kill(stack.npm.pid!, 'SIGTERM');
    await expectAllGone(stack);
    expect(stack.out()).toContain('the process that started npm start is gone');
  }, 120_000);

  it.each(['SIGINT', 'SIGHUP', 'SIGTERM'] as const)(
    'stops the whole stack on %s to the script alone, the origin cleanly',
    async (signal) => {
      const stack = await startStack();
      expect(stack.dev).toBeGreaterThan(0);
      process.kill(stack.dev, signal);
      await expectAllGone(stack);
      // The volume server stopped the graceful way: drained, told the master, volumes closed cleanly.
      expect(stack.out()).toContain('this server is leaving');
      expect(stack.out()).toContain('volumes synced and closed cleanly');
    },
    120_000,
  );

  it('stops the whole stack when npm is killed with SIGKILL (its parent, sh, lives on)', async () => {
    const stack = await startStack();
    process.kill(stack.npm.pid!, 'SIGKILL');
    await expectAllGone(stack);
  }, 120_000);
});
