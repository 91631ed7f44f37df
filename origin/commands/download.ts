import { createWriteStream, renameSync, rmSync } from 'node:fs';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { Command } from 'commander';
import { InvalidFidError, KelpError } from '../../shared/errors.ts';
import { parseFid } from '../../shared/fid.ts';
import { DOWNLOAD_OPTIONS, type DownloadOptions } from '../config.ts';
import { ClientError, cli, masters, volumes } from './client.ts';
import { clientAuth } from './credentials.ts';
import { addOptions, resolveFlags } from './options.ts';

/**
 * Looks the fid up and GETs it from the first location that answers 200,
 * failing over on connection errors and non-2xx answers. Once bytes flow
 * there is no failover: a broken body is an error (and -o leaves no file).
 */
export async function openDownload(fid: string, o: DownloadOptions): Promise<Response> {
  try {
    parseFid(fid);
  } catch (err) {
    if (err instanceof InvalidFidError) throw new ClientError(err.message);
    throw err;
  }
  // A master with a read key signs a read token for an authenticated client; volume servers that want one find it here.
  const { lookup, token } = await cli(() =>
    masters(o.master, () => clientAuth(o.key)).lookupFile(fid, { read: true }),
  );
  const failures: string[] = [];
  for (const loc of lookup.locations) {
    try {
      return await volumes().read(loc.publicUrl || loc.url, fid, token ? { token } : {});
    } catch (err) {
      if (!(err instanceof KelpError)) throw err;
      failures.push(err.message);
    }
  }
  if (failures.length === 0) throw new ClientError(`${fid}: the master knows no location for it`);
  throw new ClientError(`${fid}: no location served it:\n  ${failures.join('\n  ')}`);
}

async function writeTo(res: Response, out: Writable, end = true): Promise<void> {
  if (!res.body) return;
  await pipeline(Readable.fromWeb(res.body as WebReadableStream), out, { end });
}

export function registerDownloadCommand(program: Command): void {
  const cmd = program
    .command('download')
    .description('download a blob by file id: look it up on the master, read it from a replica')
    .argument('<fid>', 'file id, e.g. 3,01637037d6')
    .option('-o, --output <file>', 'write here instead of stdout');
  addOptions(cmd, DOWNLOAD_OPTIONS).action(async (fid: string) => {
    const { values } = resolveFlags(cmd, DOWNLOAD_OPTIONS);
    const output = cmd.opts().output as string | undefined;
    const res = await openDownload(fid, values);
    if (!output) return writeTo(res, process.stdout, false);
    const partial = `${output}.kelp-partial`;
    try {
      await writeTo(res, createWriteStream(partial));
      renameSync(partial, output);
    } catch (err) {
      rmSync(partial, { force: true });
      throw err;
    }
  });
}
