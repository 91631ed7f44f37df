/**
 * A scrape of a Kelp server's /metrics, parsed (the Prometheus text format:
 * `name{label="value",...} number` lines), and `promtool check metrics` on it
 * where Debian's prometheus package provides promtool (.ci/run installs it).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Sequencer } from '../../origin/master/sequencer.ts';
import { FileStateStore } from '../../origin/master/state-store.ts';
import { Topology } from '../../origin/master/topology.ts';
import { HttpMetrics } from '../../origin/observability/http-metrics.ts';
import { observeTopology } from '../../origin/observability/master-metrics.ts';
import { ServerMetrics } from '../../origin/observability/metrics.ts';
import { TierServiceMetrics } from '../../origin/observability/tier-metrics.ts';
import { VolumeMetrics } from '../../origin/observability/volume-metrics.ts';

export type Samples = Map<string, number>;

function key(name: string, labels: Record<string, string>): string {
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`);
  return parts.length ? `${name}{${parts.join(',')}}` : name;
}

export function parseExposition(text: string): Samples {
  const out: Samples = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.set(key(m[1]!, labels), Number(m[3]));
  }
  return out;
}

/** The sample's value, or undefined when the server does not report it. */
export function sample(s: Samples, name: string, labels: Record<string, string> = {}): number | undefined {
  return s.get(key(name, labels));
}

/** Sum over every label set of `name` matching `labels`. */
export function total(s: Samples, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const [k, v] of s) {
    if (k !== name && !k.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([l, val]) => k.includes(`${l}=${JSON.stringify(val)}`))) sum += v;
  }
  return sum;
}

export async function scrape(base: string, headers: Record<string, string> = {}): Promise<Samples> {
  const res = await fetch(`${base}/metrics`, { headers });
  if (res.status !== 200) throw new Error(`GET ${base}/metrics: ${res.status} ${await res.text()}`);
  return parseExposition(await res.text());
}

export const PROMTOOL = 'promtool';

/** `promtool ARGS` (stdin: `input`); throws when promtool is not installed (apt-get install prometheus). */
export function promtool(args: string[], input?: string): { ok: boolean; output: string } {
  const r = spawnSync(PROMTOOL, args, { input, encoding: 'utf8', timeout: 30_000 });
  if (r.error) {
    throw new Error(
      `promtool is needed (Debian: apt-get install -y prometheus; npm test installs it: test/support/system-packages.ts): ${r.error.message}`,
    );
  }
  return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
}

/**
 * Every metric name a Kelp server can export (master, volume server, tier
 * service, process), from registries built as the servers build them;
 * histograms with their _bucket, _sum and _count series.
 */
export async function allMetricNames(): Promise<Set<string>> {
  const metrics = new ServerMetrics();
  new HttpMetrics(metrics, ['read']);
  new VolumeMetrics(metrics);
  new TierServiceMetrics(metrics);
  const dir = mkdtempSync(join(tmpdir(), 'kelp-metric-names-'));
  try {
    const topology = new Topology({ pulseSeconds: 1, volumeSizeLimit: 1, now: Date.now });
    observeTopology(metrics, {
      topology,
      sequencer: await Sequencer.open(new FileStateStore(dir)),
      leader: () => '',
    });
    const names = new Set<string>();
    for (const m of (await metrics.exposition()).matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      names.add(m[1]!);
      if (m[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(`${m[1]}${s}`);
    }
    return names;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
