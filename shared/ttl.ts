/**
 * Time to live of a volume or a needle (docs/format.md §2): a count of 0-255 and a unit,
 * stored as two bytes (count, unit) in the superblock and in needles with flag 0x10.
 * A count of 0 means "never expires".
 */
import { CorruptDataError, InvalidTtlError, TruncatedDataError } from './errors.ts';

/** Units in the order of their stored byte: 'm' is 1 ... 'y' is 6; 0 is "no TTL" on disk. */
const UNITS = ['m', 'h', 'd', 'w', 'M', 'y'] as const;
export type TtlUnit = (typeof UNITS)[number];

export type Ttl = { readonly count: number; readonly unit: TtlUnit };

/** The unit of an empty TTL means nothing; 'm' keeps the type simple. */
export const EMPTY_TTL: Ttl = Object.freeze({ count: 0, unit: 'm' });

/** The count is one byte on disk. */
export const MAX_TTL_COUNT = 255;

export const TTL_SIZE = 2;

// Months and years are fixed lengths (30 and 365 days), as SeaweedFS counts them:
// both must turn the same two bytes into the same expiry.
const UNIT_SECONDS: Readonly<Record<TtlUnit, number>> = {
  m: 60,
  h: 3_600,
  d: 86_400,
  w: 604_800,
  M: 2_592_000,
  y: 31_536_000,
};

const MAX_TTL_SECONDS = MAX_TTL_COUNT * UNIT_SECONDS.y;

const TTL_PATTERN = /^(\d+)([mhdwMy]?)$/;

export function isEmptyTtl(t: Ttl): boolean {
  return t.count === 0;
}

/**
 * "3m" "4h" "5d" "6w" "7M" "8y"; a bare number is minutes; "" (or a zero count) is no TTL.
 * The result is normalised as SeaweedFS does, so both store the same bytes for the same
 * string: the largest unit that holds the value exactly ("120m" -> 2h, "14d" -> 2w), else
 * the smallest unit whose count fits in a byte, rounding down ("256m" -> 4h, "1000d" -> 142w).
 */
export function parseTtl(s: string): Ttl {
  if (s === '') return EMPTY_TTL;
  const match = TTL_PATTERN.exec(s);
  if (!match) throw new InvalidTtlError(`invalid TTL ${quote(s)}: expected a count and one of m h d w M y`);
  const unit = (match[2] || 'm') as TtlUnit;
  const seconds = Number(match[1]) * UNIT_SECONDS[unit];
  // SeaweedFS silently turns an overflow into "never expires"; Kelp refuses instead.
  if (!(seconds <= MAX_TTL_SECONDS)) throw new InvalidTtlError(`TTL ${quote(s)} is longer than 255y`);
  return fitTtl(seconds);
}

function fitTtl(seconds: number): Ttl {
  if (seconds === 0) return EMPTY_TTL;
  for (let i = UNITS.length - 1; i >= 0; i--) {
    const unit = UNITS[i]!;
    const count = seconds / UNIT_SECONDS[unit];
    if (Number.isInteger(count) && count <= MAX_TTL_COUNT) return { count, unit };
  }
  for (const unit of UNITS) {
    const count = Math.floor(seconds / UNIT_SECONDS[unit]);
    if (count <= MAX_TTL_COUNT) return { count, unit };
  }
  // Unreachable: parseTtl caps seconds at 255 years.
  throw new InvalidTtlError(`TTL of ${seconds}s is longer than 255y`);
}

export function formatTtl(t: Ttl): string {
  checkTtl(t);
  return t.count === 0 ? '' : `${t.count}${t.unit}`;
}

export function ttlToSeconds(t: Ttl): number {
  checkTtl(t);
  return t.count * UNIT_SECONDS[t.unit];
}

export function encodeTtl(t: Ttl): Uint8Array<ArrayBuffer> {
  checkTtl(t);
  // An empty TTL is stored as 0,0 whatever its unit, as SeaweedFS writes EMPTY_TTL.
  if (t.count === 0) return new Uint8Array(TTL_SIZE);
  return Uint8Array.of(t.count, UNITS.indexOf(t.unit) + 1);
}

/** Reads the two bytes at `offset`. The stored count is kept as is, not normalised. */
export function decodeTtl(bytes: Uint8Array, offset = 0): Ttl {
  if (!(Number.isInteger(offset) && offset >= 0 && offset + TTL_SIZE <= bytes.length)) {
    throw new TruncatedDataError(
      `TTL at offset ${offset} needs ${TTL_SIZE} bytes, input has ${bytes.length}`,
    );
  }
  const count = bytes[offset]!;
  const unitByte = bytes[offset + 1]!;
  if (unitByte > UNITS.length) throw new CorruptDataError(`TTL unit byte ${unitByte} is not 0-6`);
  // Unit 0 with a count was written by older SeaweedFS for strings like "5x"; it reads as no TTL.
  if (count === 0 || unitByte === 0) return EMPTY_TTL;
  return { count, unit: UNITS[unitByte - 1]! };
}

function checkTtl(t: Ttl): void {
  if (
    !(
      Number.isInteger(t.count) &&
      t.count >= 0 &&
      t.count <= MAX_TTL_COUNT &&
      Object.hasOwn(UNIT_SECONDS, t.unit)
    )
  ) {
    throw new InvalidTtlError(
      `TTL ${quote(`${t.count}${t.unit}`)} is not a count 0-255 and a unit m h d w M y`,
    );
  }
}

function quote(s: string): string {
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}...` : s);
}
