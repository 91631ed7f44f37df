/**
 * Progress bars of `kelp tier` transfers (cli-progress), on stderr and only
 * when stderr is a terminal: piped or logged output gets the final lines alone,
 * never a stream of carriage returns. A bar appears once a transfer has run
 * for PROGRESS_AFTER_MS, so quick ones (a small volume, a local backend) do not
 * flash one.
 */
import { createRequire } from 'node:module';
import type cliProgress from 'cli-progress';
import type { TierJob } from '../../tiering/service/client.ts';
import { formatBytes } from '../../tiering/service/service.ts';

export const PROGRESS_AFTER_MS = 1_000;

export interface TransferBar {
  update(job: TierJob): void;
  /** Removes the bar (the caller prints the outcome as a line). */
  done(): void;
}

export interface Bars {
  /** A bar for one transfer, labelled e.g. "volume 3 on 127.0.0.1:8080 upload". */
  bar(label: string): TransferBar;
  /** A result line for stdout (drawn above the bars when they share the terminal). */
  log(line: string): void;
  stop(): void;
}

const NO_BAR: TransferBar = { update() {}, done() {} };

export function transferBars(stream: NodeJS.WriteStream = process.stderr): Bars {
  if (!stream.isTTY) {
    return { bar: () => NO_BAR, log: (line) => console.log(line), stop() {} };
  }
  // Required only for a terminal: every kelp process imports this file, few draw bars (issue 15: RSS).
  const bars = createRequire(import.meta.url)('cli-progress') as typeof cliProgress;
  const multi = new bars.MultiBar(
    {
      stream,
      format: '{label} [{bar}] {percentage}% | {done} of {size} | ETA {eta_formatted}',
      barsize: 30,
      hideCursor: true,
      clearOnComplete: true,
      etaBuffer: 20,
      fps: 5,
    },
    bars.Presets.shades_classic,
  );
  let shown = 0;
  const flushAndStop = () => {
    if (!multi.isActive) return;
    multi.update(); // writes lines logged since the last frame
    multi.stop();
  };
  return {
    bar(label) {
      const since = Date.now();
      let bar: cliProgress.SingleBar | undefined;
      let finished = false;
      return {
        update(job) {
          if (finished || job.state !== 'running' || !job.total) return;
          const payload = { label, done: formatBytes(job.bytes), size: formatBytes(job.total) };
          if (!bar) {
            if (Date.now() - since < PROGRESS_AFTER_MS) return;
            bar = multi.create(job.total, job.bytes, payload);
            shown++;
          }
          bar.setTotal(job.total);
          bar.update(job.bytes, payload);
        },
        done() {
          finished = true;
          if (!bar) return;
          multi.remove(bar);
          bar = undefined;
          if (--shown === 0) flushAndStop();
        },
      };
    },
    // While bars are drawn on the terminal stdout shares, a line goes above them; otherwise plain.
    log: (line) => (shown > 0 && process.stdout.isTTY ? multi.log(`${line}\n`) : console.log(line)),
    stop: flushAndStop,
  };
}
