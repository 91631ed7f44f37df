/**
 * The bench runner: `npm run bench [-- name... --duration 5 --connections 16 --rounds 3]`.
 * Each bench lives in bench/benches/<name>.ts and returns table rows measured
 * as ratios against a baseline run in the same command.
 */
import { readdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Row } from './lib/table.ts';
import { printTable } from './lib/table.ts';
import { wrkAvailable } from './lib/wrk.ts';

export interface BenchContext {
  connections: number;
  durationSec: number;
  rounds: number;
}

export interface Bench {
  name: string;
  description: string;
  run(ctx: BenchContext): Promise<Row[]>;
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '16' },
    rounds: { type: 'string', default: '3' },
  },
});

const benchDir = new URL('./benches/', import.meta.url);
const available = readdirSync(benchDir)
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.slice(0, -3))
  .sort();
const chosen = positionals.length ? positionals : available;
const unknown = chosen.filter((n) => !available.includes(n));
if (unknown.length) {
  console.error(`unknown bench: ${unknown.join(', ')}; available: ${available.join(', ')}`);
  process.exit(2);
}
if (!wrkAvailable()) {
  console.error('wrk not found: apt-get install -y wrk');
  process.exit(2);
}

const ctx: BenchContext = {
  connections: Number(values.connections),
  durationSec: Number(values.duration),
  rounds: Number(values.rounds),
};
const rows: Row[] = [];
for (const name of chosen) {
  const mod = (await import(new URL(`${name}.ts`, benchDir).href)) as { default: Bench };
  console.error(`# ${name}: ${mod.default.description}`);
  rows.push(...(await mod.default.run(ctx)));
}
console.log(
  `\nc=${ctx.connections}, ${ctx.durationSec}s x ${ctx.rounds} rounds (median), node ${process.version}, wrk on the same machine`,
);
printTable(rows);
