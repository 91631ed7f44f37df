import { resolve } from 'node:path';
import type { Command } from 'commander';
import { MASTER_OPTIONS, type MasterOptions } from '../config.ts';
import { type MasterConfig, startMaster } from '../master/server.ts';
import { startLogging } from './logging.ts';
import { addOptions, defined, MIB, resolveFlags } from './options.ts';
import { stopOnSignals } from './signals.ts';

export function masterConfig(o: MasterOptions): Partial<MasterConfig> {
  return defined({
    host: o.ip,
    port: o.port,
    mdir: resolve(o.mdir),
    volumeSizeLimitBytes: o.volumeSizeLimitMB * MIB,
    defaultReplication: o.defaultReplication,
    pulseSeconds: o.pulseSeconds,
    signingKey: o.signingKey,
    readSigningKey: o.readSigningKey,
    clusterKey: o.clusterKey,
    previousClusterKey: o.previousClusterKey,
    adminKey: o.adminKey,
    clientKeys: o.clientKeys,
    whiteList: o.whiteList,
    insecure: o.insecure,
    metrics: o.metrics,
    metricsKey: o.metricsKey,
    drainSeconds: o.drainSeconds,
  });
}

export function registerMasterCommand(program: Command): void {
  const cmd = program
    .command('master')
    .description('run the master: assigns file ids, tracks volume servers by heartbeat, answers lookups');
  addOptions(cmd, MASTER_OPTIONS).action(async () => {
    const { values } = resolveFlags(cmd, MASTER_OPTIONS);
    const log = startLogging(values);
    const master = await startMaster({ ...masterConfig(values), logger: log });
    // Handlers first: whoever reads the line below may signal at once.
    stopOnSignals(() => master.shutdown(), log);
    log.info(`kelp master listening on http://${master.address} (state in ${resolve(values.mdir)})`);
  });
}
