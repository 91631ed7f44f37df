import { openAsBlob, statSync } from 'node:fs';
import { basename } from 'node:path';
import type { Command } from 'commander';
import { UPLOAD_OPTIONS, type UploadOptions } from '../config.ts';
import { ClientError, cli, LONG_CALL_TIMEOUT_MS, masters, volumes } from './client.ts';
import { clientAuth } from './credentials.ts';
import { addOptions, resolveFlags } from './options.ts';

/** One line of `kelp upload` output, the shape of the master's `/submit` answer. */
export interface UploadLine {
  fileName: string;
  fid: string;
  fileUrl: string;
  size: number;
}

/** Assign a fid, then POST the file as multipart to the volume server it names (with the write token, if any). */
export async function uploadFile(path: string, o: UploadOptions): Promise<UploadLine> {
  const stat = statSync(path, { throwIfNoEntry: false });
  if (!stat?.isFile()) throw new ClientError(`${path}: not a file`);
  const q = new URLSearchParams();
  if (o.collection) q.set('collection', o.collection);
  if (o.replication) q.set('replication', o.replication);
  if (o.ttl) q.set('ttl', o.ttl);
  const assigned = await cli(() => masters(o.master, () => clientAuth(o.key)).assign(q));
  const form = new FormData();
  const name = basename(path);
  form.append('file', await openAsBlob(path), name);
  // The answer comes once the whole file is stored: the long bound, not the default.
  const stored = await cli(() =>
    volumes().upload(assigned.url, assigned.fid, form, {
      ...(assigned.auth ? { token: assigned.auth } : {}),
      ...(o.ttl ? { ttl: o.ttl } : {}),
      timeoutMs: LONG_CALL_TIMEOUT_MS,
    }),
  );
  return {
    fileName: name,
    fid: assigned.fid,
    fileUrl: `${assigned.publicUrl}/${assigned.fid}`,
    size: stored.size,
  };
}

export function registerUploadCommand(program: Command): void {
  const cmd = program
    .command('upload')
    .description('upload files: assign a file id from the master, then POST each file to its volume server')
    .argument('<files...>', 'files to upload');
  addOptions(cmd, UPLOAD_OPTIONS).action(async (files: string[]) => {
    const { values } = resolveFlags(cmd, UPLOAD_OPTIONS);
    let failed = 0;
    for (const file of files) {
      try {
        console.log(JSON.stringify(await uploadFile(file, values)));
      } catch (err) {
        if (!(err instanceof ClientError)) throw err;
        console.error(`kelp upload: ${err.message}`);
        failed++;
      }
    }
    if (failed) process.exitCode = 1;
  });
}
