/**
 * `POST /cluster/leave`: a volume server shutting down cleanly says so, and
 * the master drops it at once instead of after three missed pulses: no
 * lookup sends a reader there, no assign picks one of its volumes, and a
 * replicated volume counts one copy fewer (so it stops taking writes until the
 * server is back, as it would when the server dies). The server's next
 * heartbeat, after a restart, brings it back.
 *
 * Signed with the cluster key like a heartbeat (the same trust: a member may
 * speak for any server address), body `{"url":"host:port"}`.
 */
import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import { BadRequestError } from '../../shared/errors.ts';
import { HOST_PORT } from '../http/address.ts';
import { readBody } from '../http/body.ts';
import { LEAVE_PATH } from '../http/masters.ts';
import type { Logger } from '../observability/log.ts';
import { assertBody, sha256Hex, verifyClusterRequest } from '../security/cluster-auth.ts';
import type { Topology } from './topology.ts';

export { LEAVE_PATH };
/** A leave is one address: anything longer is not one. */
export const MAX_LEAVE_BYTES = 1024;

const leave = z.object({ url: z.string().regex(HOST_PORT, 'host:port') });

export interface LeaveContext {
  topology: Topology;
  /** Keys a member may sign with; empty when the cluster has no key (then anyone may leave for a server, as anyone may heartbeat). */
  clusterKeys: readonly string[];
  log: Logger;
}

/** Removes the server named in the (signed) body; whether it was known. */
export async function handleLeave(req: IncomingMessage, ctx: LeaveContext): Promise<{ removed: boolean }> {
  // Signature first: an outsider's body is not even read.
  const signed = ctx.clusterKeys.length
    ? verifyClusterRequest(ctx.clusterKeys, 'POST', req.url ?? LEAVE_PATH, req.headers)
    : undefined;
  const bytes = await readBody(req, MAX_LEAVE_BYTES);
  if (signed) assertBody(signed, sha256Hex(bytes));
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString());
  } catch {
    throw new BadRequestError('a leave is JSON: {"url":"host:port"}');
  }
  const parsed = leave.safeParse(raw);
  if (!parsed.success) throw new BadRequestError('a leave is JSON: {"url":"host:port"}');
  const { url } = parsed.data;
  const removed = ctx.topology.removeNode(url);
  if (removed) ctx.log.info({ url }, `volume server ${url} left the cluster`);
  return { removed };
}
