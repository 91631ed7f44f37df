import { InvalidParamError } from '../../shared/errors.ts';

/** Unknown query parameters are a 400, not silently ignored: a typo must not look like success. */
export function assertKnownParams(query: URLSearchParams, known: ReadonlySet<string>): void {
  for (const key of query.keys()) {
    if (!known.has(key)) throw new InvalidParamError(`unknown query parameter "${key}"`);
  }
}

/** Splits `req.url` without building a URL object when there is no query string (the hot read path). */
export function splitUrl(url: string): { pathname: string; query: URLSearchParams | null } {
  const q = url.indexOf('?');
  if (q < 0) return { pathname: url, query: null };
  return { pathname: url.slice(0, q), query: new URLSearchParams(url.slice(q + 1)) };
}

/** A required decimal u32 parameter (volume ids). */
export function requireU32(query: URLSearchParams | null, name: string): number {
  const raw = query?.get(name);
  if (raw === null || raw === undefined || !/^\d{1,10}$/.test(raw) || Number(raw) > 0xffffffff) {
    throw new InvalidParamError(`parameter "${name}" must be a decimal u32`);
  }
  return Number(raw);
}
