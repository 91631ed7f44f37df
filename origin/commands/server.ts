import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { BackendConfig } from '../../tiering/backend.ts';
import { SERVER_OPTIONS, type ServerOptions } from '../config.ts';
import { type MasterConfig, startMaster } from '../master/server.ts';
import { startVolumeServer, type VolumeServerConfig } from '../volume/server.ts';
import { startLogging } from './logging.ts';
import {
  addOptions,
  defined,
  describeBackends,
  MIB,
  resizeReadConfig,
  resolveBackends,
  resolveFlags,
} from './options.ts';
import { stopOnSignals } from './signals.ts';

/** Master state in DIR/master (unless --master.mdir), volumes in DIR: the layout `kelp master` + `kelp volume` use by default. */
export function serverConfigs(
  o: ServerOptions,
  backends: BackendConfig[] = [],
): {
  master: Partial<MasterConfig>;
  volume: Omit<Partial<VolumeServerConfig>, 'master'> &
    Pick<VolumeServerConfig, 'locations' | 'backends' | 'read'>;
} {
  const dir = resolve(o.dir);
  const master = defined({
    host: o.ip,
    port: o['master.port'],
    mdir: o['master.mdir'] ? resolve(o['master.mdir']) : join(dir, 'master'),
    volumeSizeLimitBytes: o['master.volumeSizeLimitMB'] * MIB,
    defaultReplication: o['master.defaultReplication'],
    pulseSeconds: o['master.pulseSeconds'],
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
  const volume = {
    ...defined({
      host: o.ip,
      port: o['volume.port'],
      fsync: o['volume.fsync'],
      // One size limit and one pulse for the whole process: the master's.
      sizeLimitBytes: o['master.volumeSizeLimitMB'] * MIB,
      pulseSeconds: o['master.pulseSeconds'],
      maxUploadBytes: o['volume.fileSizeLimitMB'] * MIB,
      dataCenter: o['volume.dataCenter'],
      rack: o['volume.rack'],
      publicUrl: o['volume.publicUrl'],
      signingKey: o.signingKey,
      readSigningKey: o.readSigningKey,
      clusterKey: o.clusterKey,
      previousClusterKey: o.previousClusterKey,
      adminKey: o.adminKey,
      insecure: o.insecure,
      metrics: o.metrics,
      metricsKey: o.metricsKey,
      drainSeconds: o.drainSeconds,
    }),
    locations: [{ dir, maxVolumes: o['volume.max'] }],
    backends,
    read: resizeReadConfig(o),
  };
  return { master, volume };
}

export function registerServerCommand(program: Command): void {
  const cmd = program
    .command('server')
    .description(
      'run a master and one volume server in one process (volumes in DIR, master state in DIR/master)',
    );
  addOptions(cmd, SERVER_OPTIONS).action(async () => {
    const resolution = resolveFlags(cmd, SERVER_OPTIONS);
    const log = startLogging(resolution.values);
    const configs = serverConfigs(resolution.values, resolveBackends(resolution));
    const master = await startMaster({ ...configs.master, logger: log });
    let volume: Awaited<ReturnType<typeof startVolumeServer>>;
    try {
      // Port 0 is fine for the master: the volume server is told the address actually bound.
      volume = await startVolumeServer({ ...configs.volume, master: master.address, logger: log });
    } catch (err) {
      await master.close();
      throw err;
    }
    // Handlers first: whoever reads the lines below may signal at once.
    stopOnSignals(async () => {
      // The volume server first: it drains, then says goodbye to a master still there to hear it.
      await volume.shutdown();
      await master.shutdown();
    }, log);
    log.info(`kelp master listening on http://${master.address} (state in ${configs.master.mdir})`);
    log.info(
      `kelp volume server listening on http://${volume.address} (data in ${configs.volume.locations[0]!.dir}; master ${master.address})`,
    );
    log.info(`tier backends: ${describeBackends(configs.volume.backends, configs.volume.locations[0]!.dir)}`);
  });
}
