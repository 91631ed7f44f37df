/** tiering/service/duration.ts: durations of tier rules and intervals. */
import { describe, expect, it } from 'vitest';
import { InvalidParamError } from '../../../shared/errors.ts';
import { formatDuration, parseDuration } from '../../../tiering/service/duration.ts';

const H = 3_600_000;
const D = 24 * H;

describe('durations', () => {
  it('parse a number and a unit (m is minutes, M is 30 days)', () => {
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('15m')).toBe(900_000);
    expect(parseDuration('24h')).toBe(D);
    expect(parseDuration('7d')).toBe(7 * D);
    expect(parseDuration('2w')).toBe(14 * D);
    expect(parseDuration('1M')).toBe(30 * D);
    expect(parseDuration('1y')).toBe(365 * D);
    expect(parseDuration('1.5h')).toBe(1.5 * H);
    expect(parseDuration('0')).toBe(0);
    for (const bad of ['', '7', 'd', '7 d', '-1h', '1x', '1hour'])
      expect(() => parseDuration(bad)).toThrow(InvalidParamError);
  });

  it('format with two units at most', () => {
    expect(formatDuration(0)).toBe('0s');
    expect(formatDuration(-5)).toBe('0s');
    expect(formatDuration(250)).toBe('250ms');
    expect(formatDuration(90_000)).toBe('1m 30s');
    expect(formatDuration(D + 2 * H + 5_000)).toBe('1d 2h');
    expect(formatDuration(D + 5_000)).toBe('1d');
    expect(formatDuration(7 * D)).toBe('7d');
  });
});
