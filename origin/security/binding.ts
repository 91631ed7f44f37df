/**
 * Secure by default: a server bound to an address other machines can reach
 * refuses to start without the credentials that keep it closed, unless the
 * operator says --insecure (and then it says so loudly).
 */
import { isIP } from 'node:net';
import { ConfigError } from '../config-error.ts';

/** 127.0.0.0/8, ::1 and `localhost`: reachable from this machine only. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1' || h === '::ffff:127.0.0.1') return true;
  return isIP(h) === 4 && h.startsWith('127.');
}

/**
 * `missing` names the settings (env var or TOML key) this server needs on a
 * non-loopback address and does not have. Throws a ConfigError naming them,
 * or returns a warning line to log when `insecure` overrides it.
 */
export function checkBinding(
  what: string,
  host: string,
  missing: string[],
  insecure: boolean,
): string | undefined {
  if (isLoopback(host) || missing.length === 0) return undefined;
  const list = missing.join(', ');
  if (!insecure) {
    throw new ConfigError(
      `${what} would listen on ${host}, reachable from other machines, without ${list}: ` +
        `set ${missing.length > 1 ? 'them' : 'it'} (see docs/security.md), bind 127.0.0.1, or pass --insecure to run open`,
    );
  }
  return `${what}: INSECURE: listening on ${host} without ${list}; anyone who can reach it can change it`;
}
