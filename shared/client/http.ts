/**
 * One request to a Kelp server (master or volume server) over fetch, as every
 * client of the cluster makes it: the edge, replication, the tiering service
 * and the CLI (docs/decisions/0013-one-api-client.md). Web APIs only, so the
 * same code runs in Node and in workerd.
 *
 * What a request does here, and nowhere else:
 *   - a timeout (DEFAULT_REQUEST_TIMEOUT_MS unless the client or the call says
 *     otherwise), covering the whole answer of a JSON call and the wait for
 *     the headers of a streamed one;
 *   - the caller's credentials, through a `sign` hook: this code knows no key
 *     and imports nothing of origin/security (origin plugs withClusterAuth,
 *     the edge its MASTER_CLIENT_KEY bearer);
 *   - an error answer read back through errorFromBody() into the KelpError its
 *     body names; no answer at all is a NoAnswerError.
 */
import { errorFromBody, type KelpError, NoAnswerError, UpstreamError } from '../errors.ts';

/** Bound on a request unless its client or the call sets another: a hung server fails the call, it does not stall it. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

/**
 * The caller's credentials: given the request as it will go out, returns the
 * headers to send (those given plus whatever authenticates it). `body` is the
 * request body when it is bytes or text (a signature may cover its hash).
 */
export type SignRequest = (
  method: string,
  url: string,
  headers: Record<string, string>,
  body?: string | Uint8Array,
) => Record<string, string> | Promise<Record<string, string>>;

/**
 * Credentials that depend on the method and URL only (an admin key, a cluster
 * signature of a bodiless call): the simpler form of SignRequest that origin's
 * credential helpers return.
 */
export type AuthHeaders = (method: string, url: string) => Record<string, string>;

/** AuthHeaders as a SignRequest: the request's own headers, plus the credentials. */
export function signWith(auth: AuthHeaders): SignRequest {
  return (method, url, headers) => ({ ...headers, ...auth(method, url) });
}

/** What a client is built with: its default timeout and its credentials. */
export interface ClientOptions {
  /** Override of DEFAULT_REQUEST_TIMEOUT_MS for every call of the client. */
  timeoutMs?: number;
  sign?: SignRequest;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array | FormData | Blob | null;
  /** Override of the client's timeout for this call. */
  timeoutMs?: number;
  /** The caller's own cancellation: its reason is thrown as is. */
  signal?: AbortSignal;
  /** Statuses that are an answer (default: any 2xx); any other is thrown as a KelpError. */
  expect?: readonly number[];
}

/** `host:port` or a URL → a base URL without a trailing slash. */
export function baseUrl(hostOrUrl: string): string {
  return (hostOrUrl.includes('://') ? hostOrUrl : `http://${hostOrUrl}`).replace(/\/+$/, '');
}

/** Why fetch failed, in a few words: undici puts the system error (ECONNREFUSED) in `cause`. */
function whyNoAnswer(err: unknown, timedOut: boolean): string {
  if (timedOut) return 'timed out';
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? String(err);
}

/** A started request: its answer, and `done()` to stop its timer once the body is read. */
interface Sent {
  res: Response;
  /** Stops the timer: the headers are in and the caller reads the body at its own pace. */
  stopTimer: () => void;
  done: () => void;
  timedOut: () => boolean;
}

async function start(url: string, o: RequestOptions, client: ClientOptions): Promise<Sent> {
  const method = o.method ?? 'GET';
  const timeoutMs = o.timeoutMs ?? client.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new NoAnswerError(`${method} ${url}: timed out after ${timeoutMs} ms`));
  }, timeoutMs);
  const onAbort = () => controller.abort(o.signal?.reason);
  if (o.signal?.aborted) onAbort();
  o.signal?.addEventListener('abort', onAbort, { once: true });
  const stopTimer = () => clearTimeout(timer);
  const done = () => {
    clearTimeout(timer);
    o.signal?.removeEventListener('abort', onAbort);
  };
  try {
    const plain = typeof o.body === 'string' || o.body instanceof Uint8Array ? o.body : undefined;
    const headers = client.sign ? await client.sign(method, url, { ...o.headers }, plain) : { ...o.headers };
    const res = await fetch(url, { method, headers, body: o.body ?? null, signal: controller.signal });
    return { res, stopTimer, done, timedOut: () => timedOut };
  } catch (err) {
    done();
    if (o.signal?.aborted) throw o.signal.reason;
    throw new NoAnswerError(`${method} ${url}: ${whyNoAnswer(err, timedOut)}`, { cause: err });
  }
}

/** The KelpError an answer with an unexpected status stands for, named by the call. */
function failure(method: string, url: string, res: Response, text: string): KelpError {
  const retryAfter = Number(res.headers.get('retry-after'));
  const err = errorFromBody(res.status, text, {
    fallback: res.statusText,
    ...(retryAfter > 0 ? { retryAfter } : {}),
  });
  err.message = `${method} ${url}: ${res.status} ${err.message}`;
  return err;
}

function expected(res: Response, o: RequestOptions): boolean {
  return o.expect ? o.expect.includes(res.status) : res.ok;
}

/** The body read within the call's timeout; a cut-off body is a NoAnswerError. */
async function readText(url: string, o: RequestOptions, sent: Sent): Promise<string> {
  try {
    return await sent.res.text();
  } catch (err) {
    if (o.signal?.aborted) throw o.signal.reason;
    throw new NoAnswerError(`${o.method ?? 'GET'} ${url}: ${whyNoAnswer(err, sent.timedOut())}`, {
      cause: err,
    });
  } finally {
    sent.done();
  }
}

/**
 * A request whose body the caller reads (a blob download): the timeout covers
 * the wait for the headers only, so a long body is not cut off. An error
 * status is thrown as its KelpError.
 */
export async function send(
  url: string,
  o: RequestOptions = {},
  client: ClientOptions = {},
): Promise<Response> {
  const sent = await start(url, o, client);
  if (expected(sent.res, o)) {
    // The caller's signal still cancels the body; the timeout no longer does.
    sent.stopTimer();
    return sent.res;
  }
  throw failure(o.method ?? 'GET', url, sent.res, await readText(url, o, sent));
}

/** A request whose answer is JSON, read whole within the timeout. */
export async function sendJson<T>(
  url: string,
  o: RequestOptions = {},
  client: ClientOptions = {},
): Promise<{ body: T; res: Response }> {
  const sent = await start(url, o, client);
  const text = await readText(url, o, sent);
  if (!expected(sent.res, o)) throw failure(o.method ?? 'GET', url, sent.res, text);
  // 204 No Content: nothing to parse.
  if (text === '' && sent.res.status === 204) return { body: undefined as T, res: sent.res };
  try {
    return { body: JSON.parse(text) as T, res: sent.res };
  } catch (err) {
    throw new UpstreamError(`${o.method ?? 'GET'} ${url}: the answer is not JSON`, { cause: err });
  }
}
