/**
 * A pause that the caller's abort ends at once (rejecting with the signal's
 * reason): retry loops in shared/ and tiering/ wait with it, so cancelling a
 * request never waits out a backoff. Web APIs only (workerd runs it too).
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
