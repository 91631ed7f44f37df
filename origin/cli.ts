#!/usr/bin/env node
/**
 * The `kelp` command. Each subcommand lives in origin/commands/ and registers
 * itself on the program; `kelp <command> --help` documents every option, and
 * origin/config.ts resolves them (defaults < kelp.toml < KELP_* env < flags).
 */
import { Command } from 'commander';
import { KelpError } from '../shared/errors.ts';
import { TierRequestError } from '../tiering/service/client.ts';
import { registerAdminCommand } from './commands/admin.ts';
import { ClientError } from './commands/client.ts';
import { registerDeleteCommand } from './commands/delete.ts';
import { registerDownloadCommand } from './commands/download.ts';
import { registerMasterCommand } from './commands/master.ts';
import { registerServerCommand } from './commands/server.ts';
import { registerTierCommand } from './commands/tier.ts';
import { registerUploadCommand } from './commands/upload.ts';
import { registerVolumeCommand } from './commands/volume.ts';
import { ConfigError } from './config.ts';
import { installNativeCrc32c } from './native-crc.ts';
import { KELP_VERSION_STRING } from './version.ts';

const program = new Command('kelp')
  .description('Kelp: a blob store for the edge (Haystack volumes, SeaweedFS-compatible APIs)')
  .version(KELP_VERSION_STRING)
  .showHelpAfterError('(add --help for usage)');

// Offline commands (volume checks, exports) hash needles too, not only the servers.
installNativeCrc32c();

registerServerCommand(program);
registerMasterCommand(program);
registerVolumeCommand(program);
registerUploadCommand(program);
registerDownloadCommand(program);
registerDeleteCommand(program);
registerTierCommand(program);
registerAdminCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  // Problems the user can fix get one line; anything else keeps its stack.
  const code = (err as NodeJS.ErrnoException).code;
  if (err instanceof ConfigError) {
    console.error(`kelp: ${err.message}`);
    process.exit(2);
  } else if (err instanceof ClientError || err instanceof TierRequestError || err instanceof KelpError) {
    console.error(`kelp: ${err.message}`);
    process.exit(1);
  } else if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
    const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
    console.error(`kelp: cannot listen on ${e.address}:${e.port}: ${code}`);
    process.exit(1);
  } else {
    throw err;
  }
}
