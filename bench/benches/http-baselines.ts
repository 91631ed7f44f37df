import { fileURLToPath } from 'node:url';
import { compare } from '../lib/compare.ts';
import { startServer } from '../lib/process.ts';
import type { Bench } from '../run.ts';

const bare = fileURLToPath(new URL('../baselines/bare-http.ts', import.meta.url));

/** The ceiling of this machine: reads at a random offset vs a constant body. */
const bench: Bench = {
  name: 'http-baselines',
  description: 'bare node:http: 1 KiB constant body vs 1 KiB pread at a random offset',
  run: (ctx) =>
    compare(
      ['constant', 'pread-sync', 'pread-callback', 'pread-promise'].map((mode) => ({
        subject: `bare ${mode}`,
        start: () => startServer([bare, mode]),
        load: (port) => ({ url: `http://127.0.0.1:${port}/` }),
      })),
      { bench: 'http-baselines', ...ctx },
    ),
};
export default bench;
