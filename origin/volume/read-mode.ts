/**
 * How a volume preads small needles: on the event loop (`readSync`) or on
 * libuv's thread pool (`fs.read`), switched by how long recent synchronous
 * reads took. Figures and reasoning: docs/decisions/0003-read-path.md.
 *
 * From the page cache a 1 KiB pread takes about 1 µs and `readSync` serves
 * 1.6x the requests of `fs.read` (the thread-pool round trip costs more CPU
 * than the read). From the disk it takes 60 µs or more, during which a
 * synchronous read stalls every connection, while the thread pool keeps four
 * reads in flight and the loop busy: 2.4x the requests. So reads start
 * synchronous and timed; once more than one in 8 is slow they go to the
 * thread pool, with one read in 64 still done synchronously and timed as a
 * probe; when fewer than one probe in 32 is slow they come back.
 */
import { read, readSync } from 'node:fs';
import { TruncatedDataError } from '../../shared/errors.ts';

/** A synchronous pread slower than this did not come from the page cache. */
export const SLOW_READ_MS = 0.02;
/** Go to the thread pool above this fraction of slow reads... */
const TO_POOL = 1 / 8;
/** ...and back below this one (the gap keeps the mode from flapping). */
const TO_LOOP = 1 / 32;
/** Weight of one read in the moving average while on the loop (about the last 64 reads)... */
const LOOP_WEIGHT = 1 / 64;
/** ...and of one probe while on the thread pool (about the last 16 probes). */
const PROBE_WEIGHT = 1 / 16;
/** While on the thread pool, one read in this many is a synchronous probe (a power of 2). */
const PROBE_EVERY = 64;

export class ReadMode {
  /** True while small reads go to the thread pool. */
  pooled = false;
  /** Moving average of the fraction of timed synchronous reads slower than SLOW_READ_MS. */
  slowFraction = 0;
  private reads = 0;

  /** Whether the next read should be synchronous (and timed with `record`). */
  sync(): boolean {
    return !this.pooled || (++this.reads & (PROBE_EVERY - 1)) === 0;
  }

  /** Records how long a synchronous read took, in milliseconds. */
  record(ms: number): void {
    const slow = ms > SLOW_READ_MS ? 1 : 0;
    this.slowFraction += (slow - this.slowFraction) * (this.pooled ? PROBE_WEIGHT : LOOP_WEIGHT);
    if (!this.pooled && this.slowFraction > TO_POOL) this.pooled = true;
    else if (this.pooled && this.slowFraction < TO_LOOP) this.pooled = false;
  }
}

/**
 * Fills `buf` from `position` on the event loop and returns the milliseconds
 * the reads took. The buffer is allocated by the caller, outside the timing:
 * an allocation may run a garbage collection, which is not the disk's doing.
 */
export function timedPreadExact(fd: number, buf: Buffer, position: number): number {
  const started = performance.now();
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, buf.length - done, position + done);
    if (n === 0) {
      const msg = `file ends at ${position + done}, wanted ${buf.length} bytes at ${position}`;
      throw new TruncatedDataError(msg);
    }
    done += n;
  }
  return performance.now() - started;
}

/** Reads exactly `buf.length` bytes at `position` on the thread pool (preadExact's asynchronous twin). */
export function preadExactAsync(fd: number, buf: Buffer, position: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const step = (done: number): void => {
      read(fd, buf, done, buf.length - done, position + done, (err, n) => {
        if (err) return reject(err);
        if (n === 0) {
          const msg = `file ends at ${position + done}, wanted ${buf.length} bytes at ${position}`;
          return reject(new TruncatedDataError(msg));
        }
        if (done + n < buf.length) return step(done + n);
        resolve(buf);
      });
    };
    step(0);
  });
}
