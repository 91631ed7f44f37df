/**
 * A Node child process (the kelp CLI or a test fixture) started and waited
 * for: ready once its stdout matches `ready`, failed if it exits first or does
 * not get there within `timeoutMs`. Its output (stdout and stderr) is kept for
 * the failure message and for tests that read its logs.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';

/** How long a process may take to print its ready line unless told. */
export const START_TIMEOUT_MS = 20_000;

export interface ReadyProcess {
  child: ChildProcess;
  /** The match of `ready` (its groups carry what the line announced, e.g. the port). */
  match: RegExpExecArray;
  output(): string;
  /** SIGTERM, then waits for the exit (at once if it already exited). */
  stop(): Promise<void>;
  /** SIGKILL, then waits for the exit. */
  kill(): Promise<void>;
}

export interface SpawnOptions {
  /** Names the process in errors, e.g. `volume server`. */
  what: string;
  ready: RegExp;
  timeoutMs?: number;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Told how to kill the process as soon as it exists, so a harness can stop it even if it never gets ready. */
  onSpawn?: (kill: () => Promise<void>) => void;
}

/** `node ARGS` with the project's Node, resolved once it printed a line matching `ready`. */
export async function spawnUntilReady(args: string[], opts: SpawnOptions): Promise<ReadyProcess> {
  const timeoutMs = opts.timeoutMs ?? START_TIMEOUT_MS;
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
    ...(opts.env ? { env: opts.env } : {}),
  });
  const exited = once(child, 'exit');
  let out = '';
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => {
    out += s;
  });
  const stopWith = async (signal: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    await exited;
  };
  opts.onSpawn?.(() => stopWith('SIGKILL'));
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${opts.what} did not start:\n${out}`)), timeoutMs);
    child.stdout!.on('data', (s: string) => {
      out += s;
      const m = opts.ready.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${opts.what} exited with ${code}:\n${out}`));
    });
  });
  return {
    child,
    match,
    output: () => out,
    stop: () => stopWith('SIGTERM'),
    kill: () => stopWith('SIGKILL'),
  };
}
