/**
 * How long a cached copy may be served without asking the origin, and the
 * one revalidation per key in flight. A copy is fresh for EDGE_FRESH_SECONDS
 * after the origin last confirmed it (its first fetch, or a 304 since): that
 * is the staleness bound of every change the edge hears nothing about. From
 * half-way through, a hit also revalidates in the background, so a hot
 * object is confirmed before it goes stale and its readers never wait.
 *
 * A 304 is remembered here, per isolate, instead of rewriting the stored
 * copy: rewriting would copy every body through the cache again each period,
 * however large. Another isolate of the colo revalidates on its own (one
 * conditional request per isolate per period).
 */
import { CONFIRMED_HEADER } from './cache.ts';

/** Confirmations kept in isolate memory (an LRU; a forgotten one costs one extra 304). */
export const FRESHNESS_ENTRIES = 20_000;
/** Fraction of the fresh period after which a hit starts a background revalidation. */
export const EARLY_REFRESH_FRACTION = 0.5;

const confirmations = new Map<string, number>();

/** When the origin last vouched for the copy under `url`: its stored stamp or a later 304. */
export function confirmedAt(url: string, stored: Headers): number {
  const fromHeader = Number(stored.get(CONFIRMED_HEADER) ?? 0);
  if (confirmations.size === 0) return fromHeader;
  const remembered = confirmations.get(url);
  return remembered !== undefined && remembered > fromHeader ? remembered : fromHeader;
}

export function noteConfirmed(url: string, at: number): void {
  confirmations.delete(url);
  confirmations.set(url, at);
  if (confirmations.size > FRESHNESS_ENTRIES) confirmations.delete(confirmations.keys().next().value!);
}

/** Drops remembered confirmations (the copies were purged). */
export function forgetConfirmed(urls: Iterable<string>): void {
  for (const url of urls) confirmations.delete(url);
}

const inFlight = new Map<string, Promise<unknown>>();

/**
 * Runs `fn` unless a run for `url` is already in flight in this isolate, whose
 * result is shared. A waiter waits at most `waitMs` (the run belongs to another
 * request, which the runtime may cancel with its client), then runs `fn` itself.
 */
export function singleFlight<T>(url: string, fn: () => Promise<T>, waitMs: number): Promise<T> {
  const running = inFlight.get(url) as Promise<T> | undefined;
  if (running) {
    let timer: ReturnType<typeof setTimeout> | null = null;
    const own = new Promise<T>((resolve, reject) => {
      timer = setTimeout(() => fn().then(resolve, reject), waitMs);
    });
    return Promise.race([running.finally(() => clearTimeout(timer)), own]);
  }
  const p = fn().finally(() => inFlight.delete(url));
  inFlight.set(url, p);
  return p;
}
