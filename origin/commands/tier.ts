/**
 * `kelp tier upload | download | compact | status | plan | serve`: cloud tiers by hand
 * and by policy. Each finds the cluster through the master (`--master`,
 * [tier] master) and talks to the volume servers over HTTP (tiering/service/client.ts),
 * as the tiering service does; `serve` runs that service (tiering/service/service.ts).
 */
import type { Command } from 'commander';
import { ConflictError, InvalidFidError } from '../../shared/errors.ts';
import { parseVolumeId } from '../../shared/fid.ts';
import {
  type ClusterSnapshot,
  type ClusterVolume,
  readCluster,
  sleep,
  TierClient,
  type TierJob,
  TierRequestError,
} from '../../tiering/service/client.ts';
import { compactVolume, DEFAULT_COMPACT_THRESHOLD } from '../../tiering/service/compact.ts';
import { formatDuration } from '../../tiering/service/duration.ts';
import {
  DEFAULT_RULE,
  describeRule,
  normalizeBackendName,
  type TierRule,
} from '../../tiering/service/policy.ts';
import { describeDecision, formatBytes, planCluster, TierService } from '../../tiering/service/service.ts';
import { ConfigError, TIER_OPTIONS, TIER_SERVE_OPTIONS } from '../config.ts';
import { loadTierRules } from '../tier-config.ts';
import { startTierServer } from '../tier-server.ts';
import { adminAuth } from './credentials.ts';
import { startLogging } from './logging.ts';
import { addOptions, configFileValues, resolveBackends, resolveFlags } from './options.ts';
import { stopOnSignals } from './signals.ts';
import { type Bars, transferBars } from './tier-progress.ts';

/** How often the CLI polls a transfer (the service polls less often: nobody watches it). */
const CLI_POLL_MS = 250;
/** How often `status` redraws its bars. */
const STATUS_POLL_MS = 500;

function volumeIdFlag(raw: unknown): number {
  try {
    return parseVolumeId(String(raw ?? ''));
  } catch (err) {
    if (err instanceof InvalidFidError) throw new ConfigError(`--volume: ${err.message}`);
    throw err;
  }
}

/** The rules of the config file, or the built-in default (said so on stderr). */
function rulesOf(r: { configFile?: string }): { rules: TierRule[]; from: string } {
  const rules = loadTierRules(configFileValues(r), r.configFile);
  if (rules.length) return { rules, from: r.configFile! };
  return { rules: [DEFAULT_RULE], from: 'the built-in default (no [[tier.policy]] in the config)' };
}

/**
 * Runs `action` on every alive replica of `volumeId`, one at a time, waiting
 * for each transfer (a bar on a terminal). A transfer already running there
 * (the tiering service's, say) is waited on instead of started. Stops at the
 * first failure; returns whether all succeeded.
 */
async function moveVolume(
  client: TierClient,
  volumeId: number,
  action: 'upload' | 'download',
  upload: { backend: string; keepLocalDat: boolean },
): Promise<boolean> {
  const servers = await client.locations(volumeId);
  if (servers.length === 0) {
    throw new TierRequestError(`volume ${volumeId}: the master knows no live server holding it`);
  }
  const bars = transferBars();
  try {
    for (const server of servers) {
      const started = Date.now();
      const before = await client.volumeTier(server, volumeId);
      if (action === 'download' && !before.remote && before.job?.state !== 'running') {
        bars.log(`volume ${volumeId} on ${server}: not tiered; nothing to do`);
        continue;
      }
      try {
        if (action === 'upload')
          await client.startUpload(server, volumeId, upload.backend, upload.keepLocalDat);
        else await client.startDownload(server, volumeId);
      } catch (err) {
        if (!(err instanceof TierRequestError && err.serverError instanceof ConflictError)) throw err;
        const now = await client.volumeTier(server, volumeId);
        if (now.job?.state !== 'running') throw err;
        bars.log(`volume ${volumeId} on ${server}: its ${now.job.action} is already running; waiting for it`);
      }
      const bar = bars.bar(`volume ${volumeId} on ${server} ${action}`);
      const job = await client.waitForJob(server, volumeId, {
        pollMs: CLI_POLL_MS,
        onProgress: (j) => bar.update(j),
      });
      bar.done();
      const secs = ((Date.now() - started) / 1000).toFixed(1);
      if (job.state === 'failed') {
        bars.stop();
        console.error(
          `kelp: volume ${volumeId} on ${server}: ${job.action} failed: ${job.error ?? 'unknown error'}`,
        );
        return false;
      }
      const where = job.action === 'upload' ? `to ${job.backend}` : `from ${job.backend}`;
      bars.log(
        `volume ${volumeId} on ${server}: ${job.action} ${where} done (${formatBytes(job.total)} in ${secs} s)`,
      );
    }
  } finally {
    bars.stop();
  }
  return true;
}

// ---- status ----

function ago(unixSeconds: number): string {
  if (!unixSeconds) return '-';
  return `${formatDuration(Date.now() - unixSeconds * 1000)} ago`;
}

function tierState(v: ClusterVolume): string {
  if (v.replicas.length === 0) return 'no live replica';
  const tiered = v.replicas.filter((r) => r.remote);
  const down = v.replicas.some((r) => r.unreachable) ? ' (a server did not answer)' : '';
  if (tiered.length === 0) return `local${down}`;
  if (tiered.length === v.replicas.length) return `${v.remote}${down}`;
  return `${v.remote} on ${tiered.length} of ${v.replicas.length} replicas${down}`;
}

function jobLine(server: string, job: TierJob): string {
  const pct = job.total ? Math.floor((job.bytes / job.total) * 100) : 0;
  const head = `volume ${job.volumeId} on ${server}: ${job.action} ${job.action === 'upload' ? 'to' : 'from'} ${job.backend}`;
  if (job.state === 'running')
    return `${head}: running, ${pct}% (${formatBytes(job.bytes)} of ${formatBytes(job.total)})`;
  if (job.state === 'failed') return `${head}: failed: ${job.error ?? 'unknown error'}`;
  return `${head}: done (${formatBytes(job.total)})`;
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd(),
  );
}

function printStatus(snapshot: ClusterSnapshot): void {
  if (snapshot.volumes.length === 0) console.log('no volumes');
  else {
    const rows = [
      [
        'VOLUME',
        'COLLECTION',
        'SIZE',
        'SEALED',
        'ORIGIN READS/DAY',
        'EDGE READS/DAY',
        'LAST WRITE',
        'TIER',
        'SERVERS',
      ],
    ];
    for (const v of snapshot.volumes) {
      rows.push([
        String(v.id),
        v.collection || '-',
        formatBytes(v.size),
        v.readOnly ? 'yes' : 'no',
        String(Math.round(v.originReadsPerDay ?? v.readsPerDay)),
        String(Math.round(v.edgeReadsPerDay ?? 0)),
        ago(v.modifiedAt),
        tierState(v),
        v.replicas.map((r) => r.server).join(',') || '-',
      ]);
    }
    for (const line of table(rows)) console.log(line);
  }
  for (const [server, why] of snapshot.unreachable) console.log(`server ${server} did not answer: ${why}`);
  const jobs = snapshot.volumes.flatMap((v) =>
    v.replicas.flatMap((r) => (r.job && r.job.state !== 'done' ? [jobLine(r.server, r.job)] : [])),
  );
  if (jobs.length) {
    console.log('');
    console.log('transfers:');
    for (const line of jobs) console.log(`  ${line}`);
  }
}

/** Bars for the running transfers until none is left (terminal only). */
async function followTransfers(client: TierClient, snapshot: ClusterSnapshot, bars: Bars): Promise<void> {
  const live = new Map<string, ReturnType<Bars['bar']>>();
  let running = snapshot.running;
  while (running.length) {
    for (const { server, job } of running) {
      const key = `${server} ${job.volumeId}`;
      if (!live.has(key)) live.set(key, bars.bar(`volume ${job.volumeId} on ${server} ${job.action}`));
      live.get(key)!.update(job);
    }
    await sleep(STATUS_POLL_MS);
    const servers = [...new Set(running.map((r) => r.server))];
    const next: typeof running = [];
    for (const server of servers) {
      const status = await client.serverTier(server);
      for (const job of status.jobs) {
        const key = `${server} ${job.volumeId}`;
        if (job.state === 'running') next.push({ server, job });
        else if (live.has(key)) {
          live.get(key)!.done();
          live.delete(key);
          bars.log(jobLine(server, job));
        }
      }
    }
    running = next;
  }
  bars.stop();
}

// ---- the commands ----

export function registerTierCommand(program: Command): void {
  const tier = program
    .command('tier')
    .description('cloud tiers: move sealed volumes to a backend (S3, GCS, a local folder) and back')
    .addHelpText(
      'after',
      '\nBackends are [backend.<type>.<id>] sections, policies [[tier.policy]] tables: see docs/configuration.md.',
    );

  const upload = tier
    .command('upload')
    .description("upload a volume's .dat to a backend on every server holding it, one at a time")
    .requiredOption('--volume <id>', 'volume id')
    .requiredOption('--backend <type.id>', 'backend to tier to, e.g. s3.default, local.default')
    .option('--keepLocalDat', 'keep the local .dat too (reads go to the backend all the same)');
  addOptions(upload, TIER_OPTIONS).action(async () => {
    const { values } = resolveFlags(upload, TIER_OPTIONS);
    const o = upload.opts() as { volume: string; backend: string; keepLocalDat?: boolean };
    const ok = await moveVolume(
      new TierClient(values.master, adminAuth(values)),
      volumeIdFlag(o.volume),
      'upload',
      {
        backend: normalizeBackendName(o.backend),
        keepLocalDat: o.keepLocalDat === true,
      },
    );
    if (!ok) process.exitCode = 1;
  });

  const download = tier
    .command('download')
    .description('bring a tiered volume back to local disk on every server holding it')
    .requiredOption('--volume <id>', 'volume id');
  addOptions(download, TIER_OPTIONS).action(async () => {
    const { values } = resolveFlags(download, TIER_OPTIONS);
    const o = download.opts() as { volume: string };
    const ok = await moveVolume(
      new TierClient(values.master, adminAuth(values)),
      volumeIdFlag(o.volume),
      'download',
      {
        backend: '',
        keepLocalDat: false,
      },
    );
    if (!ok) process.exitCode = 1;
  });

  const compact = tier
    .command('compact')
    .description(
      'reclaim the cloud space of deleted blobs: download a tiered volume, vacuum it, upload it again (every replica, one at a time)',
    )
    .requiredOption('--volume <id>', 'volume id')
    .option(
      '--garbageThreshold <ratio>',
      'compact a replica only if deletedByteCount / size (its /status) is at least this',
      String(DEFAULT_COMPACT_THRESHOLD),
    )
    .option('--force', 'compact whatever the garbage')
    .option(
      '--backend <type.id>',
      'for a replica found local (a compaction interrupted after its download): where to upload it back (default: its last transfer)',
    );
  addOptions(compact, TIER_OPTIONS).action(async () => {
    const { values } = resolveFlags(compact, TIER_OPTIONS);
    const o = compact.opts() as {
      volume: string;
      garbageThreshold: string;
      force?: boolean;
      backend?: string;
    };
    const volumeId = volumeIdFlag(o.volume);
    const threshold = Number(o.garbageThreshold);
    if (!(threshold >= 0 && threshold <= 1)) {
      throw new ConfigError(`--garbageThreshold: "${o.garbageThreshold}" is not a ratio in 0..1`);
    }
    const bars = transferBars();
    try {
      const outcomes = await compactVolume(new TierClient(values.master, adminAuth(values)), volumeId, {
        garbageThreshold: threshold,
        force: o.force === true,
        ...(o.backend ? { backend: normalizeBackendName(o.backend) } : {}),
        pollMs: CLI_POLL_MS,
        log: (line) => bars.log(line),
        track: (label) => bars.bar(label),
      });
      const failed = outcomes.find((x) => x.kind === 'failed');
      if (failed) {
        bars.stop();
        console.error(`kelp: volume ${volumeId} on ${failed.server}: ${failed.error}`);
        process.exitCode = 1;
      }
    } finally {
      bars.stop();
    }
  });

  const status = tier
    .command('status')
    .description("every volume's tier state and the transfers running (bars on a terminal until they end)")
    .option('--once', 'print once; do not follow running transfers')
    .option('--json', 'print the cluster as JSON');
  addOptions(status, TIER_OPTIONS).action(async () => {
    const { values } = resolveFlags(status, TIER_OPTIONS);
    const o = status.opts() as { once?: boolean; json?: boolean };
    const client = new TierClient(values.master, adminAuth(values));
    const snapshot = await readCluster(client);
    if (o.json) {
      console.log(
        JSON.stringify({ ...snapshot, unreachable: Object.fromEntries(snapshot.unreachable) }, null, 2),
      );
      return;
    }
    printStatus(snapshot);
    if (!o.once && process.stderr.isTTY && snapshot.running.length) {
      console.log('');
      await followTransfers(client, snapshot, transferBars());
    }
  });

  const plan = tier
    .command('plan')
    .description('dry run: what the policies would move now, and why each volume moves or stays')
    .option('--json', 'print the decisions as JSON');
  addOptions(plan, TIER_OPTIONS).action(async () => {
    const resolution = resolveFlags(plan, TIER_OPTIONS);
    const o = plan.opts() as { json?: boolean };
    const { rules, from } = rulesOf(resolution);
    const snapshot = await readCluster(
      new TierClient(resolution.values.master, adminAuth(resolution.values)),
    );
    const decisions = planCluster(snapshot, rules, Date.now());
    if (o.json) {
      console.log(JSON.stringify(decisions, null, 2));
      return;
    }
    console.log(`rules from ${from}:`);
    for (const r of rules) console.log(`  ${describeRule(r)}`);
    const moves = decisions.filter((d) => d.action !== 'none');
    const stays = decisions.filter((d) => d.action === 'none');
    console.log('');
    console.log(
      moves.length
        ? `would move ${moves.length} of ${decisions.length} volumes, one at a time, in this order:`
        : `would move none of ${decisions.length} volumes`,
    );
    for (const d of moves) console.log(`  ${describeDecision(d)}`);
    // Heat as the policies weigh it: the volume servers' reads and the edge's, which no origin saw.
    console.log('');
    const heatRows = [['VOLUME', 'ORIGIN READS/DAY', 'EDGE READS/DAY', 'TOTAL']];
    for (const v of snapshot.volumes) {
      heatRows.push([
        String(v.id),
        String(Math.round(v.originReadsPerDay ?? v.readsPerDay)),
        String(Math.round(v.edgeReadsPerDay ?? 0)),
        String(Math.round(v.readsPerDay)),
      ]);
    }
    for (const line of table(heatRows)) console.log(`  ${line}`);
    if (stays.length) {
      console.log('');
      console.log('stay as they are:');
      for (const d of stays) console.log(`  ${describeDecision(d)}`);
    }
  });

  const serve = tier
    .command('serve')
    .description('run the tiering service: apply the policies, moving one volume at a time, until stopped')
    .option('--once', 'run rounds until nothing is left to move, then exit (for cron)');
  addOptions(serve, TIER_SERVE_OPTIONS).action(async () => {
    const resolution = resolveFlags(serve, TIER_SERVE_OPTIONS);
    const values = resolution.values;
    const { master, interval } = values;
    const o = serve.opts() as { once?: boolean };
    const log = startLogging(values);
    const { rules, from } = rulesOf(resolution);
    const serviceLog = log.child({ component: 'tier-service' });
    if (o.once) {
      const service = new TierService({
        client: new TierClient(master, adminAuth(values)),
        rules,
        intervalMs: interval,
        logger: serviceLog,
      });
      for (;;) {
        const outcome = await service.round();
        if (outcome.kind === 'idle') return;
        if (outcome.kind === 'failed') {
          process.exitCode = 1;
          return;
        }
      }
    }
    const http = await startTierServer({
      host: values.ip,
      port: values.port,
      master,
      rules,
      backends: resolveBackends(resolution),
      metrics: values.metrics,
      metricsKey: values.metricsKey,
      adminKey: values.adminKey,
      clusterKey: values.clusterKey,
      insecure: values.insecure,
      log,
    });
    const service = new TierService({
      client: new TierClient(master, adminAuth(values)),
      rules,
      intervalMs: interval,
      logger: serviceLog,
      onRound: http.onRound,
    });
    const abort = new AbortController();
    const running = service.run(abort.signal);
    // Handlers first: whoever reads the lines below may signal at once.
    stopOnSignals(async () => {
      http.health.markStopping();
      abort.abort();
      await running;
      await http.close();
      log.info('kelp tier serve: stopped (a transfer in progress goes on in its volume server)');
    }, log);
    log.info(`kelp tier serve: master ${master}, a round every ${formatDuration(interval)} when idle`);
    log.info(`kelp tier serve: health and metrics listening on http://${http.address}`);
    log.info(`rules from ${from}:`);
    for (const r of rules) log.info(`  ${describeRule(r)}`);
    await running;
  });
}
