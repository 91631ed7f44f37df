/**
 * The replica's side of a replica batch (replica-batch.ts): `POST
 * /replica/batch?type=replicate`. Every write in it gets what a
 * `PUT /<fid>?type=replicate&change=<id>` would have got: the cluster
 * signature (over the whole body) when a key is set, the client's token when
 * writes need one, the undo log's record, the append and the group fsync
 * (volume-write.ts); the batch is answered 200 once every write has settled,
 * with each write's own status. All of a batch's writes are appended in one
 * tick, in order, so one fsync covers them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorBody, httpStatusOf, MethodNotAllowedError } from '../../shared/errors.ts';
import type { ParsedFid } from '../../shared/fid.ts';
import { FLAG_GZIP, MAX_NAME_BYTES, type NeedleMeta } from '../../shared/needle.ts';
import { isEmptyTtl, parseTtl } from '../../shared/ttl.ts';
import { readBody } from '../http/body.ts';
import { assertKnownParams } from '../http/params.ts';
import { sendJson } from '../http/respond.ts';
import type { Logger } from '../observability/log.ts';
import { assertBody, sha256Hex, verifyClusterRequest } from '../security/cluster-auth.ts';
import { verifyFileToken } from '../security/jwt.ts';
import { type BatchedResult, type BatchedWrite, decodeBatch, MAX_BATCH_BODY_BYTES } from './replica-batch.ts';
import type { Store } from './store.ts';
import { assertChangeId } from './undo-log.ts';
import { uploadFid, utf8, type WriteConfig } from './write-handler.ts';

/** One write of the batch, checked so far: where it goes, or why it will not. */
type Prepared = { fid: ParsedFid; change: string } | { failed: BatchedResult };

/** The batch's own query: `type=replicate`, as on every request of replica traffic. */
const BATCH_PARAMS = new Set(['type']);

export async function handleReplicaBatch(
  req: IncomingMessage,
  res: ServerResponse,
  store: Store,
  query: URLSearchParams | null,
  config: WriteConfig,
): Promise<void> {
  if (req.method !== 'POST') throw new MethodNotAllowedError('a replica batch is a POST');
  if (query) assertKnownParams(query, BATCH_PARAMS);
  // Replica traffic skips the fan-out: from a cluster member only, checked before the body is read.
  const signed = config.clusterKey
    ? verifyClusterRequest(config.clusterKeys ?? [config.clusterKey], 'POST', req.url ?? '/', req.headers)
    : undefined;
  const body = await readBody(req, MAX_BATCH_BODY_BYTES);
  if (signed) assertBody(signed, sha256Hex(body));
  const { writes, data } = decodeBatch(body);
  const log = config.replicationLog;
  const prepared = writes.map((w) => prepare(w, log));
  if (config.signingKey) await checkTokens(config.signingKey, writes, prepared, log);
  const { undoLog } = config.replicator;
  const now = config.now();
  // Applied in order in this one tick (no await in between): one group fsync covers them all.
  const applying = prepared.map((p, i): Promise<BatchedResult> => {
    if ('failed' in p) return Promise.resolve(p.failed);
    const w = writes[i]!;
    try {
      const volume = store.get(p.fid.volumeId);
      const meta = metaOf(w, now);
      undoLog.assertNotCancelled(p.change);
      const write = volume.write({ key: p.fid.key, cookie: p.fid.cookie, data: data[i]!, meta });
      // In the same tick as the write starts: an undo of it can then never miss it.
      undoLog.applied(p.change, volume, p.fid, write);
      return write.then(
        (r) => ({ status: r.unchanged ? 204 : 201 }),
        (err: unknown) => failure(err, w, log),
      );
    } catch (err) {
      return Promise.resolve(failure(err, w, log));
    }
  });
  sendJson(res, 200, { results: await Promise.all(applying) });
}

function prepare(w: BatchedWrite, log: Logger): Prepared {
  try {
    return { fid: uploadFid(`/${w.fid}`).fid, change: assertChangeId(w.change) };
  } catch (err) {
    return { failed: failure(err, w, log) };
  }
}

/** The client's token for each write still standing, as its own request would have been checked. */
async function checkTokens(
  key: string,
  writes: BatchedWrite[],
  prepared: Prepared[],
  log: Logger,
): Promise<void> {
  const checks = await Promise.allSettled(
    prepared.map((p, i) => ('failed' in p ? undefined : verifyFileToken(key, writes[i]!.token, p.fid))),
  );
  checks.forEach((c, i) => {
    if (c.status === 'rejected') prepared[i] = { failed: failure(c.reason, writes[i]!, log) };
  });
}

/** The needle meta the primary stored, from the batch's fields. */
function metaOf(w: BatchedWrite, now: number): NeedleMeta {
  const ttl = w.ttl ? parseTtl(w.ttl) : undefined;
  // Absent stays absent and empty stays empty: the primary's record, byte for byte (needle.ts sets a field's
  // flag for an empty one too).
  const name = w.name === undefined ? undefined : utf8(w.name);
  return {
    flags: w.gzip ? FLAG_GZIP : 0,
    name: name && name.length <= MAX_NAME_BYTES ? name : undefined,
    mime: w.mime === undefined ? undefined : utf8(w.mime),
    lastModified: w.ts ?? Math.floor(now / 1000),
    ttl: ttl && !isEmptyTtl(ttl) ? ttl : undefined,
    pairs: w.pairs ? utf8(w.pairs) : undefined,
  };
}

/** A write that failed: its status and message, as its own request would have answered; 500s are logged. */
function failure(err: unknown, w: BatchedWrite, log: Logger): BatchedResult {
  const status = httpStatusOf(err);
  if (status >= 500) {
    log.error(
      { err, fid: w.fid, change: w.change, reqId: w.reqId },
      `replicated write of ${w.fid} failed: ${(err as Error).message}`,
    );
  }
  return { status, error: errorBody(err).error };
}
