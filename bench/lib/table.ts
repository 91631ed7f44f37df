export interface Row {
  bench: string;
  subject: string;
  reqPerSec?: number;
  p50Ms?: number;
  p99Ms?: number;
  /** Subject / baseline of the same run, e.g. 0.82. */
  ratio?: number;
  goal?: string;
  note?: string;
  /** Server CPU (user + system) per request over the runs, where the bench could measure it. */
  cpuUsPerRequest?: number;
}

const fmt = (n: number | undefined, digits = 0): string =>
  n === undefined || Number.isNaN(n) ? '' : n.toLocaleString('en-US', { maximumFractionDigits: digits });

export function printTable(rows: Row[]): void {
  const header = ['bench', 'subject', 'req/s (median)', 'p50 ms', 'p99 ms', 'vs baseline', 'goal', 'note'];
  const lines = rows.map((r) => [
    r.bench,
    r.subject,
    fmt(r.reqPerSec),
    fmt(r.p50Ms, 2),
    fmt(r.p99Ms, 2),
    r.ratio === undefined ? '' : `${(r.ratio * 100).toFixed(0)} %`,
    r.goal ?? '',
    r.note ?? '',
  ]);
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map(() => '---').join('|')}|`);
  for (const l of lines) console.log(`| ${l.join(' | ')} |`);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
