/**
 * CPU time a process has used (user + system, Linux /proc), so a bench can
 * report what a request costs the server in CPU: on a shared machine that
 * moves far less than requests per second, which other load steals from.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

const CLOCK_TICKS_PER_SECOND = 100;

/** Seconds of CPU the process has used so far, or undefined when /proc cannot say. */
export function cpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the command.
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/**
 * The pid of the process listening on TCP `port` (Linux /proc), or undefined:
 * for a server the bench does not start itself, such as the workerd a
 * Miniflare instance runs (whose CPU then counts the Worker and the local
 * R2 and Cache API it simulates alike). Scans at most MAX_PROCESSES_SCANNED.
 */
export function pidListeningOn(port: number): number | undefined {
  const hexPort = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // local_address, state 0A (LISTEN), inode.
      if (f[1]?.endsWith(hexPort) && f[3] === '0A' && f[9]) inodes.add(`socket:[${f[9]}]`);
    }
  }
  if (inodes.size === 0) return undefined;
  const pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  for (const pid of pids.slice(0, MAX_PROCESSES_SCANNED)) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (inodes.has(readlinkSync(`/proc/${pid}/fd/${fd}`))) return Number(pid);
      } catch {
        // Closed meanwhile.
      }
    }
  }
  return undefined;
}

const MAX_PROCESSES_SCANNED = 100_000;
