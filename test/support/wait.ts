/** Bounded polling for the tests: every wait has a deadline and says what it waited for. */

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** How often waitFor polls unless told. */
export const POLL_INTERVAL_MS = 100;

/**
 * Polls `check` until it returns a truthy value, or throws after `timeoutMs`
 * naming `what` (and the last error `check` threw: a server still starting
 * refuses connections, which is a reason to poll again, not to fail).
 */
export async function waitFor<T>(
  what: string,
  check: () => T | Promise<T>,
  timeoutMs = 10_000,
  intervalMs = POLL_INTERVAL_MS,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (${String(last)})` : ''}`,
      );
    }
    await sleep(intervalMs);
  }
}
