/**
 * 1 KiB writes: a Kelp volume server under each `--fsync` policy against the
 * bare node:http server that appends each body to one file with the same
 * durability: `batch` vs group-commit fdatasync, `never` vs no sync, `always`
 * vs one fdatasync per request. Every Kelp PUT goes to a new key
 * (bench/lua/put-seq.lua), so each one appends a needle and an idx entry;
 * the bare servers get the same requests.
 */
import { fileURLToPath } from 'node:url';
import { compare } from '../lib/compare.ts';
import { assignVolume, BENCH_COOKIE, type FsyncPolicy, scratchDir, startKelpVolume } from '../lib/kelp.ts';
import { startServer } from '../lib/process.ts';
import type { Row } from '../lib/table.ts';
import type { Bench, BenchContext } from '../run.ts';

const bare = fileURLToPath(new URL('../baselines/bare-http.ts', import.meta.url));
const putSeq = fileURLToPath(new URL('../lua/put-seq.lua', import.meta.url));
/** Keys per wrk run: far more than any run can write, and every base stays below 2^31 for Lua's %x. */
const KEYS_PER_RUN = 2 ** 24;

const PAIRS: Array<{ fsync: FsyncPolicy; bareMode: string; goal?: string }> = [
  { fsync: 'batch', bareMode: 'append-group', goal: '≥ 60 % of bare group commit' },
  { fsync: 'never', bareMode: 'append-nosync', goal: '≥ 50 % of bare no-sync' },
  { fsync: 'always', bareMode: 'append-always' },
];

async function pair(dir: string, p: (typeof PAIRS)[number], ctx: BenchContext): Promise<Row[]> {
  let runs = 0;
  let bareRuns = 0;
  return compare(
    [
      {
        subject: `bare ${p.bareMode}`,
        start: () => startServer([bare, p.bareMode, dir]),
        // The same request stream as Kelp's (the bare server ignores method and
        // path), so wrk, which shares the machine's cores, spends the same on either.
        load: (port) => ({
          url: `http://127.0.0.1:${port}/`,
          script: putSeq,
          env: { KELP_KEY_BASE: String(1 + bareRuns++ * KEYS_PER_RUN) },
        }),
      },
      {
        subject: `kelp volume --fsync ${p.fsync}`,
        async start() {
          const server = await startKelpVolume(`${dir}/kelp-${p.fsync}`, p.fsync);
          await assignVolume(server.port, 1);
          return server;
        },
        load: (port) => ({
          url: `http://127.0.0.1:${port}/`,
          script: putSeq,
          env: {
            KELP_VOLUME: '1',
            KELP_COOKIE: BENCH_COOKIE.toString(16).padStart(8, '0'),
            KELP_KEY_BASE: String(1 + runs++ * KEYS_PER_RUN),
          },
        }),
      },
    ],
    { bench: 'volume-write', ...ctx, goal: p.goal },
  );
}

const bench: Bench = {
  name: 'volume-write',
  description: '1 KiB writes: kelp volume server (fsync batch|never|always) vs bare append servers',
  async run(ctx) {
    const scratch = scratchDir('write');
    try {
      const rows: Row[] = [];
      for (const p of PAIRS) rows.push(...(await pair(scratch.dir, p, ctx)));
      return rows;
    } finally {
      scratch.remove();
    }
  },
};
export default bench;
