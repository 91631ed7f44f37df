import { resolve } from 'node:path';
import type { Command } from 'commander';
import { MASTER_OPTIONS, type MasterOptions } from '../config.ts';
import type { MasterConfig } from '../master/server.ts';
import { startLogging } from './logging.ts';
import { addOptions, defined, MIB, masterSecurity, resolveFlags } from './options.ts';
import { stopOnSignals } from './signals.ts';

export function masterConfig(o: MasterOptions): Partial<MasterConfig> {
  return defined({
    host: o.ip,
    port: o.port,
    mdir: resolve(o.mdir),
    volumeSizeLimitBytes: o.volumeSizeLimitMB * MIB,
    defaultReplication: o.defaultReplication,
    pulseSeconds: o.pulseSeconds,
    vacuumIntervalMs: o.vacuumInterval,
    garbageThreshold: o.garbageThreshold,
    edgeHeatPersistMs: o.edgeHeatPersistInterval,
    ...masterSecurity(o),
    etcd: o.etcd,
    etcdPrefix: o.etcdPrefix,
    metrics: o.metrics,
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
    // Loaded here, not above: every command's modules would otherwise sit in every kelp process's RSS.
    const { startMaster } = await import('../master/server.ts');
    const master = await startMaster({ ...masterConfig(values), logger: log });
    // Handlers first: whoever reads the line below may signal at once.
    stopOnSignals(() => master.shutdown(), log);
    const state = values.etcd ? `state in etcd ${values.etcd.join(',')}` : `state in ${resolve(values.mdir)}`;
    log.info(`kelp master listening on http://${master.address} (${state})`);
  });
}
