/**
 * The wire form of a replica batch (docs/format.md §8): several small
 * replicated writes in one request from a primary to one replica, so that
 * writes arriving together cost that replica one HTTP exchange and one group
 * fsync, and the primary one request (docs/decisions/0023-replica-batches.md).
 *
 *   POST /replica/batch?type=replicate
 *   body: u32 BE n | n bytes of JSON `{"writes": [BatchedWrite, ...]}` | each write's data, in order
 *   answer: 200 `{"results": [{"status": 201}, {"status": 409, "error": "..."}, ...]}`, one per write
 *
 * Each write's data is the needle data as the primary stored it (gzipped when
 * `gzip`), with its meta as fields, so the replica stores the same bytes
 * without re-deciding compression. Both ends live here so they cannot drift.
 */
import { BadRequestError } from '../../shared/errors.ts';

export const REPLICA_BATCH_PATH = '/replica/batch';
/** `type=replicate` marks it as replica traffic, as on the per-write requests (routes, edge filters). */
export const REPLICA_BATCH_URL = `${REPLICA_BATCH_PATH}?type=replicate`;
/** Writes in one batch at most. */
export const MAX_BATCH_WRITES = 64;
/** Data bytes in one batch at most (the sender closes a batch before it would pass this). */
export const MAX_BATCH_DATA_BYTES = 1024 * 1024;
/** A write's data must be under this to go in a batch; larger ones are sent on their own. */
export const MAX_BATCHED_WRITE_BYTES = 64 * 1024;
/**
 * Characters of a write's text fields (name, mime, pairs, token, request id)
 * at most for it to go in a batch; a write with more is sent on its own.
 */
export const MAX_BATCHED_TEXT_CHARS = 2048;
/**
 * The JSON part of a batch at most: MAX_BATCH_WRITES writes whose text,
 * escaped at worst (6 bytes a character), fits with room for the fixed fields.
 */
export const MAX_BATCH_HEADER_BYTES = 1024 * 1024;
/** The largest body a replica reads for a batch. */
export const MAX_BATCH_BODY_BYTES = 4 + MAX_BATCH_HEADER_BYTES + MAX_BATCH_DATA_BYTES;
const LENGTH_PREFIX_BYTES = 4;

/** One write as the batch's JSON carries it; its data follows the JSON, in write order. */
export interface BatchedWrite {
  /** The fid text as the client sent it (delta suffix included). */
  fid: string;
  /** The change id (undo-log.ts). */
  change: string;
  /** Bytes of data. */
  size: number;
  /** The data is gzipped (FLAG_GZIP). */
  gzip?: boolean;
  /** Last modified, Unix seconds. */
  ts?: number;
  /** As formatTtl writes it. */
  ttl?: string;
  mime?: string;
  name?: string;
  /** The pairs' JSON text. */
  pairs?: string;
  /** The client's token, forwarded as is. */
  token?: string;
  /** The client request's id, for the replica's log lines about this write. */
  reqId?: string;
}

/** What the replica did with one write: the status the write would have had on its own. */
export interface BatchedResult {
  status: number;
  error?: string;
}

export function encodeBatch(writes: readonly BatchedWrite[], data: readonly Uint8Array[]): Buffer {
  const header = Buffer.from(JSON.stringify({ writes }));
  const prefix = Buffer.allocUnsafe(LENGTH_PREFIX_BYTES);
  prefix.writeUInt32BE(header.length, 0);
  return Buffer.concat([prefix, header, ...data]);
}

export interface DecodedBatch {
  writes: BatchedWrite[];
  /** Each write's data: views into the body, not copies. */
  data: Buffer[];
}

const OPTIONAL_STRINGS = ['ttl', 'mime', 'name', 'pairs', 'token', 'reqId'] as const;

/** Checks a batch's framing and fields (not the fids, change ids or tokens: the handler does). */
export function decodeBatch(body: Buffer): DecodedBatch {
  if (body.length < LENGTH_PREFIX_BYTES) throw new BadRequestError('replica batch: no header');
  const headerLength = body.readUInt32BE(0);
  if (headerLength > MAX_BATCH_HEADER_BYTES || LENGTH_PREFIX_BYTES + headerLength > body.length) {
    throw new BadRequestError('replica batch: header length out of range');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8', LENGTH_PREFIX_BYTES, LENGTH_PREFIX_BYTES + headerLength));
  } catch (err) {
    throw new BadRequestError('replica batch: header is not JSON', { cause: err });
  }
  const writes = (parsed as { writes?: unknown } | null)?.writes;
  if (!Array.isArray(writes) || writes.length === 0 || writes.length > MAX_BATCH_WRITES) {
    throw new BadRequestError(`replica batch: 1 to ${MAX_BATCH_WRITES} writes`);
  }
  const data: Buffer[] = [];
  let at = LENGTH_PREFIX_BYTES + headerLength;
  for (const w of writes as BatchedWrite[]) {
    if (typeof w !== 'object' || w === null)
      throw new BadRequestError('replica batch: a write is not an object');
    if (typeof w.fid !== 'string' || typeof w.change !== 'string') {
      throw new BadRequestError('replica batch: a write needs fid and change');
    }
    if (!Number.isSafeInteger(w.size) || w.size < 0 || w.size > body.length - at) {
      throw new BadRequestError('replica batch: a write size is out of range');
    }
    if (w.ts !== undefined && (!Number.isSafeInteger(w.ts) || w.ts < 0)) {
      throw new BadRequestError('replica batch: ts must be Unix seconds');
    }
    if (w.gzip !== undefined && typeof w.gzip !== 'boolean') {
      throw new BadRequestError('replica batch: gzip is true or false');
    }
    for (const k of OPTIONAL_STRINGS) {
      if (w[k] !== undefined && typeof w[k] !== 'string')
        throw new BadRequestError(`replica batch: ${k} is text`);
    }
    data.push(body.subarray(at, at + w.size));
    at += w.size;
  }
  if (at !== body.length) throw new BadRequestError('replica batch: body longer than its writes');
  return { writes: writes as BatchedWrite[], data };
}
