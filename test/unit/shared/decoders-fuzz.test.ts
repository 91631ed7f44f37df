/**
 * Decoders see bytes from disks, cloud tiers and torn writes. Whatever they
 * get, they must return a value or throw a KelpError (which the servers map
 * to a status): never a RangeError, a TypeError or a hang.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KelpError } from '../../../shared/errors.ts';
import { decodeIdxEntry, replayIdx, walkIdx } from '../../../shared/idx.ts';
import { encodeNeedle } from '../../../shared/needle.ts';
import {
  decodeNeedle,
  decodeNeedleMeta,
  parseDataSize,
  parseNeedleHeader,
} from '../../../shared/needle-decode.ts';
import { scanNeedles } from '../../../shared/needle-scan.ts';
import { needleInput, version } from './arbitraries.ts';

const RUNS = 10_000;

function valueOrKelpError(run: () => unknown): void {
  try {
    run();
  } catch (err) {
    if (!(err instanceof KelpError)) throw err;
  }
}

const randomBytes = fc.uint8Array({ maxLength: 300 });

/** Valid records with a few bytes overwritten and maybe cut short: these reach past the header checks. */
const damagedRecords = fc
  .tuple(
    needleInput,
    version,
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
    fc.nat(),
  )
  .map(([n, v, edits, cut]) => {
    const bytes = encodeNeedle(n, v);
    for (const [at, value] of edits) bytes[at % bytes.length] = value;
    return bytes.subarray(0, cut % (bytes.length + 1) || bytes.length);
  });

const input = fc.oneof(randomBytes, damagedRecords);

describe('decoders on arbitrary bytes', () => {
  it(`needle decoders return a value or throw a KelpError (${RUNS} inputs)`, () => {
    fc.assert(
      fc.property(input, fc.nat(), fc.nat(), fc.integer({ min: 0, max: 5 }), (bytes, size, dataSize, v) => {
        for (const ver of [2, 3, v]) valueOrKelpError(() => decodeNeedle(bytes, ver));
        valueOrKelpError(() => decodeNeedle(bytes, 3, { expectedSize: size, expectedId: BigInt(dataSize) }));
        valueOrKelpError(() => parseNeedleHeader(bytes));
        valueOrKelpError(() => parseDataSize(bytes, size));
        valueOrKelpError(() => decodeNeedleMeta(bytes, size % 400, dataSize % 400, v));
        valueOrKelpError(() => decodeNeedleMeta(bytes, bytes.length, dataSize % (bytes.length + 1), 3));
        valueOrKelpError(() => [...scanNeedles(bytes, 0, v)]);
      }),
      { numRuns: RUNS },
    );
  });

  it(`idx decoders return a value or throw a KelpError (${RUNS} inputs)`, () => {
    fc.assert(
      fc.property(randomBytes, fc.integer({ min: -20, max: 320 }), (bytes, at) => {
        valueOrKelpError(() => decodeIdxEntry(bytes));
        valueOrKelpError(() => decodeIdxEntry(bytes, at));
        const walked = walkIdx(bytes, () => {});
        expect(walked.entries * 16 + walked.trailingBytes).toBe(bytes.length);
        expect(replayIdx(bytes).entries).toBe(walked.entries);
      }),
      { numRuns: RUNS },
    );
  });

  it('scans a long run of garbage in bounded steps', () => {
    const garbage = new Uint8Array(1 << 20);
    for (let i = 0; i < garbage.length; i += 65536) crypto.getRandomValues(garbage.subarray(i, i + 65536));
    const items = [...scanNeedles(garbage, 0)];
    expect(items.at(-1)?.kind).toBe('tail');
  });
});
