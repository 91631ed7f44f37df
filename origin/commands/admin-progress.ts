/**
 * Progress of `kelp admin` operations (cli-progress): one bar over the steps
 * or volumes of an operation, on stderr and only when stderr is a terminal;
 * piped or logged output gets one line per step instead, never carriage returns.
 */
import { createRequire } from 'node:module';
import type CliProgress from 'cli-progress';

export interface StepProgress {
  /** Step `index` of the total is starting: `label` says what it does. */
  step(index: number, label: string): void;
  /** A result line for stdout (drawn above the bar on a terminal). */
  log(line: string): void;
  stop(): void;
}

export function stepProgress(total: number, stream: NodeJS.WriteStream = process.stderr): StepProgress {
  if (!stream.isTTY || total === 0) {
    return {
      step: (i, label) => console.log(`[${i + 1}/${total}] ${label}`),
      log: (l) => console.log(l),
      stop() {},
    };
  }
  // Required only for a terminal: every kelp process imports this file, few draw bars (issue 15: RSS).
  const cliProgress = createRequire(import.meta.url)('cli-progress') as typeof CliProgress;
  const bar = new cliProgress.SingleBar(
    { stream, format: '[{bar}] {value}/{total} | {label}', barsize: 30, hideCursor: true, fps: 5 },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { label: '' });
  return {
    step: (i, label) => bar.update(i, { label }),
    log: (line) => {
      // Above the bar: clear its line, print, and let the next frame redraw it.
      stream.write('\r\x1b[K');
      console.log(line);
      bar.render();
    },
    stop: () => {
      if (!bar.isActive) return;
      bar.update(total, { label: 'done' });
      bar.stop();
    },
  };
}
