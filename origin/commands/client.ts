/** HTTP calls of `kelp upload` / `kelp download`: JSON answers, errors that say who failed and why. */

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

/** The `{error}` of a Kelp error body, else the status line. */
async function reason(res: Response): Promise<string> {
  const body = await res.text();
  try {
    const parsed = JSON.parse(body) as { error?: unknown };
    if (typeof parsed.error === 'string') return `${res.status} ${parsed.error}`;
  } catch {
    // not JSON: fall through to the raw text
  }
  return `${res.status} ${body.trim().slice(0, 200) || res.statusText}`;
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
