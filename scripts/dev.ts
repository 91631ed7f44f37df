#!/usr/bin/env node
/**
 * `npm start`: the whole stack on this machine with embedded defaults.
 *
 *   origin   `kelp server --dir ./data` (master :9333, volume server :8080); extra
 *            arguments (`npm start -- --master.port 9444`) go to it, and it reads
 *            kelp.toml and KELP_* like any `kelp server`.
 *   edge     `wrangler dev --env local` on 127.0.0.1:8787, pointed at the master
 *            the origin actually bound, state in ./data/wrangler. The volume server
 *            sends it purge events (overwrites, deletes) with a key made for this run.
 *   tiering  `kelp tier serve` pointed at that master: the [[tier.policy]] of kelp.toml,
 *            else the built-in rule (sealed or 95% full and quiet for 24 h) to the
 *            local-directory backend `local.default` in ./data/tier.
 *
 * Each child runs in its own process group, so stopping kills the group
 * (wrangler's workerd and esbuild included) and leaves no orphans. SIGINT
 * (Ctrl-C), SIGTERM (systemd, docker, `timeout`) and SIGHUP (the terminal
 * closed) sent to this process alone stop everything cleanly; a second one
 * kills at once. So does the death of the process that started it: `npm
 * start` runs this script under `sh -c`, and a SIGTERM to npm kills npm and
 * the shell but is not passed on, so this script watches its parent and
 * grandparent and stops when either is gone.
 *
 * Environment (tests run a second stack beside a developer's): KELP_DEV_DIR
 * (./data), KELP_DEV_EDGE_PORT (8787), KELP_DEV_TIER_PORT (9336; its
 * /healthz, /readyz, /metrics). Log lines are readable when this terminal is
 * a TTY (KELP_LOG_FORMAT=pretty for the children), JSON otherwise.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DATA_DIR = process.env.KELP_DEV_DIR || './data';
const EDGE_HOST = '127.0.0.1';
const EDGE_PORT = Number(process.env.KELP_DEV_EDGE_PORT || 8787);
const TIER_PORT = Number(process.env.KELP_DEV_TIER_PORT || 9336);
/** How often the parent and grandparent are checked for life. */
const PARENT_POLL_MS = 500;
/** Signals that stop the stack when sent to this process alone. */
const STOP_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
/** How long a child may take to exit on SIGTERM before its group is killed. */
const STOP_GRACE_MS = 8_000;
const START_TIMEOUT_MS = 60_000;
/**
 * One Ctrl-C can arrive twice (from the terminal to the whole foreground group, and forwarded by npm);
 * only a signal this long after the first counts as "stop now".
 */
const DUPLICATE_SIGNAL_MS = 1_000;

interface Child {
  name: string;
  proc: ChildProcess;
  exited: Promise<unknown>;
}

const children: Child[] = [];
let stopping = false;

function prefixed(
  name: string,
  stream: NodeJS.ReadableStream,
  out: NodeJS.WritableStream,
  onLine?: (l: string) => void,
) {
  createInterface({ input: stream }).on('line', (line) => {
    out.write(`[${name}] ${line}\n`);
    onLine?.(line);
  });
}

/** The children's log lines: readable on a terminal, JSON (one object a line) otherwise. */
const LOG_ENV: NodeJS.ProcessEnv =
  process.stdout.isTTY && !process.env.KELP_LOG_FORMAT ? { KELP_LOG_FORMAT: 'pretty' } : {};

/** A log line's message (JSON from a kelp process), or the line itself. */
function messageOf(line: string): string {
  if (!line.startsWith('{')) return line;
  try {
    return String((JSON.parse(line) as { msg?: unknown }).msg ?? line);
  } catch {
    return line;
  }
}

function start(
  name: string,
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
  onLine?: (l: string) => void,
) {
  const proc = spawn(command, args, {
    cwd: ROOT,
    env: { ...process.env, ...LOG_ENV, ...env },
    // A group of its own: Ctrl-C reaches only this script, which then stops each group in order.
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const onMessage = onLine && ((line: string) => onLine(messageOf(line)));
  prefixed(name, proc.stdout!, process.stdout, onMessage);
  prefixed(name, proc.stderr!, process.stderr, onMessage);
  const exited = once(proc, 'exit');
  const child = { name, proc, exited };
  children.push(child);
  proc.on('exit', (code, signal) => {
    if (stopping) return;
    console.error(`\n${name} exited unexpectedly (${signal ?? `code ${code}`}); stopping the rest.`);
    void stopAll(1);
  });
  return child;
}

/** Is any process of the group still there? */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // already gone
  }
}

async function stopChild(c: Child): Promise<void> {
  const pgid = c.proc.pid;
  if (pgid === undefined) return;
  killGroup(pgid, 'SIGTERM');
  const deadline = Date.now() + STOP_GRACE_MS;
  // The leader exiting is not enough: workerd or esbuild may linger in the group.
  while (groupAlive(pgid) && Date.now() < deadline) await sleep(100);
  if (groupAlive(pgid)) {
    console.error(`${c.name} did not stop within ${STOP_GRACE_MS / 1000} s: killing its process group`);
    killGroup(pgid, 'SIGKILL');
  }
  await c.exited;
}

async function stopAll(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    // Edge first, then the tiering service (both talk to the origin), then the origin: reversed start order.
    for (const c of [...children].reverse()) await stopChild(c);
    console.log('stopped.');
  }
  process.exit(code);
}

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `url` until it answers 2xx and `accept` likes the body. */
async function waitFor(
  url: string,
  what: string,
  accept: (body: string) => boolean = () => true,
): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let last = '';
  while (Date.now() < deadline) {
    if (stopping) return new Promise(() => {});
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      const body = await res.text();
      if (res.ok && accept(body)) return;
      last = `${res.status} ${body.slice(0, 200)}`;
    } catch (err) {
      last = String((err as { cause?: unknown }).cause ?? err);
    }
    await sleep(250);
  }
  throw new Error(`${what} did not answer at ${url} within ${START_TIMEOUT_MS / 1000} s (last: ${last})`);
}

function banner(master: string, volume: string, edge: string, tier: string): string {
  const m = master.replace('http://', '');
  return `
Kelp is running (Ctrl-C stops everything; so does SIGTERM or SIGHUP):
  master          ${master}
  volume server   ${volume}   data in ${DATA_DIR}
  edge Worker     ${edge}   wrangler dev --env local, state in ${DATA_DIR}/wrangler
  tiering         kelp tier serve -> local.default in ${DATA_DIR}/tier   health and metrics on ${tier}
  every server    /healthz  /readyz  /metrics

Try it (assign a file id, upload with curl -F, read it back):
  fid=$(curl -s ${master}/dir/assign | grep -o '"fid":"[^"]*"' | cut -d'"' -f4); echo $fid
  curl -F file=@README.md ${volume}/$fid
  curl ${volume}/$fid
  curl ${master}/dir/lookup?fileId=$fid
  curl -i ${edge}/$fid.md          # through the edge Worker: X-Kelp-Cache MISS, then HIT
  npx kelp tier status --master ${m}
  npx kelp tier plan --master ${m}
  npx kelp upload --master ${m} README.md
  curl -s ${master}/metrics | grep ^kelp_master
`;
}

async function main(): Promise<void> {
  let firstSignal = 0;
  const onSignal = () => {
    if (!stopping) {
      firstSignal = Date.now();
      void stopAll(0);
    } else if (Date.now() - firstSignal > DUPLICATE_SIGNAL_MS) {
      // A second Ctrl-C: no more waiting (the exit handler below SIGKILLs the groups).
      process.exit(1);
    }
  };
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
  watchParents(() => {
    if (stopping) return;
    console.error('\nthe process that started npm start is gone: stopping everything.');
    void stopAll(1);
  });
  // Last resort if this script exits early (an exception, a second Ctrl-C): take the groups down with it.
  process.on('exit', () => {
    for (const c of children) if (c.proc.pid !== undefined) killGroup(c.proc.pid, 'SIGKILL');
  });

  // ---- origin: master + volume server ----
  // Purge events from the volume server to the edge, authorised by a key made for this run
  // (unless the environment names its own edge and key).
  const edgeUrl = `http://${EDGE_HOST}:${EDGE_PORT}`;
  const purgeKey = process.env.KELP_EDGE_PURGE_KEY || randomBytes(24).toString('hex');
  const urls: string[] = [];
  const listening = new Promise<void>((resolve) => {
    start(
      'origin',
      process.execPath,
      ['origin/cli.ts', 'server', '--dir', DATA_DIR, ...process.argv.slice(2)],
      { KELP_EDGE_PURGE_URLS: process.env.KELP_EDGE_PURGE_URLS || edgeUrl, KELP_EDGE_PURGE_KEY: purgeKey },
      (line) => {
        const m = /listening on (http:\/\/\S+)/.exec(line);
        if (m) urls.push(m[1]!);
        if (urls.length === 2) resolve();
      },
    );
  });
  await Promise.race([
    listening,
    sleep(START_TIMEOUT_MS).then(() => {
      throw new Error('kelp server did not start');
    }),
  ]);
  const [master, volume] = urls as [string, string];
  await waitFor(`${volume}/readyz`, 'the volume server');
  // Ready for the curl example once the volume server's heartbeat has reached the master.
  await waitFor(`${master}/dir/status`, 'the master', (body) => (JSON.parse(body).Topology?.Max ?? 0) > 0);

  // ---- tiering: the service, on the local-directory backend beside the data ----
  // It reads kelp.toml like the origin; without [[tier.policy]] it uses the built-in rule to local.default.
  const tierReady = new Promise<string>((resolve) => {
    start(
      'tiering',
      process.execPath,
      [
        'origin/cli.ts',
        'tier',
        'serve',
        '--master',
        master.replace('http://', ''),
        '--port',
        String(TIER_PORT),
      ],
      {},
      (line) => {
        const m = /^kelp tier serve: health and metrics listening on (http:\/\/\S+)/.exec(line);
        if (m) resolve(m[1]!);
      },
    );
  });
  const tier = await Promise.race([
    tierReady,
    sleep(START_TIMEOUT_MS).then((): never => {
      throw new Error('kelp tier serve did not start');
    }),
  ]);

  // ---- edge: the Worker under wrangler dev ----
  // Its bin script, run on this Node (wrangler's exports do not include the file, so no require.resolve).
  const wrangler = join(ROOT, 'node_modules/wrangler/bin/wrangler.js');
  const edge = edgeUrl;
  start(
    'edge',
    process.execPath,
    [
      wrangler,
      'dev',
      '--env',
      'local',
      '--ip',
      EDGE_HOST,
      '--port',
      String(EDGE_PORT),
      '--persist-to',
      join(DATA_DIR, 'wrangler'),
      '--var',
      `MASTER_URL:${master}`,
      '--var',
      `PURGE_KEY:${purgeKey}`,
      '--show-interactive-dev-session=false',
    ],
    { WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false' },
  );
  await waitFor(`${edge}/healthz`, 'the edge Worker');

  console.log(banner(master, volume, edge, tier));
}

/** The parent of `pid` (Linux /proc), or undefined when it cannot be read. */
function parentOf(pid: number): number | undefined {
  try {
    // Field 4 of /proc/PID/stat, after the command name in parentheses (which may hold spaces).
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    return Number.isInteger(ppid) && ppid > 0 ? ppid : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Calls `onGone` once the parent (npm's `sh -c`, or a shell) or the
 * grandparent (npm) exits: this process is then re-parented, or an ancestor
 * it was started for no longer exists. Init (pid 1) is never watched.
 */
function watchParents(onGone: () => void): void {
  const parent = process.ppid;
  const grandparent = parentOf(parent);
  const watched = [parent, grandparent].filter((p): p is number => p !== undefined && p > 1);
  const timer = setInterval(() => {
    if (process.ppid !== parent || watched.some((p) => !alive(p))) {
      clearInterval(timer);
      onGone();
    }
  }, PARENT_POLL_MS);
  timer.unref();
}

main().catch((err: unknown) => {
  if (stopping) return;
  console.error(`npm start: ${err instanceof Error ? err.message : String(err)}`);
  void stopAll(1);
});
