/**
 * Scale (issue 15 item 5), printed as a table:
 * - start-up of a volume server holding `needles` needles in `volumes`
 *   volumes (default 10^7 in 100): time from spawn to listening, and RSS, all
 *   in and above an empty volume server's (goal: ready ≤ 3 s, ≤ 24 B/needle).
 *   The volumes are written directly (superblock by Volume.create, then
 *   records of 1 data byte and their idx entries), not uploaded: 10^7 uploads
 *   would take an hour here;
 * - lookup latency at a master that knows 10^4 volumes (10 servers × 1,000,
 *   told by heartbeats POSTed by this script);
 * - what one heartbeat of 1,000 volumes costs the master (CPU, latency,
 *   size): a full list, and the deltas sent between full lists (10 volumes
 *   changed, and none);
 * - assigns at that master: with 1 % of the 10^4 volumes open for writes
 *   (as in a cluster that has filled most of its volumes), and with all open.
 * The volume servers run the built tree (dist/, rebuilt here first), as
 * deployments do (decision 0017); an empty one is also run from the
 * TypeScript sources, for what Node's type stripper adds.
 * Lines go to stderr as they are measured; the table is printed at the end.
 *
 *   node bench/scale.ts [--needles 10000000] [--volumes 100]
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build, DIST } from '../scripts/build.ts';
import { formatFid } from '../shared/fid.ts';
import { cpuSeconds } from './lib/cpu.ts';
import { scratchDir } from './lib/kelp.ts';
import { type Started, startServer } from './lib/process.ts';
import { writeVolume } from './lib/volume-files.ts';

const SOURCE_CLI = fileURLToPath(new URL('../origin/cli.ts', import.meta.url));
const CLI = join(DIST, 'origin/cli.js');
const { values } = parseArgs({
  options: { needles: { type: 'string', default: '10000000' }, volumes: { type: 'string', default: '100' } },
});
const NEEDLES = Number(values.needles);
const VOLUMES = Number(values.volumes);
const LOOKUP_SERVERS = 10;
const VOLUMES_PER_SERVER = 1_000;
const LOOKUPS = 20_000;
const HEARTBEATS = 200;
/** Volumes changed between two beats in the delta measured: a server taking writes on a few. */
const DELTA_CHANGED = 10;
const ASSIGNS = 5_000;
/** Of each server's volumes, how many stay writable in the first assign row (the rest read-only, as full). */
const OPEN_PER_SERVER = 10;
const COOKIE = 0x1234abcd;

const rows: string[][] = [];
const row = (what: string, value: string, goal = '') => {
  rows.push([what, value, goal]);
  console.error(`${what}: ${value}`);
};

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

/** `count` needles (keys 1..count) of one data byte in volume `id` under `dir`. */
function generateVolume(dir: string, id: number, count: number): Promise<void> {
  return writeVolume(dir, id, count, { variants: [new Uint8Array([7])], cookie: COOKIE });
}

async function timedVolumeServer(
  dir: string,
  cli = CLI,
): Promise<{ server: Started; ms: number; rss: number; cpu: number | undefined }> {
  const t0 = performance.now();
  const server = await startServer(
    [cli, 'volume', '--ip', '127.0.0.1', '--port', '0', '--dir', dir, '--master', '', '--max', '1000'],
    { ready: /kelp volume server listening on http:\/\/127\.0\.0\.1:(\d+)/, timeoutMs: 300_000 },
  );
  const ms = performance.now() - t0;
  // CPU to ready as well as wall time: on a shared machine the wall time is mostly waiting for a core.
  return { server, ms, rss: rssBytes(server.child!.pid!), cpu: cpuSeconds(server.child!.pid) };
}

function callWithBody(port: number, method: string, path: string, body: string | undefined, agent: Agent) {
  return new Promise<{ status: number; text: string }>((resolve, reject) => {
    const headers = body ? { 'Content-Type': 'application/json' } : {};
    const req = request({ host: '127.0.0.1', port, method, path, agent, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (b: Buffer) => parts.push(b));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function call(port: number, method: string, path: string, body: string | undefined, agent: Agent) {
  return (await callWithBody(port, method, path, body, agent)).status;
}

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;

function heartbeatBody(server: number, firstVolume: number, open = VOLUMES_PER_SERVER): string {
  const volumes = Array.from({ length: VOLUMES_PER_SERVER }, (_, i) => ({
    id: firstVolume + i,
    collection: '',
    size: 1_000_000,
    fileCount: 1000,
    deleteCount: 0,
    deletedByteCount: 0,
    readOnly: i >= open,
    replicaPlacement: '000',
    ttl: '',
    compactRevision: 0,
    readsPerDay: 0,
    modifiedAt: 0,
  }));
  return JSON.stringify({
    url: `127.0.0.1:${20_000 + server}`,
    publicUrl: '',
    dataCenter: 'dc1',
    rack: 'r1',
    maxVolumeCount: VOLUMES_PER_SERVER + 10,
    maxFileKey: '0',
    volumes,
  });
}

build();
const scratch = scratchDir('scale');
try {
  // 1. Start-up and RSS.
  const empty = await timedVolumeServer(join(scratch.dir, 'empty'));
  await empty.server.stop();
  const fromSources = await timedVolumeServer(join(scratch.dir, 'empty-sources'), SOURCE_CLI);
  await fromSources.server.stop();
  const dir = join(scratch.dir, 'full');
  mkdirSync(dir);
  const g0 = performance.now();
  for (let v = 1; v <= VOLUMES; v++) {
    const count = Math.floor(NEEDLES / VOLUMES) + (v <= NEEDLES % VOLUMES ? 1 : 0);
    await generateVolume(dir, v, count);
  }
  console.error(
    `generated ${NEEDLES} needles in ${VOLUMES} volumes in ${((performance.now() - g0) / 1000).toFixed(1)} s`,
  );
  for (const run of ['first start (no clean-shutdown marks)', 'restart after a clean stop']) {
    const full = await timedVolumeServer(dir);
    // Served, not just listed: the last needle of the last volume reads back (CRC checked).
    const last = formatFid({ volumeId: VOLUMES, key: BigInt(Math.floor(NEEDLES / VOLUMES)), cookie: COOKIE });
    const got = await fetch(`http://127.0.0.1:${full.server.port}/${last}`);
    if (got.status !== 200) throw new Error(`GET /${last}: HTTP ${got.status}`);
    row(
      `volume server ready, ${NEEDLES.toLocaleString('en-US')} needles / ${VOLUMES} volumes, ${run}`,
      `${(full.ms / 1000).toFixed(2)} s (CPU ${full.cpu?.toFixed(2) ?? '?'} s)`,
      '≤ 3 s',
    );
    row(
      `  RSS all in (${(full.rss / 2 ** 20).toFixed(0)} MiB) per needle`,
      `${(full.rss / NEEDLES).toFixed(1)} B`,
      '≤ 24 B',
    );
    row(
      '  RSS above an empty volume server, per needle',
      `${((full.rss - empty.rss) / NEEDLES).toFixed(1)} B`,
      '',
    );
    await full.server.stop();
  }
  for (const [what, e] of [
    ['empty volume server: ready, RSS', empty],
    ['  the same from the TypeScript sources (type stripping)', fromSources],
  ] as const) {
    row(
      what,
      `${(e.ms / 1000).toFixed(2)} s (CPU ${e.cpu?.toFixed(2) ?? '?'} s), ${(e.rss / 2 ** 20).toFixed(0)} MiB`,
      '',
    );
  }

  // 2 and 3. A master told of 10^4 volumes; lookups; heartbeats of 1,000 volumes.
  const master = await startServer(
    [
      CLI,
      'master',
      '--ip',
      '127.0.0.1',
      '--port',
      '0',
      '--mdir',
      join(scratch.dir, 'm'),
      // Long pulses: the servers told by one heartbeat each stay alive through the run on a busy machine.
      '--pulseSeconds',
      '60',
    ],
    { ready: /kelp master listening on http:\/\/127\.0\.0\.1:(\d+)/ },
  );
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  try {
    const bodies = Array.from({ length: LOOKUP_SERVERS }, (_, s) =>
      heartbeatBody(s, 1 + s * VOLUMES_PER_SERVER),
    );
    for (const b of bodies) {
      const status = await call(master.port, 'POST', '/heartbeat', b, agent);
      if (status !== 200) throw new Error(`heartbeat: HTTP ${status}`);
    }
    const total = LOOKUP_SERVERS * VOLUMES_PER_SERVER;
    const latencies: number[] = [];
    const lookupCpu0 = cpuSeconds(master.child!.pid);
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < LOOKUPS) {
          next++;
          const id = 1 + Math.floor(Math.random() * total);
          const s = performance.now();
          const status = await call(master.port, 'GET', `/dir/lookup?volumeId=${id}`, undefined, agent);
          if (status !== 200) throw new Error(`lookup ${id}: HTTP ${status}`);
          latencies.push(performance.now() - s);
        }
      }),
    );
    const secs = (performance.now() - t0) / 1000;
    const lookupCpu1 = cpuSeconds(master.child!.pid);
    latencies.sort((a, b) => a - b);
    // CPU per lookup as well: with this script on the same 2 cores, req/s and p50 mostly measure the client.
    const perLookup =
      lookupCpu0 === undefined || lookupCpu1 === undefined
        ? '?'
        : (((lookupCpu1 - lookupCpu0) / LOOKUPS) * 1e6).toFixed(0);
    row(
      `master lookup, ${total.toLocaleString('en-US')} volumes, c=16`,
      `${(LOOKUPS / secs).toFixed(0)} req/s, p50 ${pct(latencies, 0.5).toFixed(2)} ms, p99 ${pct(latencies, 0.99).toFixed(2)} ms, master CPU ${perLookup} µs/lookup`,
    );
    const timeBeats = async (what: string, beat: string) => {
      const cpu0 = cpuSeconds(master.child!.pid);
      const beats: number[] = [];
      for (let i = 0; i < HEARTBEATS; i++) {
        const s = performance.now();
        const status = await call(master.port, 'POST', '/heartbeat', beat, agent);
        if (status !== 200) throw new Error(`heartbeat: HTTP ${status}`);
        beats.push(performance.now() - s);
      }
      const cpu1 = cpuSeconds(master.child!.pid);
      beats.sort((a, b) => a - b);
      const size = beat.length < 10_240 ? `${beat.length} B` : `${(beat.length / 1024).toFixed(0)} KiB`;
      row(
        `heartbeat of ${VOLUMES_PER_SERVER} volumes, ${what} (${size} JSON)`,
        `master CPU ${cpu0 === undefined || cpu1 === undefined ? '?' : (((cpu1 - cpu0) / HEARTBEATS) * 1000).toFixed(2)} ms/beat, p50 ${pct(beats, 0.5).toFixed(2)} ms, p99 ${pct(beats, 0.99).toFixed(2)} ms`,
      );
    };
    // Assigns, first with most volumes full (read-only), then with every volume open.
    const timeAssigns = async (what: string) => {
      const cpu0 = cpuSeconds(master.child!.pid);
      const t0 = performance.now();
      let sent = 0;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (sent < ASSIGNS) {
            sent++;
            const status = await call(master.port, 'GET', '/dir/assign', undefined, agent);
            if (status !== 200) throw new Error(`assign: HTTP ${status}`);
          }
        }),
      );
      const secs = (performance.now() - t0) / 1000;
      const cpu1 = cpuSeconds(master.child!.pid);
      row(
        `master assign, ${total.toLocaleString('en-US')} volumes, ${what}, c=16`,
        `${(ASSIGNS / secs).toFixed(0)} req/s, master CPU ${cpu0 === undefined || cpu1 === undefined ? '?' : (((cpu1 - cpu0) / ASSIGNS) * 1e6).toFixed(0)} µs/assign`,
      );
    };
    for (let s = 0; s < LOOKUP_SERVERS; s++) {
      const beat = heartbeatBody(s, 1 + s * VOLUMES_PER_SERVER, OPEN_PER_SERVER);
      const status = await call(master.port, 'POST', '/heartbeat', beat, agent);
      if (status !== 200) throw new Error(`heartbeat: HTTP ${status}`);
    }
    await timeAssigns(`${LOOKUP_SERVERS * OPEN_PER_SERVER} open`);
    for (const b of bodies) {
      const status = await call(master.port, 'POST', '/heartbeat', b, agent);
      if (status !== 200) throw new Error(`heartbeat: HTTP ${status}`);
    }
    await timeAssigns('all open');
    const full = bodies[0]!;
    await timeBeats('full list', full);
    // Deltas as a volume server sends them between full lists (origin/volume/heartbeat.ts).
    const reply = await callWithBody(master.port, 'POST', '/heartbeat', full, agent);
    const { session } = JSON.parse(reply.text) as { session: string };
    const parsed = JSON.parse(full) as { volumes: Array<{ size: number }> };
    const changed = parsed.volumes.slice(0, DELTA_CHANGED).map((v) => ({ ...v, size: v.size + 4096 }));
    await timeBeats(
      `delta of ${DELTA_CHANGED} changed`,
      JSON.stringify({ ...parsed, volumes: changed, deltaOf: session }),
    );
    await timeBeats('delta of none changed', JSON.stringify({ ...parsed, volumes: [], deltaOf: session }));
  } finally {
    agent.destroy();
    await master.stop();
  }
} finally {
  scratch.remove();
}
console.log(`\nnode ${process.version}, one run\n| measure | value | goal |\n|---|---|---|`);
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
