import type { Command } from 'commander';
import { InvalidFidError, KelpError } from '../../shared/errors.ts';
import { parseFid } from '../../shared/fid.ts';
import { DELETE_OPTIONS, type DeleteOptions } from '../config.ts';
import { ClientError, cli, masters, volumes } from './client.ts';
import { clientAuth } from './credentials.ts';
import { addOptions, resolveFlags } from './options.ts';

/** One line of `kelp delete` output: the volume server's `{size}` with the fid. */
export interface DeleteLine {
  fid: string;
  size: number;
}

/**
 * Looks the fid up (a secured master signs a delete token for a client with a key) and
 * DELETEs it at the first location that answers; that server replicates the
 * delete and tells the edge (purge event), as for `curl -X DELETE`.
 */
export async function deleteFile(fid: string, o: DeleteOptions): Promise<DeleteLine> {
  try {
    parseFid(fid);
  } catch (err) {
    if (err instanceof InvalidFidError) throw new ClientError(err.message);
    throw err;
  }
  // The master signs a delete token only for an authenticated client (docs/security.md).
  const { lookup, token } = await cli(() => masters(o.master, () => clientAuth(o.key)).lookupFile(fid));
  const failures: string[] = [];
  for (const loc of lookup.locations) {
    try {
      const { size } = await volumes().delete(loc.url || loc.publicUrl, fid, token ? { token } : {});
      return { fid, size };
    } catch (err) {
      if (!(err instanceof KelpError)) throw err;
      // A 4xx is the answer (not found, unauthorized): another replica would say the same.
      if (err.status < 500) throw new ClientError(`${fid}: ${err.message}`);
      failures.push(err.message);
    }
  }
  if (failures.length === 0) throw new ClientError(`${fid}: the master knows no location for it`);
  throw new ClientError(`${fid}: no location deleted it:\n  ${failures.join('\n  ')}`);
}

export function registerDeleteCommand(program: Command): void {
  const cmd = program
    .command('delete')
    .description('delete blobs by file id: look each up on the master, DELETE it at a replica')
    .argument('<fids...>', 'file ids, e.g. 3,01637037d6');
  addOptions(cmd, DELETE_OPTIONS).action(async (fids: string[]) => {
    const { values } = resolveFlags(cmd, DELETE_OPTIONS);
    let failed = 0;
    for (const fid of fids) {
      try {
        console.log(JSON.stringify(await deleteFile(fid, values)));
      } catch (err) {
        if (!(err instanceof ClientError)) throw err;
        console.error(`kelp delete: ${err.message}`);
        failed++;
      }
    }
    if (failed) process.exitCode = 1;
  });
}
