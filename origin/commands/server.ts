import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { BackendConfig } from '../../tiering/backends/backend.ts';
import { SERVER_OPTIONS, type ServerOptions } from '../config.ts';
import { masterList } from '../http/masters.ts';
import type { MasterConfig } from '../master/server.ts';
import type { startVolumeServer, VolumeServerConfig } from '../volume/server.ts';
import { startLogging } from './logging.ts';
import {
  addOptions,
  defined,
  describeBackends,
  describeEdgePurge,
  edgePurgeConfig,
  MIB,
  masterSecurity,
  resizeReadConfig,
  resolveBackends,
  resolveFlags,
  volumeSecurity,
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
    vacuumIntervalMs: o['master.vacuumInterval'],
    garbageThreshold: o['master.garbageThreshold'],
    edgeHeatPersistMs: o['master.edgeHeatPersistInterval'],
    ...masterSecurity(o),
    etcd: o.etcd,
    etcdPrefix: o.etcdPrefix,
    metrics: o.metrics,
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
      ...volumeSecurity(o),
      metrics: o.metrics,
      drainSeconds: o.drainSeconds,
    }),
    locations: [{ dir, maxVolumes: o['volume.max'] }],
    backends,
    read: resizeReadConfig(o),
    ...defined({ edgePurge: edgePurgeConfig(o) }),
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
    // Loaded here, not above, as in `kelp master` and `kelp volume`.
    const [{ startMaster }, { startVolumeServer }] = await Promise.all([
      import('../master/server.ts'),
      import('../volume/server.ts'),
    ]);
    const master = await startMaster({ ...configs.master, logger: log });
    let volume: Awaited<ReturnType<typeof startVolumeServer>>;
    try {
      // Port 0 is fine for the master: the volume server is told the address actually bound.
      // With peers (several masters), the volume server heartbeats every one of them.
      const masters = [master.address, ...masterList(resolution.values['master.peers'])].join(',');
      // inProcess: the master's calls to it (each /submit's upload) skip the loopback socket.
      volume = await startVolumeServer({ ...configs.volume, master: masters, logger: log, inProcess: true });
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
    const state = configs.master.etcd
      ? `state in etcd ${configs.master.etcd.join(',')}`
      : `state in ${configs.master.mdir}`;
    log.info(`kelp master listening on http://${master.address} (${state})`);
    log.info(
      `kelp volume server listening on http://${volume.address} (data in ${configs.volume.locations[0]!.dir}; master ${master.address})`,
    );
    log.info(`tier backends: ${describeBackends(configs.volume.backends, configs.volume.locations[0]!.dir)}`);
    log.info(describeEdgePurge(configs.volume.edgePurge));
  });
}
