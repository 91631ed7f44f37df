/**
 * 1 KiB random reads: a Kelp volume server filled with KELP_BENCH_BLOBS
 * (default 50,000) blobs of 1 KiB, read at random through wrk, against bare
 * node:http servers that pread 1 KiB at a random offset of a file of the same
 * size as the volume's `.dat`. Every Kelp read looks up the needle map, preads
 * the whole record and checks its CRC-32C.
 *
 * The Kelp server runs twice, with metrics on (the default) and with
 * `--metrics false`, alternating in the same rounds: their ratio is what the
 * metrics cost the read path (issue 12: under 3 %).
 *
 * Then the same three, cold: the page cache dropped (`echo 3 >
 * /proc/sys/vm/drop_caches`, needs root) right before one run each, so the
 * run starts with every read going to the disk.
 */
import { execFileSync } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Contender, compare } from '../lib/compare.ts';
import { assignVolume, fillVolume, scratchDir, startKelpVolume } from '../lib/kelp.ts';
import { type Started, startServer } from '../lib/process.ts';
import type { Row } from '../lib/table.ts';
import { runWrk } from '../lib/wrk.ts';
import type { Bench, BenchContext } from '../run.ts';

const bare = fileURLToPath(new URL('../baselines/bare-http.ts', import.meta.url));
const randomPath = fileURLToPath(new URL('../lua/random-path.lua', import.meta.url));
const BLOBS = Number(process.env.KELP_BENCH_BLOBS ?? 50_000);
const BLOB_BYTES = 1024;
const MIB = 1024 * 1024;

interface Setup {
  kelpDir: string;
  pathsFile: string;
  /** The `.dat` size, rounded up to a MiB: the bare servers read a file this large. */
  readBytes: number;
}

/** Starts a Kelp volume server, fills it and writes the paths file; stops it again. */
async function prepare(dir: string): Promise<Setup> {
  const kelpDir = join(dir, 'kelp');
  const kelp = await startKelpVolume(kelpDir, 'never');
  try {
    await assignVolume(kelp.port, 1);
    const started = performance.now();
    const paths = await fillVolume(kelp.port, 1, BLOBS, BLOB_BYTES);
    const secs = (performance.now() - started) / 1000;
    console.error(`  filled ${BLOBS} x 1 KiB in ${secs.toFixed(1)} s (${Math.round(BLOBS / secs)} PUT/s)`);
    const pathsFile = join(dir, 'paths.txt');
    writeFileSync(pathsFile, `${paths.join('\n')}\n`);
    const datBytes = statSync(join(kelpDir, '1.dat')).size;
    return { kelpDir, pathsFile, readBytes: Math.ceil(datBytes / MIB) * MIB };
  } finally {
    await kelp.stop();
  }
}

function contenders(setup: Setup, dir: string): Contender[] {
  const bareMode = (mode: string): Contender => ({
    subject: `bare ${mode}`,
    start: () => startServer([bare, mode, dir], { env: { KELP_BENCH_READ_BYTES: String(setup.readBytes) } }),
    // The same Lua script and paths as Kelp (the bare server ignores the path), so
    // wrk, which shares the machine's cores, spends the same on either.
    load: (port) => ({
      url: `http://127.0.0.1:${port}/`,
      script: randomPath,
      env: { KELP_PATHS: setup.pathsFile },
    }),
  });
  const kelp = (subject: string, args: string[]): Contender => ({
    subject,
    start: () => startKelpVolume(setup.kelpDir, 'never', args),
    load: (port) => ({
      url: `http://127.0.0.1:${port}/`,
      script: randomPath,
      env: { KELP_PATHS: setup.pathsFile },
    }),
  });
  return [
    bareMode('pread-sync'),
    bareMode('pread-callback'),
    kelp('kelp volume (fsync never), CRC checked', []),
    kelp('kelp volume, --metrics false', ['--metrics', 'false']),
  ];
}

function dropCaches(): boolean {
  try {
    execFileSync('sync');
    writeFileSync('/proc/sys/vm/drop_caches', '3\n');
    return true;
  } catch {
    return false;
  }
}

/** One run per contender, each right after dropping the page cache. */
async function coldRows(list: Contender[], ctx: BenchContext): Promise<Row[]> {
  const rows: Row[] = [];
  for (const c of list) {
    const server: Started = await c.start();
    try {
      if (!dropCaches()) {
        return [
          {
            bench: 'volume-read cold',
            subject: '(skipped)',
            note: 'cannot write /proc/sys/vm/drop_caches (needs root): cold cache not measured',
          },
        ];
      }
      const r = await runWrk({ ...c.load(server.port), connections: ctx.connections, durationSec: 2 });
      rows.push({
        bench: 'volume-read cold',
        subject: c.subject,
        reqPerSec: r.reqPerSec,
        p50Ms: r.p50Ms,
        p99Ms: r.p99Ms,
        note: `first 2 s after drop_caches${r.errors ? `, ${r.errors} errors` : ''}`,
      });
    } finally {
      await server.stop();
    }
  }
  const base = rows[0]?.reqPerSec;
  for (const r of rows.slice(1)) if (base && r.reqPerSec) r.ratio = r.reqPerSec / base;
  return rows;
}

const bench: Bench = {
  name: 'volume-read',
  description: `1 KiB random reads of ${BLOBS} blobs: kelp volume server vs bare pread servers`,
  async run(ctx) {
    const scratch = scratchDir('read');
    try {
      const setup = await prepare(scratch.dir);
      const list = contenders(setup, scratch.dir);
      const rows = await compare(list, { bench: 'volume-read', ...ctx });
      // The goal is against the fastest bare pread server, whichever it was in this run.
      const fastest = Math.max(...rows.slice(0, 2).map((r) => r.reqPerSec ?? 0));
      const [kelp, quiet] = [rows[2]!, rows[3]!];
      for (const r of [kelp, quiet]) r.ratio = (r.reqPerSec ?? 0) / fastest;
      kelp.goal = '≥ 75 % of the fastest bare pread';
      quiet.goal = 'vs the fastest bare pread';
      rows[1]!.goal = 'vs pread-sync';
      // Requests per second move with whatever else runs on the machine; server CPU per request much less.
      const cost = 1 - (kelp.reqPerSec ?? 0) / (quiet.reqPerSec ?? 1);
      const cpuCost =
        kelp.cpuUsPerRequest && quiet.cpuUsPerRequest
          ? kelp.cpuUsPerRequest / quiet.cpuUsPerRequest - 1
          : undefined;
      rows.push({
        bench: 'volume-read',
        subject: 'metrics on / metrics off',
        ratio: (kelp.reqPerSec ?? 0) / (quiet.reqPerSec ?? 1),
        goal: 'metrics cost < 3 %',
        note:
          `req/s ${(cost * 100).toFixed(1)} % lower` +
          (cpuCost === undefined ? '' : `; server CPU per request ${(cpuCost * 100).toFixed(1)} % higher`),
      });
      if (process.env.KELP_BENCH_COLD !== '0') rows.push(...(await coldRows(list.slice(0, 3), ctx)));
      return rows;
    } finally {
      scratch.remove();
    }
  },
};
export default bench;
