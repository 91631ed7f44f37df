/**
 * The small HTTP server of `kelp tier serve`: `/healthz`, `/readyz` and
 * `/metrics`, nothing that changes anything. Loopback by default
 * (`--ip`/`--port`, [tier] ip/port); `/metrics` takes the metrics key or the
 * admin key like the other servers' (docs/security.md).
 *
 * Ready when the master answers and every object-store backend the policies
 * name answers a HEAD of a key that does not exist (a 404 is an answer). A
 * backend is probed only if this process's config has its [backend.*]
 * section (the volume servers' kelp.toml, typically); `local` backends live
 * on the volume servers' disks and are checked there. Probe results are kept
 * for BACKEND_PROBE_CACHE_MS, so a readiness poller cannot turn into a load
 * on the store.
 */
import type { Server } from 'node:http';
import { MasterClient } from '../shared/client/master-client.ts';
import { KelpError, NotFoundError } from '../shared/errors.ts';
import type { BackendConfig, TierBackend } from '../tiering/backends/backend.ts';
import { createBackend } from '../tiering/backends/create-backend.ts';
import { normalizeBackendName, type TierRule } from '../tiering/service/policy.ts';
import { Health } from './http/health.ts';
import { closeServer, listen } from './http/listen.ts';
import { installNativeCrc32c } from './native-crc.ts';
import { createInstrumentedServer } from './observability/http-metrics.ts';
import type { Logger } from './observability/log.ts';
import { ServerMetrics } from './observability/metrics.ts';
import { TierServiceMetrics } from './observability/tier-metrics.ts';
import { Access } from './security/access.ts';
import { checkBinding } from './security/binding.ts';

/** A key no transfer ever writes: its HEAD answers 404 on a healthy store. */
export const BACKEND_PROBE_KEY = '.kelp-readyz-probe';
/** One probe per backend per this long at most. */
export const BACKEND_PROBE_CACHE_MS = 10_000;
/** A probe or master check that does not answer in this long fails. */
const PROBE_TIMEOUT_MS = 1_500;

export interface TierServerOptions {
  host: string;
  port: number;
  master: string;
  rules: readonly TierRule[];
  backends: BackendConfig[];
  metrics: boolean;
  metricsKey?: string;
  adminKey?: string;
  clusterKey?: string;
  /** Listen on a non-loopback address without a metrics, admin or cluster key (refused otherwise). */
  insecure?: boolean;
  log: Logger;
}

export interface TierServer {
  server: Server;
  address: string;
  health: Health;
  /** Pass to TierService as `onRound`; undefined when metrics are off. */
  onRound?: TierServiceMetrics['onRound'];
  close(): Promise<void>;
}

interface Probe {
  at: number;
  ok: boolean;
  detail: string;
}

/** Readiness of the backends the rules name, from this process's view of them. */
function backendCheck(o: TierServerOptions) {
  const named = [...new Set(o.rules.map((r) => normalizeBackendName(r.backend)))];
  const opened = new Map<string, Promise<TierBackend>>();
  const probes = new Map<string, Probe>();

  const probe = async (config: BackendConfig, name: string): Promise<Probe> => {
    const cached = probes.get(name);
    if (cached && Date.now() - cached.at < BACKEND_PROBE_CACHE_MS) return cached;
    let result: Probe;
    try {
      let backend = opened.get(name);
      if (!backend) {
        backend = createBackend(config);
        opened.set(name, backend);
      }
      await (await backend).stat(BACKEND_PROBE_KEY, AbortSignal.timeout(PROBE_TIMEOUT_MS));
      result = { at: Date.now(), ok: true, detail: 'answers' };
    } catch (err) {
      opened.delete(name);
      result = { at: Date.now(), ok: false, detail: err instanceof Error ? err.message : String(err) };
    }
    probes.set(name, result);
    return result;
  };

  const check = async () => {
    const parts = await Promise.all(
      named.map(async (name): Promise<Probe & { name: string }> => {
        const config = o.backends.find((b) => `${b.type}.${b.id}` === name);
        if (name.startsWith('local.'))
          return { name, at: 0, ok: true, detail: 'on the volume servers: checked there' };
        if (!config) return { name, at: 0, ok: true, detail: 'not configured here: not checked' };
        return { name, ...(await probe(config, name)) };
      }),
    );
    return {
      ok: parts.every((p) => p.ok),
      detail: parts.map((p) => `${p.name}: ${p.detail}`).join('; ') || 'no policy names a backend',
    };
  };
  const close = async () => {
    await Promise.all([...opened.values()].map((b) => b.then((x) => x.close()).catch(() => {})));
  };
  return { check, close };
}

export async function startTierServer(o: TierServerOptions): Promise<TierServer> {
  // Tier index pages and GCS transfers are CRC-32C checked: native from here on (decision 0002).
  installNativeCrc32c();
  const missing = o.metricsKey || o.adminKey || o.clusterKey ? [] : ['KELP_METRICS_KEY or KELP_ADMIN_KEY'];
  // Its endpoints change nothing, but a scrape reveals the cluster's shape: the same rule as the servers.
  const warning = checkBinding('kelp tier serve', o.host, missing, o.insecure === true);
  if (warning) o.log.warn(warning);
  const access = new Access(o);
  const metrics = o.metrics ? new ServerMetrics() : undefined;
  const serviceMetrics = metrics ? new TierServiceMetrics(metrics) : undefined;
  const backends = backendCheck(o);
  const masters = new MasterClient(o.master, { timeoutMs: PROBE_TIMEOUT_MS });
  const health = new Health()
    .add('master', async () => {
      // Any of the masters given (`a:9333,b:9333`) will do: each answers /cluster/status.
      try {
        const { master } = await masters.json('/cluster/status');
        return { ok: true, detail: `${master.replace(/^https?:\/\//, '')} answers` };
      } catch (err) {
        if (!(err instanceof KelpError)) throw err;
        return { ok: false, detail: err.message };
      }
    })
    .add('backends', backends.check);
  const server = createInstrumentedServer(
    () => {
      throw new NotFoundError('kelp tier serve answers /healthz, /readyz and /metrics only');
    },
    { routes: ['other'], routeOf: () => 0, health, access, metrics, log: o.log },
  );
  const address = await listen(server, o.host, o.port);
  return {
    server,
    address,
    health,
    onRound: serviceMetrics?.onRound,
    async close() {
      health.markStopping();
      await closeServer(server);
      await backends.close();
    },
  };
}
