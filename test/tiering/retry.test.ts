import { describe, expect, it } from 'vitest';
import { NotFoundError, UnavailableError } from '../../shared/errors.ts';
import { backoffDelay, READ_RETRY, retryPolicy, withRetry } from '../../tiering/backends/retry.ts';

const fast = { attempts: 4, baseDelayMs: 1, maxDelayMs: 4 };

describe('withRetry', () => {
  it('returns the first success without retrying', async () => {
    let calls = 0;
    expect(await withRetry('op', fast, async () => ++calls)).toBe(1);
    expect(calls).toBe(1);
  });

  it('retries UnavailableError and succeeds once the backend answers', async () => {
    let calls = 0;
    const retries: number[] = [];
    const result = await withRetry(
      'op',
      fast,
      async (attempt) => {
        calls++;
        if (attempt < 3) throw new UnavailableError('down');
        return 'ok';
      },
      { onRetry: (_e, attempt) => retries.push(attempt) },
    );
    expect(result).toBe('ok');
    expect(calls).toBe(3);
    expect(retries).toEqual([1, 2]);
  });

  it('gives up after the bounded attempts with an UnavailableError that has Retry-After and the cause', async () => {
    let calls = 0;
    const last = new UnavailableError('still down');
    const err = await withRetry('read k', fast, async () => {
      calls++;
      throw last;
    }).catch((e: unknown) => e);
    expect(calls).toBe(fast.attempts);
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as UnavailableError).retryAfter).toBeGreaterThan(0);
    expect((err as UnavailableError).cause).toBe(last);
  });

  it('does not retry answers such as NotFoundError, nor bugs', async () => {
    for (const thrown of [new NotFoundError('gone'), new TypeError('bug')]) {
      let calls = 0;
      await expect(
        withRetry('op', fast, async () => {
          calls++;
          throw thrown;
        }),
      ).rejects.toBe(thrown);
      expect(calls).toBe(1);
    }
  });

  it('stops waiting when the signal aborts', async () => {
    const ac = new AbortController();
    const slow = { attempts: 5, baseDelayMs: 10_000, maxDelayMs: 10_000 };
    const p = withRetry(
      'op',
      slow,
      async () => {
        throw new UnavailableError('down');
      },
      { signal: ac.signal },
    );
    setTimeout(() => ac.abort(), 10);
    const started = Date.now();
    await expect(p).rejects.toMatchObject({ name: 'AbortError' });
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});

describe('backoffDelay', () => {
  it('doubles up to the cap, with half of each delay fixed and half jittered', () => {
    const p = { attempts: 10, baseDelayMs: 100, maxDelayMs: 1_000 };
    expect(backoffDelay(1, p, () => 0)).toBe(50);
    expect(backoffDelay(1, p, () => 1)).toBe(100);
    expect(backoffDelay(3, p, () => 1)).toBe(400);
    expect(backoffDelay(9, p, () => 1)).toBe(1_000);
    expect(backoffDelay(9, p, () => 0)).toBe(500);
  });

  it('keeps the default read policy under two seconds of waiting in total', () => {
    let worst = 0;
    for (let a = 1; a < READ_RETRY.attempts; a++) worst += backoffDelay(a, READ_RETRY, () => 1);
    expect(worst).toBeLessThan(2_000);
  });

  it('rejects a policy without attempts', () => {
    expect(() => retryPolicy({ attempts: 0 })).toThrow(RangeError);
    expect(retryPolicy({ baseDelayMs: 5 })).toEqual({ ...READ_RETRY, baseDelayMs: 5 });
  });
});
