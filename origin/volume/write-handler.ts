/**
 * POST/PUT `/<vid>,<key><cookie>` (docs/format.md §8): multipart or raw body in, one
 * needle appended, 201 `{name, size, eTag, mime}` once it is durable. DELETE
 * appends a tombstone and answers 202 `{size}`.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { createGunzip, gunzipSync, gzipSync } from 'node:zlib';
import { BadRequestError, InvalidFidError } from '../../shared/errors.ts';
import { formatFid, type ParsedFid, parseFidPath } from '../../shared/fid.ts';
import { isCompressible, mimeFromExtension } from '../../shared/mime.ts';
import { FLAG_GZIP, MAX_NAME_BYTES, type NeedleMeta } from '../../shared/needle.ts';
import { copyCount } from '../../shared/placement.ts';
import { isEmptyTtl, parseTtl, type Ttl } from '../../shared/ttl.ts';
import { assertKnownParams } from '../http/params.ts';
import { sendJson } from '../http/respond.ts';
import {
  parseUpload,
  releaseUpload,
  type Spool,
  spoolDir,
  type Upload,
  type UploadAnswer,
} from '../http/upload.ts';
import type { Logger } from '../observability/log.ts';
import { requestIdOf } from '../observability/request-id.ts';
import {
  assertBody,
  EMPTY_SHA256,
  fileSha256Hex,
  sha256Hex,
  verifyClusterRequest,
} from '../security/cluster-auth.ts';
import { tokenFrom, verifyFileToken } from '../security/jwt.ts';
import { etagOf } from './blob-headers.ts';
import type { EdgePurgeEvents } from './edge-purge.ts';
import type { LocalRollback, Replicator } from './replication.ts';
import type { Store } from './store.ts';
import { publishDeletes } from './tier-sidecars.ts';
import { assertChangeId } from './undo-log.ts';
import type { EntryChange, Volume } from './volume.ts';

/**
 * `type=replicate` marks a replica's copy of a write, `change` its id (kept to
 * undo it, undo-log.ts), `noname=true` a record without a name field
 * (storesNoName); `jwt` is one of the three places a token may come in.
 */
const WRITE_PARAMS = new Set(['ttl', 'ts', 'type', 'jwt', 'change', 'noname']);
/** `undo=<change id>` (with `type=replicate`) takes back a replicated change instead of deleting. */
const DELETE_PARAMS = new Set(['type', 'jwt', 'change', 'undo']);
/** Auto-gzip keeps the compressed form only if it saves at least this fraction. */
const MIN_GZIP_SAVING = 0.1;
/** Below this, gzip's header costs more than it can save. */
const MIN_GZIP_INPUT_BYTES = 128;
const EMPTY = new Uint8Array(0);

export function utf8(s: string): Uint8Array {
  return s.length === 0 ? EMPTY : Buffer.from(s, 'utf8');
}

export interface WriteConfig {
  maxUploadBytes: number;
  now: () => number;
  /** With a key, writes and deletes need the master's token for the fid (401 otherwise). */
  signingKey?: string;
  /** With a key, `type=replicate` writes and deletes must be signed by a cluster member (401 otherwise). */
  clusterKey?: string;
  /** The keys such a signature may be made with (the current one, and a previous one during a rotation). */
  clusterKeys?: readonly string[];
  replicator: Replicator;
  /** The server's replication log (a replica's failed writes in a batch are written there). */
  replicationLog: Logger;
  /** Tells the edge about overwrites and deletes (none configured: the edge's fresh period bounds them). */
  edgePurge?: EdgePurgeEvents;
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
    await verifyFileToken(config.signingKey, token, fid);
  }
  return token;
}

/** The client-facing write, not a replica's copy of one: only it fans out. */
function isPrimary(query: URLSearchParams | null): boolean {
  return query?.get('type') !== 'replicate';
}

/**
 * A replica's copy skips the fan-out, so it is taken only from a cluster
 * member: the signature is checked before the body is read. Returns the body
 * hash that was signed (undefined in an open cluster, or for a primary write).
 */
function memberSignature(req: IncomingMessage, query: URLSearchParams | null, config: WriteConfig) {
  if (isPrimary(query) || !config.clusterKey) return undefined;
  return verifyClusterRequest(
    config.clusterKeys ?? [config.clusterKey],
    req.method ?? 'PUT',
    req.url ?? '/',
    req.headers,
  );
}

/** A parameter only replica traffic may carry: its value, if any; on a client's request, 400. */
function replicaParam(query: URLSearchParams | null, name: string): string | undefined {
  const value = query?.get(name);
  if (value === null || value === undefined) return undefined;
  if (isPrimary(query)) throw new BadRequestError(`${name}= is replica traffic: it goes with type=replicate`);
  return value;
}

/** The id of the replicated change this request carries (replica traffic only), if any. */
function changeIdOf(query: URLSearchParams | null, name: 'change' | 'undo'): string | undefined {
  const id = replicaParam(query, name);
  return id === undefined ? undefined : assertChangeId(id);
}

/**
 * `noname=true` (replica traffic only): the primary stored no name field (it
 * dropped a name over 255 bytes, as SeaweedFS does), which a request without
 * Content-Disposition cannot say: that one stores an empty name, one byte
 * longer, and replicas must hold the same bytes (they share a tier object).
 */
function storesNoName(query: URLSearchParams | null): boolean {
  const value = replicaParam(query, 'noname');
  if (value === undefined) return false;
  if (value !== 'true') throw new BadRequestError(`noname must be true, got ${JSON.stringify(value)}`);
  return true;
}

/** Undoes the primary's own copy of a change whose fan-out failed: nothing to do if it changed nothing. */
function rollbackOf(volume: Volume, change: EntryChange | undefined): LocalRollback {
  return async () => {
    if (change) await volume.restore(change);
  };
}

/** rollbackOf for a write still becoming durable: its change is known once it has. */
function rollbackWhenApplied(volume: Volume, applying: Promise<{ change?: EntryChange }>): LocalRollback {
  return async () => rollbackOf(volume, (await applying).change)();
}

/** Uploads take the comma form only (docs/format.md §1), optionally with an extension. */
export function uploadFid(pathname: string) {
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
  const answer = await acceptWrite(req, store, pathname, query, config, requestIdOf(req));
  if (answer.status === 204) {
    res.writeHead(204, { ETag: answer.eTag });
    res.end();
    return;
  }
  sendJson(res, 201, answer.body, { ETag: answer.eTag });
}

/**
 * A write, from the checks of its fid, token and signature to its answer:
 * `req` is the request as received, or an upload already read whole
 * (http/upload.ts bufferedRequest) with the headers it came with.
 */
export async function acceptWrite(
  req: IncomingMessage,
  store: Store,
  pathname: string,
  query: URLSearchParams | null,
  config: WriteConfig,
  requestId: string | undefined,
): Promise<UploadAnswer> {
  const { fid, ext } = uploadFid(pathname);
  if (query) assertKnownParams(query, WRITE_PARAMS);
  const signedBody = memberSignature(req, query, config);
  // Only a secured cluster needs the (asynchronous) token check.
  const token = config.signingKey ? await authorize(req, query, config, fid) : tokenFrom(req, query);
  const ttl = parseTtl(query?.get('ttl') ?? '');
  const lastModified = parseTimestamp(query?.get('ts'), config.now());
  const noName = storesNoName(query);
  const volume = store.get(fid.volumeId);
  const upload = await parseUpload(
    req,
    '',
    config.maxUploadBytes,
    // Beside the volume it is for: the same filesystem as the `.dat` it is copied into.
    spoolDir(volume.config.dir),
  ).catch((err: unknown) => {
    // So a spool that met a full disk marks the volume's disk full too (disk-space.ts).
    throw volume.config.space?.storageError(err, 'spooling the upload') ?? err;
  });
  try {
    if (signedBody) {
      assertBody(signedBody, upload.spool ? await fileSha256Hex(upload.spool.path) : sha256Hex(upload.data));
    }
    const target = { volume, pathname, fid, ext, ttl, lastModified, noName, query, token, requestId };
    return await storeUpload(upload, target, config);
  } finally {
    releaseUpload(upload);
  }
}

/** Where an upload goes and what the request said about it. */
interface WriteTarget {
  volume: Volume;
  pathname: string;
  fid: ParsedFid;
  ext: string | undefined;
  ttl: Ttl;
  lastModified: number;
  /** Store no name field whatever the upload says (`noname=true`, replica traffic). */
  noName: boolean;
  query: URLSearchParams | null;
  token: string | undefined;
  /** The client request's id, sent on to every replica. */
  requestId: string | undefined;
}

async function storeUpload(upload: Upload, target: WriteTarget, config: WriteConfig): Promise<UploadAnswer> {
  const { volume, pathname, fid, ext, ttl, lastModified, noName, query, token, requestId } = target;
  const { plainSize, plainMd5 } = upload.spool
    ? await spooledPlain(upload.spool, upload.gzipped, upload.md5 !== undefined)
    : inMemoryPlain(upload.data, upload.gzipped, upload.md5 !== undefined);
  if (upload.md5 !== undefined && plainMd5 !== upload.md5) {
    throw new BadRequestError('Content-MD5 does not match the uploaded bytes');
  }
  const nameExt = upload.name.includes('.') ? upload.name.slice(upload.name.lastIndexOf('.') + 1) : undefined;
  const mime =
    upload.mime || (ext && mimeFromExtension(ext)) || (nameExt && mimeFromExtension(nameExt)) || '';
  let data: Uint8Array | undefined = upload.data;
  let flags = upload.gzipped ? FLAG_GZIP : 0;
  // Spooled bodies (over 1 MiB) are stored as sent, never auto-gzipped: that would take a
  // second pass over the file and a second spool for the output (or the whole output in
  // memory), and bodies that large are mostly media that gzip cannot shrink anyway.
  if (data && !upload.gzipped && data.length >= MIN_GZIP_INPUT_BYTES && isCompressible(mime)) {
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
    name: nameBytes.length <= MAX_NAME_BYTES && !noName ? nameBytes : undefined,
    mime: utf8(mime),
    lastModified,
    ttl: isEmptyTtl(ttl) ? undefined : ttl,
    pairs: upload.pairs ? utf8(JSON.stringify(upload.pairs)) : undefined,
  };
  const copies = copyCount(volume.superBlock.placement);
  const fanOut = copies > 1 && isPrimary(query);
  const changeId = changeIdOf(query, 'change');
  // Known-missing replicas fail the write before anything is stored, so no one-copy blob is left behind.
  const peers = fanOut ? await config.replicator.peers(fid.volumeId, copies) : [];
  const { undoLog } = config.replicator;
  if (changeId) undoLog.assertNotCancelled(changeId);
  const overwrite = volume.holds(fid.key);
  const applying = data
    ? volume.write({ key: fid.key, cookie: fid.cookie, data, meta })
    : volume.writeStreamed({ key: fid.key, cookie: fid.cookie, spool: upload.spool!, meta });
  // In the same tick as the write starts: an undo of it can then never miss it.
  if (changeId) undoLog.applied(changeId, volume, fid, applying);
  if (fanOut) {
    // Sent while this copy's fsync runs (the append itself happened in the call above).
    // A spooled body streams from its file to each replica (the file outlives this call).
    const body = data ?? { path: upload.spool!.path, size: upload.spool!.size };
    const w = { fid: pathname.slice(1), data: body, meta, token, requestId };
    await config.replicator.write(peers, fid.volumeId, w, applying, rollbackWhenApplied(volume, applying));
  }
  const result = await applying;
  // An overwrite changes what the edge may hold; the client-facing server (not each replica) says so.
  if (overwrite && !result.unchanged && isPrimary(query)) config.edgePurge?.fileChanged(formatFid(fid));
  const eTag = etagOf(result.checksum);
  if (result.unchanged) return { status: 204, eTag };
  // The name as stored: one over 255 bytes was dropped, and the answer must not claim it.
  const name = meta.name === undefined ? '' : upload.name;
  return { status: 201, eTag, body: { name, size: plainSize, eTag: eTag.slice(1, -1), mime } };
}

interface Plain {
  /** Length of the uncompressed bytes (the `size` answered). */
  plainSize: number;
  /** MD5 (base64) of the uncompressed bytes, when asked for. */
  plainMd5?: string;
}

function inMemoryPlain(data: Buffer, gzipped: boolean, wantMd5: boolean): Plain {
  const plain = gzipped ? gunzipOrReject(data) : data;
  return {
    plainSize: plain.length,
    plainMd5: wantMd5 ? createHash('md5').update(plain).digest('base64') : undefined,
  };
}

/**
 * The same for a spool file. Sent gzipped, the file is gunzipped as a stream
 * (checking it is valid gzip, measuring it, hashing it), never into memory.
 */
async function spooledPlain(spool: Spool, gzipped: boolean, wantMd5: boolean): Promise<Plain> {
  if (!gzipped) return { plainSize: spool.size, plainMd5: spool.md5 };
  const md5 = wantMd5 ? createHash('md5') : undefined;
  let plainSize = 0;
  try {
    await pipeline(createReadStream(spool.path), createGunzip(), async (chunks: AsyncIterable<Buffer>) => {
      for await (const chunk of chunks) {
        plainSize += chunk.length;
        md5?.update(chunk);
      }
    });
  } catch (err) {
    throw new BadRequestError('body sent with Content-Encoding: gzip is not valid gzip', { cause: err });
  }
  return { plainSize, plainMd5: md5?.digest('base64') };
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
  const signedBody = memberSignature(req, query, config);
  if (signedBody) assertBody(signedBody, EMPTY_SHA256);
  const token = await authorize(req, query, config, fid);
  const volume = store.get(fid.volumeId);
  const { undoLog } = config.replicator;
  const undoId = changeIdOf(query, 'undo');
  if (undoId) {
    const outcome = await undoLog.undo(undoId, volume, fid);
    sendJson(res, 200, { undone: outcome === 'undone' });
    return;
  }
  const copies = copyCount(volume.superBlock.placement);
  const fanOut = copies > 1 && isPrimary(query);
  const changeId = changeIdOf(query, 'change');
  const peers = fanOut ? await config.replicator.peers(fid.volumeId, copies) : [];
  if (changeId) undoLog.assertNotCancelled(changeId);
  const applying = volume.delete(fid.key, fid.cookie);
  if (changeId) undoLog.applied(changeId, volume, fid, applying);
  const { size, change } = await applying;
  if (fanOut) {
    // The fid with its `_N` suffix: the replica checks the client's token against the batch it was signed for.
    const base = formatFid({ volumeId: fid.volumeId, key: fid.key - fid.delta, cookie: fid.cookie });
    const d = { fid: fid.delta ? `${base}_${fid.delta}` : base, token, requestId: requestIdOf(req) };
    await config.replicator.delete(peers, fid.volumeId, d, rollbackOf(volume, change));
  }
  // A tiered volume: acknowledged only once its deletion set in the bucket has the key (tier-sidecars.ts).
  await publishDeletes(volume, store.config.backends, fid.key);
  if (isPrimary(query)) config.edgePurge?.fileChanged(formatFid(fid));
  sendJson(res, 202, { size });
}
