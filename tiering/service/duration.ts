/**
 * Durations of tier rules and intervals: a number and a unit, "90s" "15m"
 * "24h" "7d" "2w" "3M" "1y". The units are shared/ttl.ts's (m = minutes,
 * M = 30 days, y = 365 days, as SeaweedFS counts them) plus seconds; unlike a
 * TTL, a duration is not limited to a count that fits in a byte.
 */
import { InvalidParamError } from '../../shared/errors.ts';

const DURATION_UNITS_MS: Readonly<Record<string, number>> = {
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
  M: 2_592_000_000,
  y: 31_536_000_000,
};

const DURATION_PATTERN = /^(\d+(?:\.\d+)?)([smhdwMy])$/;

/** "90s" "15m" "24h" "7d" "2w" "3M" "1y" (or "0") → milliseconds. */
export function parseDuration(s: string): number {
  const t = s.trim();
  if (t === '0') return 0;
  const m = DURATION_PATTERN.exec(t);
  if (!m) {
    throw new InvalidParamError(
      `invalid duration ${JSON.stringify(s)}: expected a number and one of s m h d w M y (e.g. 24h, 7d)`,
    );
  }
  return Math.round(Number(m[1]) * DURATION_UNITS_MS[m[2]!]!);
}

const FORMAT_UNITS = [
  ['d', 86_400],
  ['h', 3_600],
  ['m', 60],
  ['s', 1],
] as const;

/** 93784000 → "1d 2h": two units at most, for reasons and logs. */
export function formatDuration(ms: number): string {
  if (ms < 1_000) return ms <= 0 ? '0s' : `${Math.round(ms)}ms`;
  let rest = Math.floor(ms / 1_000);
  const parts: string[] = [];
  for (const [unit, secs] of FORMAT_UNITS) {
    const n = Math.floor(rest / secs);
    rest -= n * secs;
    if (parts.length > 0 || n > 0) parts.push(n > 0 ? `${n}${unit}` : '');
    if (parts.length === 2) break;
  }
  return parts.filter(Boolean).join(' ');
}
