/**
 * POST/PUT `/<vid>,<key><cookie>` (brief §5): multipart or raw body in, one
 * needle appended, 201 `{name, size, eTag, mime}` once it is durable. DELETE
 * appends a tombstone and answers 202 `{size}`.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { gunzipSync, gzipSync } from 'node:zlib';
import { BadRequestError, InvalidFidError } from '../../shared/errors.ts';
import { formatFid, type ParsedFid, parseFidPath } from '../../shared/fid.ts';
import { FLAG_GZIP, MAX_NAME_BYTES, type NeedleMeta } from '../../shared/needle.ts';
import { copyCount } from '../../shared/placement.ts';
import { isEmptyTtl, parseTtl } from '../../shared/ttl.ts';
import { isCompressible, mimeFromExtension } from '../http/mime.ts';
import { sendJson } from '../http/respond.ts';
import { tokenFrom, verifyFileToken } from '../security/jwt.ts';
import { assertKnownParams } from './params.ts';
import { etagOf } from './read-handler.ts';
import type { Replicator } from './replication.ts';
import type { Store } from './store.ts';
import { parseUpload } from './upload.ts';

/** `type=replicate` marks a replica's copy of a write; `jwt` is one of the three places a token may come in. */
const WRITE_PARAMS = new Set(['ttl', 'ts', 'type', 'jwt']);
const DELETE_PARAMS = new Set(['type', 'jwt']);
/** Auto-gzip keeps the compressed form only if it saves at least this fraction. */
const MIN_GZIP_SAVING = 0.1;
/** Below this, gzip's header costs more than it can save. */
const MIN_GZIP_INPUT_BYTES = 128;
const EMPTY = new Uint8Array(0);

function utf8(s: string): Uint8Array {
  return s.length === 0 ? EMPTY : Buffer.from(s, 'utf8');
}

export interface WriteConfig {
  maxUploadBytes: number;
  now: () => number;
  /** With a key, writes and deletes need the master's token for the fid (401 otherwise). */
  signingKey?: string;
  replicator: Replicator;
}

/** Checks the token (when the cluster is secured) against the fid without its delta suffix. */
async function authorize(
  req: IncomingMessage,
  query: URLSearchParams | null,
  config: WriteConfig,
  fid: ParsedFid,
): Promise<string | undefined> {
  const token = tokenFrom(req, query);
  if (config.signingKey) {
    await verifyFileToken(config.signingKey, token, formatFid({ ...fid, key: fid.key - fid.delta }));
  }
  return token;
}

/** The client-facing write, not a replica's copy of one: only it fans out. */
function isPrimary(query: URLSearchParams | null): boolean {
  return query?.get('type') !== 'replicate';
}

/** Uploads take the comma form only (brief §1), optionally with an extension. */
function uploadFid(pathname: string) {
  const parsed = parseFidPath(pathname);
  if (!pathname.includes(',') || parsed.name !== undefined) {
    throw new InvalidFidError('uploads use the comma form: /<volumeId>,<key><cookie>');
  }
  return parsed;
}

function parseTimestamp(raw: string | null | undefined, now: number): number {
  if (raw === null || raw === undefined) return Math.floor(now / 1000);
  if (!/^\d{1,12}$/.test(raw)) throw new BadRequestError('ts must be Unix seconds');
  return Number(raw);
}

export async function handleWrite(
  req: IncomingMessage,
  res: ServerResponse,
  store: Store,
  pathname: string,
  query: URLSearchParams | null,
  config: WriteConfig,
): Promise<void> {
  const { fid, ext } = uploadFid(pathname);
  if (query) assertKnownParams(query, WRITE_PARAMS);
  // Only a secured cluster needs the (asynchronous) token check.
  const token = config.signingKey ? await authorize(req, query, config, fid) : tokenFrom(req, query);
  const ttl = parseTtl(query?.get('ttl') ?? '');
  const lastModified = parseTimestamp(query?.get('ts'), config.now());
  const volume = store.get(fid.volumeId);
  const upload = await parseUpload(req, '', config.maxUploadBytes);
  const plain = upload.gzipped ? gunzipOrReject(upload.data) : upload.data;
  if (upload.md5 !== undefined && createHash('md5').update(plain).digest('base64') !== upload.md5) {
    throw new BadRequestError('Content-MD5 does not match the uploaded bytes');
  }
  const nameExt = upload.name.includes('.') ? upload.name.slice(upload.name.lastIndexOf('.') + 1) : undefined;
  const mime =
    upload.mime || (ext && mimeFromExtension(ext)) || (nameExt && mimeFromExtension(nameExt)) || '';
  let data: Uint8Array = upload.data;
  let flags = upload.gzipped ? FLAG_GZIP : 0;
  if (!upload.gzipped && data.length >= MIN_GZIP_INPUT_BYTES && isCompressible(mime)) {
    const gz = gzipSync(data);
    if (gz.length <= data.length * (1 - MIN_GZIP_SAVING)) {
      data = gz;
      flags |= FLAG_GZIP;
    }
  }
  // Buffer.from (pooled) rather than TextEncoder (a fresh ArrayBuffer each): the same UTF-8 bytes.
  const nameBytes = utf8(upload.name);
  const meta: NeedleMeta = {
    flags,
    name: nameBytes.length <= MAX_NAME_BYTES ? nameBytes : undefined,
    mime: utf8(mime),
    lastModified,
    ttl: isEmptyTtl(ttl) ? undefined : ttl,
    pairs: upload.pairs ? utf8(JSON.stringify(upload.pairs)) : undefined,
  };
  const copies = copyCount(volume.superBlock.placement);
  const fanOut = copies > 1 && isPrimary(query);
  // Known-missing replicas fail the write before anything is stored, so no one-copy blob is left behind.
  if (fanOut) await config.replicator.peers(fid.volumeId, copies);
  const result = await volume.write({ key: fid.key, cookie: fid.cookie, data, meta });
  if (fanOut) {
    await config.replicator.write(fid.volumeId, copies, { fid: pathname.slice(1), data, meta, token });
  }
  const eTag = etagOf(result.checksum);
  if (result.unchanged) {
    res.writeHead(204, { ETag: eTag });
    res.end();
    return;
  }
  sendJson(
    res,
    201,
    { name: upload.name, size: plain.length, eTag: eTag.slice(1, -1), mime },
    { ETag: eTag },
  );
}

function gunzipOrReject(data: Buffer): Buffer {
  try {
    return gunzipSync(data);
  } catch (err) {
    throw new BadRequestError('body sent with Content-Encoding: gzip is not valid gzip', { cause: err });
  }
}

export async function handleDelete(
  req: IncomingMessage,
  res: ServerResponse,
  store: Store,
  pathname: string,
  query: URLSearchParams | null,
  config: WriteConfig,
): Promise<void> {
  const { fid } = parseFidPath(pathname);
  if (query) assertKnownParams(query, DELETE_PARAMS);
  const token = await authorize(req, query, config, fid);
  const volume = store.get(fid.volumeId);
  const copies = copyCount(volume.superBlock.placement);
  const fanOut = copies > 1 && isPrimary(query);
  if (fanOut) await config.replicator.peers(fid.volumeId, copies);
  const size = await volume.delete(fid.key, fid.cookie);
  if (fanOut) await config.replicator.delete(fid.volumeId, copies, formatFid(fid), token);
  sendJson(res, 202, { size });
}
