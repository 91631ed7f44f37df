/**
 * Helpers for the `kelp` CLI tests: run the real command (`node origin/cli.ts`)
 * as a child process, free ports, temp dirs.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../support/ports.ts';
import { removeTempDirs, tempDir as supportTempDir } from '../../support/temp-dirs.ts';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const CLI = join(REPO_ROOT, 'origin/cli.ts');

export function tempDir(prefix = 'kelp-cli-'): string {
  return supportTempDir(prefix);
}

export { freePort, removeTempDirs };

/** The environment minus every KELP_* variable, so the caller's shell cannot leak into a test. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('KELP_')) env[k] = v;
  return { ...env, ...extra };
}

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string>;
  stdin?: Uint8Array;
}

export interface RunResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** `kelp ARGS` to completion. */
export async function runKelp(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: opts.cwd ?? REPO_ROOT,
    env: cleanEnv(opts.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => out.push(c));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
  });
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout: Buffer.concat(out), stderr };
}

export interface Started {
  child: ChildProcess;
  /** Every `listening on http://...` URL printed, in order. */
  urls: string[];
  output(): string;
  /** Sends `signal` and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** `kelp ARGS` left running, once it has printed `count` "listening on" lines. */
export async function startKelp(args: string[], count: number, opts: RunOptions = {}): Promise<Started> {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: opts.cwd ?? REPO_ROOT,
    env: cleanEnv(opts.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    out += s;
  });
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const urls = await new Promise<string[]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`kelp ${args[0]} did not start:\n${out}`)), 20_000);
    child.stdout!.on('data', (s: string) => {
      out += s;
      const found = [...out.matchAll(/listening on (http:\/\/[\d.]+:\d+)/g)].map((m) => m[1]!);
      if (found.length >= count) {
        clearTimeout(timer);
        resolve(found);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`kelp ${args[0]} exited with ${code}:\n${out}`));
    });
  });
  return {
    child,
    urls,
    output: () => out,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const [code] = await exited;
      return code;
    },
  };
}
