import { resolve } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { startVolumeServer } from '../volume/server.ts';
import { FSYNC_POLICIES, type FsyncPolicy } from '../volume/syncer.ts';
import { stopOnSignals } from './signals.ts';

const MIB = 1024 * 1024;

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('must be a port 0-65535');
  return n;
}

export function registerVolumeCommand(program: Command): void {
  program
    .command('volume')
    .description('run a volume server: Haystack volumes on local disk, served over HTTP')
    .option('--ip <address>', 'address to bind', '127.0.0.1')
    .option('--port <port>', 'HTTP port (0 picks a free one)', port, 8080)
    .option('--dir <dirs>', 'comma-separated data directories', './data')
    .option('--max <counts>', 'comma-separated maximum volume count per directory', '8')
    .option('--master <host:port>', 'master to heartbeat to (retried in the background)', '127.0.0.1:9333')
    .addOption(
      new Option('--fsync <policy>', 'when a write is acknowledged: batch (group commit), always, never')
        .choices(FSYNC_POLICIES)
        .default('batch'),
    )
    .option('--volumeSizeLimitMB <mb>', 'seal a volume at this size', positiveInt, 30 * 1024)
    .option('--fileSizeLimitMB <mb>', 'largest upload accepted (413 beyond)', positiveInt, 256)
    .action(async (opts) => {
      const dirs = String(opts.dir)
        .split(',')
        .map((d) => resolve(d.trim()));
      const maxes = String(opts.max)
        .split(',')
        .map((m) => positiveInt(m.trim()));
      const locations = dirs.map((dir, i) => ({ dir, maxVolumes: maxes[i] ?? maxes[maxes.length - 1]! }));
      const server = await startVolumeServer({
        host: opts.ip,
        port: opts.port,
        locations,
        fsync: opts.fsync as FsyncPolicy,
        sizeLimitBytes: opts.volumeSizeLimitMB * MIB,
        maxUploadBytes: opts.fileSizeLimitMB * MIB,
      });
      console.log(`kelp volume server listening on http://${server.address} (data in ${dirs.join(', ')})`);
      stopOnSignals(() => server.close());
    });
}
