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
 * (wrangler's workerd and esbuild included) and leaves no orphans. Ctrl-C once
 * stops cleanly; a second Ctrl-C kills at once.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DATA_DIR = './data';
const EDGE_HOST = '127.0.0.1';
const EDGE_PORT = 8787;
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

function start(
  name: string,
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
  onLine?: (l: string) => void,
) {
  const proc = spawn(command, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    // A group of its own: Ctrl-C reaches only this script, which then stops each group in order.
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  prefixed(name, proc.stdout!, process.stdout, onLine);
  prefixed(name, proc.stderr!, process.stderr, onLine);
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

function banner(master: string, volume: string, edge: string): string {
  return `
Kelp is running (Ctrl-C stops everything):
  master          ${master}
  volume server   ${volume}   data in ${DATA_DIR}
  edge Worker     ${edge}   wrangler dev --env local, state in ${DATA_DIR}/wrangler
  tiering         kelp tier serve -> local.default in ${DATA_DIR}/tier

Try it (assign a file id, upload with curl -F, read it back):
  fid=$(curl -s ${master}/dir/assign | grep -o '"fid":"[^"]*"' | cut -d'"' -f4); echo $fid
  curl -F file=@README.md ${volume}/$fid
  curl ${volume}/$fid
  curl ${master}/dir/lookup?fileId=$fid
  curl -i ${edge}/$fid.md          # through the edge Worker: X-Kelp-Cache MISS, then HIT
  node origin/cli.ts tier status --master ${master.replace('http://', '')}
  node origin/cli.ts tier plan --master ${master.replace('http://', '')}
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
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
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
  await waitFor(`${volume}/status`, 'the volume server');
  // Ready for the curl example once the volume server's heartbeat has reached the master.
  await waitFor(`${master}/dir/status`, 'the master', (body) => (JSON.parse(body).Topology?.Max ?? 0) > 0);

  // ---- tiering: the service, on the local-directory backend beside the data ----
  // It reads kelp.toml like the origin; without [[tier.policy]] it uses the built-in rule to local.default.
  const tierReady = new Promise<void>((resolve) => {
    start(
      'tiering',
      process.execPath,
      ['origin/cli.ts', 'tier', 'serve', '--master', master.replace('http://', '')],
      {},
      (line) => {
        if (line.startsWith('kelp tier serve:')) resolve();
      },
    );
  });
  await Promise.race([
    tierReady,
    sleep(START_TIMEOUT_MS).then(() => {
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

  console.log(banner(master, volume, edge));
}

main().catch((err: unknown) => {
  if (stopping) return;
  console.error(`npm start: ${err instanceof Error ? err.message : String(err)}`);
  void stopAll(1);
});
