/**
 * Vitest global setup: the servers the suite runs for real come from Debian's
 * packages, and `npm test` installs whatever is missing on a fresh machine
 * (as root, with apt-get), saying what it does. Nothing here is skipped when
 * an install fails: the test files that need the program then fail with the
 * reason, so a missing install step can never pass unnoticed.
 *
 * KELP_TEST_NO_INSTALL=1 turns the installs off (a developer who prefers to
 * install by hand).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Each program the tests run, the Debian packages that bring it, and who needs it. */
export const SYSTEM_PACKAGES: Array<{ program: string; packages: string[]; for: string }> = [
  {
    program: 'radosgw',
    packages: ['ceph-mon', 'ceph-osd', 'radosgw'],
    for: 'the S3 tier tests (Ceph RADOS Gateway on memstore)',
  },
  {
    program: 'etcd',
    packages: ['etcd-server'],
    for: 'the several-masters tests and bench (three etcd members on loopback)',
  },
  {
    program: 'chromium',
    packages: ['chromium'],
    for: "the browser tests (status pages, edge pages; playwright-core drives Debian's Chromium)",
  },
  {
    program: 'systemd-analyze',
    packages: ['systemd'],
    for: 'the infra tests (systemd-analyze verify of infra/systemd/*.service)',
  },
  {
    program: 'promtool',
    packages: ['prometheus'],
    for: 'the metrics and infra tests (promtool checks /metrics, scrape config and alert rules)',
  },
];

/** Whether `program` is an executable on PATH or in the sbin/bin folders root has. */
export function onPath(program: string): boolean {
  const dirs = (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/usr/bin', '/sbin', '/bin']);
  return dirs.some((d) => {
    try {
      accessSync(join(d, program), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

export default function setup(): void {
  const missing = SYSTEM_PACKAGES.filter((p) => !onPath(p.program));
  if (missing.length === 0) return;
  const packages = [...new Set(missing.flatMap((p) => p.packages))];
  const why = missing.map((p) => `${p.program} (${p.for})`).join('; ');
  if (process.env.KELP_TEST_NO_INSTALL === '1') {
    console.warn(
      `kelp tests: missing ${why}; KELP_TEST_NO_INSTALL=1, so not installing: those tests will fail`,
    );
    return;
  }
  if (process.getuid?.() !== 0 || spawnSync('apt-get', ['--version']).status !== 0) {
    console.warn(
      `kelp tests: missing ${why}; install as root: apt-get install -y --no-install-recommends ${packages.join(' ')}`,
    );
    return;
  }
  console.log(`kelp tests: installing ${packages.join(' ')} from Debian for ${why} (once; about 30 s)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env,
    });
  } catch (err) {
    console.warn(
      `kelp tests: apt-get failed (${(err as Error).message}): the tests that need ${why} will fail`,
    );
  }
}
