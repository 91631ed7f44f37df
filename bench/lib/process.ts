import { type ChildProcess, spawn } from 'node:child_process';

export interface Started {
  /** The server's process; absent for a server the bench runs some other way (e.g. workerd via Miniflare). */
  child?: ChildProcess;
  /** Every process serving the contender, when there are several (a cluster): its CPU is their sum. */
  pids?: number[];
  /** The server's pid when there is no `child` (found another way, e.g. cpu.ts's pidListeningOn). */
  pid?: number;
  port: number;
  stop(): Promise<void>;
}

/**
 * Starts a server process that prints `listening <port>` (or a line matching
 * `ready`) on stdout, and resolves once it has. Children run on the same Node
 * binary as the runner.
 */
export function startServer(
  args: string[],
  opts: { ready?: RegExp; env?: Record<string, string>; timeoutMs?: number; command?: string } = {},
): Promise<Started> {
  const ready = opts.ready ?? /listening (\d+)/;
  const child = spawn(opts.command ?? process.execPath, args, {
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not start in time: ${args.join(' ')}`));
    }, opts.timeoutMs ?? 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited early (${code}): ${args.join(' ')}`));
    });
    child.stdout!.on('data', (chunk: Buffer) => {
      buf += chunk.toString();
      const m = ready.exec(buf);
      if (!m) return;
      clearTimeout(timer);
      child.stdout!.removeAllListeners('data');
      child.stdout!.resume();
      resolve({
        child,
        port: Number(m[1]),
        stop: () =>
          new Promise((done) => {
            if (child.exitCode !== null) return done();
            child.removeAllListeners('exit');
            child.once('exit', () => done());
            child.kill('SIGTERM');
          }),
      });
    });
  });
}

/**
 * A contender made of two servers: `behind` first, then `front` told of it.
 * Load goes to `front`'s port; CPU is counted over both; stopping stops both
 * (and a `front` that fails to start stops `behind`).
 */
export async function startBehind(
  behind: () => Promise<Started>,
  front: (behind: Started) => Promise<Started>,
): Promise<Started> {
  const back = await behind();
  try {
    const started = await front(back);
    return {
      port: started.port,
      pids: [started.child?.pid, back.child?.pid].filter((p) => p !== undefined),
      stop: async () => {
        await started.stop();
        await back.stop();
      },
    };
  } catch (err) {
    await back.stop();
    throw err;
  }
}
