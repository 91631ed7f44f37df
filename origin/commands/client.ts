/**
 * The cluster as `kelp upload`, `download`, `delete` and `admin` call it: the
 * shared client (shared/client/), with the CLI's own rule on top, a failure is
 * a ClientError that says who failed and why (printed as is, exit 1).
 */

import { type AuthHeaders, signWith } from '../../shared/client/http.ts';
import { MasterClient } from '../../shared/client/master-client.ts';
import { VolumeClient } from '../../shared/client/volume-client.ts';
import { KelpError } from '../../shared/errors.ts';

/** A failed request: printed as is by the CLI (exit 1). */
export class ClientError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ClientError';
  }
}

export { baseUrl } from '../../shared/client/http.ts';

/**
 * Rounds over the whole list of masters while none can answer (a leader being
 * elected): with MASTER_ROUND_PAUSE_MS between them, about 10 s, longer than a
 * leader's lease.
 */
export const MASTER_ROUNDS = 20;

/**
 * Bound on a call whose answer comes only once a whole file is sent (an
 * upload) or a volume is compacted: the shared client's default is for calls
 * that answer at once.
 */
export const LONG_CALL_TIMEOUT_MS = 60 * 60_000;

/** The KelpError of a failed call as the CLI's ClientError (its message names the call and the answer). */
export async function cli<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof KelpError) throw new ClientError(err.message, { cause: err });
    throw err;
  }
}

/** The masters of `--master a:9333,b:9333`, tried in order, waiting out an election. */
export function masters(spec: string, auth?: AuthHeaders): MasterClient {
  if (spec.split(',').every((m) => m.trim() === '')) throw new ClientError('no master given');
  return new MasterClient(spec, { rounds: MASTER_ROUNDS, ...(auth ? { sign: signWith(auth) } : {}) });
}

/**
 * Volume servers, as the client sends to them directly: no credentials of its
 * own, a blob call carries the fid's token the master signed.
 */
export function volumes(): VolumeClient {
  return new VolumeClient();
}
