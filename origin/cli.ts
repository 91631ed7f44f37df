#!/usr/bin/env node
/**
 * The `kelp` command. Each subcommand lives in origin/commands/ and registers
 * itself on the program; `kelp <command> --help` documents every option.
 */
import { Command } from 'commander';
import { registerVolumeCommand } from './commands/volume.ts';
import { KELP_VERSION } from './volume/admin-handler.ts';

const program = new Command('kelp')
  .description('Kelp: a blob store for the edge (Haystack volumes, SeaweedFS-compatible APIs)')
  .version(KELP_VERSION);

registerVolumeCommand(program);

await program.parseAsync(process.argv);
