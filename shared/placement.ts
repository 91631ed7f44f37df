/**
 * Replica placement "xyz" (docs/format.md §2, §7): how many extra copies a volume keeps
 * in other data centers (x), on other racks of the same data center (y) and on
 * other servers of the same rack (z). Stored in the superblock as 100x + 10y + z.
 */
import { InvalidPlacementError } from './errors.ts';

export type Placement = {
  readonly diffDataCenter: number;
  readonly diffRack: number;
  readonly sameRack: number;
};

/** SeaweedFS refuses digits above 2 too; more copies than that has never been a supported layout. */
export const MAX_PLACEMENT_DIGIT = 2;

export const NO_REPLICATION: Placement = Object.freeze({ diffDataCenter: 0, diffRack: 0, sameRack: 0 });

// Exactly three digits: SeaweedFS also reads "1" as "100", which is easy to mistake for "001".
const PLACEMENT_PATTERN = /^[0-2]{3}$/;

/** "001" -> one more copy on another server of the same rack. "" is "000". */
export function parsePlacement(s: string): Placement {
  if (s === '') return NO_REPLICATION;
  if (!PLACEMENT_PATTERN.test(s)) {
    throw new InvalidPlacementError(
      `invalid replica placement ${JSON.stringify(s.slice(0, 16))}: expected 000-222`,
    );
  }
  return { diffDataCenter: digit(s, 0), diffRack: digit(s, 1), sameRack: digit(s, 2) };
}

export function formatPlacement(p: Placement): string {
  checkPlacement(p);
  return `${p.diffDataCenter}${p.diffRack}${p.sameRack}`;
}

/** Copies in total, the original included. */
export function copyCount(p: Placement): number {
  checkPlacement(p);
  return p.diffDataCenter + p.diffRack + p.sameRack + 1;
}

export function placementToByte(p: Placement): number {
  checkPlacement(p);
  return p.diffDataCenter * 100 + p.diffRack * 10 + p.sameRack;
}

export function placementFromByte(b: number): Placement {
  if (!(Number.isInteger(b) && b >= 0 && b <= 255))
    throw new InvalidPlacementError(`placement byte ${b} is not 0-255`);
  return parsePlacement(String(b).padStart(3, '0'));
}

function digit(s: string, i: number): number {
  return s.charCodeAt(i) - 48;
}

function checkPlacement(p: Placement): void {
  for (const n of [p.diffDataCenter, p.diffRack, p.sameRack]) {
    if (!(Number.isInteger(n) && n >= 0 && n <= MAX_PLACEMENT_DIGIT)) {
      throw new InvalidPlacementError(`replica placement counts must be 0-${MAX_PLACEMENT_DIGIT}, got ${n}`);
    }
  }
}
