/**
 * Prometheus metrics (prom-client): each server has a registry of its own
 * (a master and a volume server can share a process, and tests run many),
 * and the process's own metrics (CPU, memory, event loop lag, GC) live in one
 * registry per process, appended to every server's exposition.
 *
 * Two shapes are cheap enough for the hot read path (decision 0003), and the
 * read path uses only them:
 * - `FastHistogram`: one series object per label set, created once and kept
 *   by the caller; `observe()` is a loop over a dozen bounds and three
 *   additions, with no label lookup and no closure per call. prom-client's
 *   own histogram hashes its labels on every observation.
 * - counters and gauges read at scrape time (`collectedCounter`,
 *   `collectedGauge`) from plain integers the code keeps anyway.
 * prom-client's Counter and Histogram are used where a request is rare
 * (replication failures, tier transfers) or already costs milliseconds.
 */
import { Counter, collectDefaultMetrics, Gauge, type Metric, Registry } from 'prom-client';
import { KELP_VERSION } from '../version.ts';

export const METRIC_PREFIX = 'kelp_';
export const METRICS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

/** Seconds; from half a millisecond (a page-cache read) to 10 s (a slow replica or backend). */
export const LATENCY_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
] as const;
/** Seconds; tier transfers of whole volumes take minutes to hours. */
export const TRANSFER_BUCKETS = [1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400] as const;

type Labels = Record<string, string>;

/** One label set of a FastHistogram: keep it, and observe into it directly. */
export class HistogramSeries {
  readonly labels: Labels;
  private readonly bounds: readonly number[];
  /** Per bucket, not cumulative; the last slot is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(labels: Labels, bounds: readonly number[]) {
    this.labels = labels;
    this.bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

/**
 * A Prometheus histogram whose series are created up front (or once, on
 * first use) and observed without a label lookup. Registered in a prom-client
 * registry, which formats it like any of its own.
 */
export class FastHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly bounds: readonly number[];
  private readonly all = new Map<string, HistogramSeries>();

  constructor(registry: Registry, name: string, help: string, bounds: readonly number[]) {
    this.name = name;
    this.help = help;
    this.bounds = bounds;
    registry.registerMetric(this as unknown as Metric);
  }

  /** The series of `labels`, created on first use: call once and keep it, not per observation. */
  series(labels: Labels = {}): HistogramSeries {
    const key = JSON.stringify(labels);
    let s = this.all.get(key);
    if (!s) {
      s = new HistogramSeries(labels, this.bounds);
      this.all.set(key, s);
    }
    return s;
  }

  /** What prom-client's registry formats (the shape of its own histograms' get()). */
  async get(): Promise<{
    name: string;
    help: string;
    type: string;
    aggregator: string;
    values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }>;
  }> {
    const values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = [];
    for (const s of this.all.values()) {
      let acc = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        acc += s.counts[i]!;
        values.push({
          metricName: `${this.name}_bucket`,
          labels: { ...s.labels, le: this.bounds[i]! },
          value: acc,
        });
      }
      values.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le: '+Inf' }, value: s.count });
      values.push({ metricName: `${this.name}_sum`, labels: s.labels, value: s.sum });
      values.push({ metricName: `${this.name}_count`, labels: s.labels, value: s.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    for (const s of this.all.values()) {
      s.counts.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }
}

export type Samples = Iterable<readonly [Labels, number]>;

/** A counter whose values are read at scrape time from totals the code keeps (never decreasing). */
export function collectedCounter(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly string[],
  read: () => Samples,
): void {
  new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, value] of read()) this.inc(labels, value);
    },
  });
}

/** A gauge read at scrape time. */
export function collectedGauge(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly string[],
  read: () => Samples,
): void {
  new Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, value] of read()) this.set(labels, value);
    },
  });
}

let processRegistry: Registry | undefined;

/** The process's own metrics, shared by every server in it (collected once per process). */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry, prefix: METRIC_PREFIX });
    // Gauges named like counters (promtool's lint refuses them); the per-type gauges carry the same numbers.
    for (const name of ['active_handles_total', 'active_requests_total', 'active_resources_total'])
      processRegistry.removeSingleMetric(`${METRIC_PREFIX}nodejs_${name}`);
    new Gauge({
      name: `${METRIC_PREFIX}build_info`,
      help: 'Always 1; the labels say which Kelp and Node this process runs',
      labelNames: ['version', 'node'],
      registers: [processRegistry],
    }).set({ version: KELP_VERSION, node: process.version }, 1);
  }
  return processRegistry;
}

/** A server's registry; `exposition()` is its scrape, process metrics included. */
export class ServerMetrics {
  readonly registry = new Registry();

  async exposition(): Promise<string> {
    const [own, proc] = await Promise.all([this.registry.metrics(), processMetrics().metrics()]);
    return `${own}\n${proc}`;
  }
}
