/**
 * Who may write through the edge. `POST /submit` and `DELETE /<fid>` are
 * public URLs, so the Worker checks its own client keys (`WRITE_KEYS`) before
 * anything reaches origin; origin then sees the Worker's credential, never the
 * caller's. Secure by default: with no key configured, writes are refused
 * unless `PUBLIC_WRITES = "true"` says this is a development edge.
 */
import { ForbiddenError, UnauthorizedError } from '../shared/errors.ts';
import type { EdgeConfig } from './env.ts';

const encoder = new TextEncoder();

/** `Bearer <token>`, the scheme in any case (RFC 7235 §2.1), as in a request's or the master's response header. */
export function bearerToken(header: string | null): string | undefined {
  const m = header ? /^\s*bearer\s+(\S+)\s*$/i.exec(header) : null;
  return m ? m[1] : undefined;
}

/** `Authorization` value for a key or token the Worker sends to origin. */
export function bearer(token: string): string {
  return `Bearer ${token}`;
}

function sha256(s: string): Promise<ArrayBuffer> {
  return crypto.subtle.digest('SHA-256', encoder.encode(s));
}

/** Digests of the configured keys, computed once per config (one per isolate). */
const keyDigests = new WeakMap<EdgeConfig, Promise<Uint8Array[]>>();

function digestsOf(config: EdgeConfig): Promise<Uint8Array[]> {
  let d = keyDigests.get(config);
  if (!d) {
    d = Promise.all(config.writeKeys.map(async (k) => new Uint8Array(await sha256(k))));
    keyDigests.set(config, d);
  }
  return d;
}

/**
 * Whether `presented` is one of the keys. Compared as SHA-256 digests (equal
 * length whatever the input) with no early exit, over every key, so the time
 * taken says nothing of how much of a key was right or which one matched.
 */
async function isWriteKey(presented: string, config: EdgeConfig): Promise<boolean> {
  const [digest, keys] = await Promise.all([sha256(presented), digestsOf(config)]);
  const mine = new Uint8Array(digest);
  let matched = 0;
  for (const key of keys) {
    let diff = 0;
    for (let i = 0; i < key.length; i++) diff |= key[i]! ^ mine[i]!;
    matched |= diff === 0 ? 1 : 0;
  }
  return matched === 1;
}

/**
 * Throws unless the request may write: ForbiddenError (403) when the edge has
 * no WRITE_KEYS and is not marked PUBLIC_WRITES, UnauthorizedError (401) when
 * the caller's key is missing or wrong. Configured keys win over PUBLIC_WRITES,
 * so a stray PUBLIC_WRITES never opens an edge that was given keys.
 */
export async function requireWriteKey(request: Request, config: EdgeConfig): Promise<void> {
  if (config.writeKeys.length === 0) {
    if (config.publicWrites) return;
    throw new ForbiddenError(
      'writes through this edge are disabled: set the WRITE_KEYS secret (comma-separated client keys), or PUBLIC_WRITES = "true" for local development only',
    );
  }
  const presented = bearerToken(request.headers.get('authorization'));
  if (presented === undefined) {
    throw new UnauthorizedError('writes through this edge need a key: send Authorization: Bearer <key>');
  }
  if (!(await isWriteKey(presented, config))) throw new UnauthorizedError('the write key is not valid');
}
