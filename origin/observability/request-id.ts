/**
 * One id per request, carried from the edge through the master and volume
 * servers: taken from `X-Request-Id` (or Cloudflare's `cf-ray`) when the
 * caller sent a sane one, generated otherwise; echoed in the response and
 * sent on every server-to-server call made for the request (master → volume
 * on /submit, replication fan-out), and written as `reqId` on its log lines.
 *
 * Generated ids are a random per-process prefix and a counter: unique enough
 * to find a request in the logs, and cheap on the read path (no randomness
 * per request).
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export const REQUEST_ID_HEADER = 'X-Request-Id';
/** Longest id accepted from a caller; longer ones are replaced (they end up in every log line). */
export const MAX_REQUEST_ID_LENGTH = 128;
/** Printable and safe in a header, a log line and a query: anything else is replaced. */
const SANE = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

const PREFIX = randomBytes(6).toString('base64url');
let counter = 0;

/** A request whose id has been settled (the servers set it as the request comes in). */
export interface WithRequestId {
  requestId?: string;
}

function sane(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' && SANE.test(value) ? value : undefined;
}

/** The caller's id (X-Request-Id, else cf-ray) if it is sane, else a new one. */
export function incomingRequestId(req: IncomingMessage): string {
  const h = req.headers;
  return sane(h['x-request-id']) ?? sane(h['cf-ray']) ?? newRequestId();
}

export function newRequestId(): string {
  counter = (counter + 1) % Number.MAX_SAFE_INTEGER;
  return `${PREFIX}-${counter.toString(36)}`;
}

/** The id the server settled for `req` (set by the server's request wrapper), if any. */
export function requestIdOf(req: IncomingMessage): string | undefined {
  return (req as IncomingMessage & WithRequestId).requestId;
}

/** `{ 'X-Request-Id': id }` for an outgoing call made for `req`, or nothing. */
export function requestIdHeader(id: string | undefined): Record<string, string> {
  return id ? { [REQUEST_ID_HEADER]: id } : {};
}
