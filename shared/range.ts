/**
 * The `Range` request header (RFC 9110 §14.1-14.2) against a representation of
 * known size. Only the `bytes` unit exists for us; anything we cannot or will
 * not honour yields `null`, which RFC 9110 lets a server answer with a plain
 * 200 of the whole representation (a Range header is only ever a hint).
 */
import { RangeNotSatisfiableError } from './errors.ts';

/** An inclusive byte range, as in `Content-Range: bytes start-end/size`. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * More range-specs than this and the header is ignored (200 whole). RFC 9110
 * §14.2 names "many small ranges" as a denial-of-service sign a server MAY
 * ignore; 50 is far beyond what video players and PDF readers send.
 */
export const MAX_RANGES = 50;

export interface ParseRangeOptions {
  /** Override of MAX_RANGES. */
  maxRanges?: number;
}

const SPEC = /^(\d*)-(\d*)$/;

/** One range-spec as written: `first-last`, `first-` (last infinite) or the suffix `-n`. */
type RangeSpec = { first: number; last: number } | { suffix: number };

/**
 * The range-specs of a `bytes` Range header, before any size is known; null
 * when the header is one a server ignores (parseRange's first case). Suffix
 * specs of 0 bytes are kept: they are valid, only never satisfiable.
 */
function parseRangeSpecs(header: string, maxRanges: number): RangeSpec[] | null {
  const eq = header.indexOf('=');
  if (eq < 0) return null;
  // Range units compare case-insensitively (RFC 9110 §14.1).
  if (header.slice(0, eq).trim().toLowerCase() !== 'bytes') return null;
  const specs: RangeSpec[] = [];
  for (const element of header.slice(eq + 1).split(',')) {
    const spec = element.trim();
    // Empty list elements are legal noise in a #list (RFC 9110 §5.6.1.2).
    if (spec === '') continue;
    if (specs.length >= maxRanges) return null;
    const m = SPEC.exec(spec);
    if (m === null) return null;
    const first = m[1]!;
    const last = m[2]!;
    if (first === '') {
      if (last === '') return null;
      specs.push({ suffix: Number(last) });
      continue;
    }
    const start = Number(first);
    const end = last === '' ? Number.POSITIVE_INFINITY : Number(last);
    if (end < start) return null;
    specs.push({ first: start, last: end });
  }
  return specs.length > 0 ? specs : null;
}

/**
 * Whether a server ignores this Range header whatever the size: another
 * unit, a syntax error (`last < first` included), too many ranges. The edge
 * drops such a header before the Cache API sees it, which would answer 416
 * where the volume server answers 200 with the whole body.
 */
export function isIgnoredRange(header: string, options: ParseRangeOptions = {}): boolean {
  return parseRangeSpecs(header, options.maxRanges ?? MAX_RANGES) === null;
}

/**
 * Parse `header` against `size` bytes.
 *
 * - `null`: no header, a unit other than `bytes`, a syntactically invalid
 *   range-set (including `last < first`), too many ranges, or an empty
 *   representation with only suffix ranges: serve 200 with the whole body.
 * - a non-empty list: the satisfiable ranges, clipped to the size. Overlapping
 *   or adjacent ranges are merged (RFC 9110 §14.2 allows coalescing), so
 *   `bytes=0-,0-,0-...` cannot amplify one blob into many copies: the parts
 *   together never exceed the representation.
 * - throws RangeNotSatisfiableError(size) when valid but none is satisfiable
 *   (e.g. `bytes=500-` on 100 bytes, `bytes=-0`): the caller answers 416 with
 *   `Content-Range: bytes * /size` (respond.ts does).
 */
export function parseRange(
  header: string | undefined,
  size: number,
  options: ParseRangeOptions = {},
): ByteRange[] | null {
  if (header === undefined) return null;
  const specs = parseRangeSpecs(header, options.maxRanges ?? MAX_RANGES);
  if (specs === null) return null;
  const ranges: ByteRange[] = [];
  let sawSuffix = false;
  for (const spec of specs) {
    if ('suffix' in spec) {
      // Suffix range "-n": the last n bytes; longer than the size means all of it.
      if (spec.suffix === 0) continue;
      sawSuffix = true;
      if (size > 0) ranges.push({ start: Math.max(0, size - spec.suffix), end: size - 1 });
      continue;
    }
    // Satisfiable only when the first byte exists; the end is clipped.
    if (spec.first < size) ranges.push({ start: spec.first, end: Math.min(spec.last, size - 1) });
  }
  if (ranges.length === 0) {
    // An empty blob has no byte to point at, yet "-n" is satisfiable by the
    // RFC's definition: the whole (empty) representation is the right answer.
    if (size === 0 && sawSuffix) return null;
    throw new RangeNotSatisfiableError(`no requested range is within the ${size} bytes`, size);
  }
  return coalesce(ranges);
}

/**
 * Merge overlapping or touching ranges. RFC 9110 §15.3.7.2 asks for parts in
 * request order, except those coalesced, which may go anywhere: so a list
 * without overlaps keeps its order, and one with overlaps comes back merged
 * and sorted.
 */
function coalesce(ranges: ByteRange[]): ByteRange[] {
  if (ranges.length === 1) return ranges;
  const sorted = ranges.slice().sort((a, b) => a.start - b.start);
  let overlaps = false;
  for (let i = 1; i < sorted.length && !overlaps; i++) {
    overlaps = sorted[i]!.start <= sorted[i - 1]!.end + 1;
  }
  if (!overlaps) return ranges;
  const out: ByteRange[] = [{ ...sorted[0]! }];
  for (let i = 1; i < sorted.length; i++) {
    const r = sorted[i]!;
    const top = out[out.length - 1]!;
    if (r.start <= top.end + 1) top.end = Math.max(top.end, r.end);
    else out.push({ ...r });
  }
  return out;
}

/** Total bytes the ranges cover (they never overlap after parseRange). */
export function rangesLength(ranges: readonly ByteRange[]): number {
  let n = 0;
  for (const r of ranges) n += r.end - r.start + 1;
  return n;
}

/**
 * A `Content-Range` answer (`bytes 100-199/5000`) read back: its first and
 * last offsets and the total (`*` as undefined); undefined when it is not one
 * satisfied byte range. Readers of ranged GETs check it against what they asked.
 */
export function parseContentRange(
  header: string | null | undefined,
): { start: number; end: number; total: number | undefined } | undefined {
  const m = header ? /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header.trim()) : null;
  if (!m) return undefined;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? undefined : Number(m[3]) };
}

/** `Content-Range` value for one satisfied range. */
export function contentRange(range: ByteRange, size: number): string {
  return `bytes ${range.start}-${range.end}/${size}`;
}
