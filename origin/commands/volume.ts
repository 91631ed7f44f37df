import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { BackendConfig } from '../../tiering/backends/backend.ts';
import { VOLUME_OPTIONS, type VolumeOptions } from '../config.ts';
import type { startVolumeServer, VolumeServerConfig } from '../volume/server.ts';
import { startLogging } from './logging.ts';
import {
  addOptions,
  defined,
  describeBackends,
  describeEdgePurge,
  edgePurgeConfig,
  MIB,
  resizeReadConfig,
  resolveBackends,
  resolveFlags,
  volumeSecurity,
} from './options.ts';
import { stopOnSignals } from './signals.ts';

type StartConfig = Parameters<typeof startVolumeServer>[0];

export function volumeConfig(o: VolumeOptions, backends: BackendConfig[] = []): StartConfig {
  const locations = o.dir.map((dir, i) => ({
    dir: resolve(dir),
    maxVolumes: o.max[i] ?? o.max[o.max.length - 1]!,
  }));
  const config: Partial<VolumeServerConfig> = defined({
    host: o.ip,
    port: o.port,
    fsync: o.fsync,
    sizeLimitBytes: o.volumeSizeLimitMB * MIB,
    maxUploadBytes: o.fileSizeLimitMB * MIB,
    // "" = a standalone volume server that reports to no master.
    master: o.master || undefined,
    dataCenter: o.dataCenter,
    rack: o.rack,
    publicUrl: o.publicUrl,
    ...volumeSecurity(o),
    pulseSeconds: o.pulseSeconds,
    metrics: o.metrics,
    drainSeconds: o.drainSeconds,
  });
  const edgePurge = edgePurgeConfig(o);
  return { ...config, locations, backends, read: resizeReadConfig(o), ...(edgePurge ? { edgePurge } : {}) };
}

export function registerVolumeCommand(program: Command): void {
  const cmd = program
    .command('volume')
    .description('run a volume server: Haystack volumes on local disk, served over HTTP');
  addOptions(cmd, VOLUME_OPTIONS).action(async () => {
    const resolution = resolveFlags(cmd, VOLUME_OPTIONS);
    const log = startLogging(resolution.values);
    const config = volumeConfig(resolution.values, resolveBackends(resolution));
    // Loaded here, not above: the master's modules (zod, etcd's gRPC) must not sit in a volume server's RSS.
    const { startVolumeServer } = await import('../volume/server.ts');
    const server = await startVolumeServer({ ...config, logger: log });
    const dirs = config.locations.map((l) => l.dir).join(', ');
    const master = config.master ? `master ${config.master}` : 'no master';
    // Handlers first: whoever reads the line below may signal at once.
    stopOnSignals(() => server.shutdown(), log);
    log.info(`kelp volume server listening on http://${server.address} (data in ${dirs}; ${master})`);
    log.info(`tier backends: ${describeBackends(config.backends ?? [], config.locations[0]!.dir)}`);
    log.info(describeEdgePurge(config.edgePurge));
  });
}
