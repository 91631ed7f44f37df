/** HTTP calls of `kelp upload` / `kelp download`: JSON answers, errors that say who failed and why. */
import { errorFromBody } from '../../shared/errors.ts';
import { masterList, tryNextMaster } from '../http/masters.ts';

/** A failed request: printed as is by the CLI (exit 1). */
export class ClientError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ClientError';
  }
}

/** `host:port` or a URL → a base URL without a trailing slash. */
export function baseUrl(hostOrUrl: string): string {
  return (hostOrUrl.includes('://') ? hostOrUrl : `http://${hostOrUrl}`).replace(/\/+$/, '');
}

/** The status and the `{error}` of a Kelp error body, else the start of the body or the status line. */
async function reason(res: Response): Promise<string> {
  return `${res.status} ${errorFromBody(res.status, await res.text(), { fallback: res.statusText }).message}`;
}

export async function request(url: string, init: RequestInit = {}): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new ClientError(`${init.method ?? 'GET'} ${url}: ${cause?.code ?? cause?.message ?? String(err)}`, {
      cause: err,
    });
  }
}

/** A request whose 2xx answer is JSON; anything else is a ClientError. */
export async function requestJson<T>(
  url: string,
  init: RequestInit = {},
): Promise<{ body: T; res: Response }> {
  const res = await request(url, init);
  if (!res.ok) throw new ClientError(`${init.method ?? 'GET'} ${url}: ${await reason(res)}`);
  return { body: (await res.json()) as T, res };
}

export { reason as failureReason };

/** Rounds over the whole list of masters while none can answer (a leader being elected). */
export const MASTER_ROUNDS = 20;
/** Pause between rounds: the rounds span a leader's lease TTL and more. */
export const MASTER_ROUND_PAUSE_MS = 500;

/**
 * A JSON call to the cluster's masters (`a:9333,b:9333`), tried in order: a
 * master that is down or cannot answer now (502/503/504, e.g. no leader yet)
 * passes the call to the next, and while one of them answers "not now" the
 * list is tried again for a few seconds. Any other answer is final.
 */
export async function requestMasters<T>(
  masters: string,
  pathAndQuery: string,
  init: RequestInit = {},
): Promise<{ body: T; res: Response }> {
  const list = masterList(masters);
  if (list.length === 0) throw new ClientError('no master given');
  const failures: string[] = [];
  // Another round only when a master answered "not now": all of them down is not worth the wait.
  let answered = true;
  for (let round = 0; round < MASTER_ROUNDS && answered; round++) {
    if (round > 0) await new Promise((r) => setTimeout(r, MASTER_ROUND_PAUSE_MS));
    failures.length = 0;
    answered = false;
    for (const master of list) {
      const url = `${baseUrl(master)}${pathAndQuery}`;
      let res: Response;
      try {
        res = await request(url, init);
      } catch (err) {
        if (!(err instanceof ClientError)) throw err;
        failures.push(err.message);
        continue;
      }
      if (res.ok) return { body: (await res.json()) as T, res };
      const why = `${init.method ?? 'GET'} ${url}: ${await reason(res)}`;
      if (!tryNextMaster(res.status)) throw new ClientError(why);
      failures.push(why);
      answered = true;
    }
  }
  throw new ClientError(`no master could answer:\n  ${failures.join('\n  ')}`);
}
