/**
 * Bounded retry with exponential backoff for backend requests. Only
 * `UnavailableError` (the store is down, timed out, or answered 5xx/429) is
 * retried; a missing object or a short read is an answer, not a hiccup. After
 * the last attempt the caller gets an `UnavailableError` (a 503 with
 * Retry-After), never a hang: the attempts and delays are bounded.
 */
import { UnavailableError } from '../../shared/errors.ts';
import { sleep } from '../../shared/sleep.ts';

export interface RetryPolicy {
  /** Total attempts, the first included. */
  attempts: number;
  /** Delay cap before the second attempt; doubles per attempt. */
  baseDelayMs: number;
  maxDelayMs: number;
}

/** Reads sit behind a client request: about 1.5 s of retries at most, then a 503. */
export const READ_RETRY: RetryPolicy = { attempts: 4, baseDelayMs: 100, maxDelayMs: 1_000 };

/** Retry-After (seconds) sent with the 503 once retries are spent. */
export const UNAVAILABLE_RETRY_AFTER_S = 1;

export function retryPolicy(overrides: Partial<RetryPolicy> | undefined): RetryPolicy {
  const p = { ...READ_RETRY, ...overrides };
  if (!Number.isInteger(p.attempts) || p.attempts < 1) throw new RangeError('retry.attempts must be >= 1');
  return p;
}

/**
 * Delay before attempt `attempt + 1`: "equal jitter", half fixed and half
 * random, so concurrent readers spread out but none retries instantly.
 */
export function backoffDelay(
  attempt: number,
  policy: RetryPolicy,
  random: () => number = Math.random,
): number {
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  return cap / 2 + random() * (cap / 2);
}

export interface RetryOptions {
  signal?: AbortSignal;
  onRetry?(err: UnavailableError, attempt: number, delayMs: number): void;
}

/**
 * Runs `fn` until it succeeds, throws something other than `UnavailableError`,
 * or `policy.attempts` are spent; then throws an `UnavailableError` that names
 * `what` and carries the last failure as its cause.
 */
export async function withRetry<T>(
  what: string,
  policy: RetryPolicy,
  fn: (attempt: number) => Promise<T>,
  opts: RetryOptions = {},
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (!(err instanceof UnavailableError)) throw err;
      if (opts.signal?.aborted) throw opts.signal.reason;
      if (attempt >= policy.attempts) {
        throw new UnavailableError(
          `${what}: backend unavailable after ${attempt} attempt${attempt === 1 ? '' : 's'} (${err.message})`,
          err.retryAfter ?? UNAVAILABLE_RETRY_AFTER_S,
          { cause: err },
        );
      }
      const delay = backoffDelay(attempt, policy);
      opts.onRetry?.(err, attempt, delay);
      await sleep(delay, opts.signal);
    }
  }
}
