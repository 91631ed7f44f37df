/**
 * CRC-32C (Castagnoli), the checksum a needle stores over its data as stored
 * (docs/format.md §4). From SheetJS's `crc-32` package (its `crc32c` module): pure JS,
 * so the same module runs in Node and in workerd, and slice-by-16, about
 * 2 GB/s here against 120 MB/s for `@aws-crypto/crc32c` (measured in
 * docs/decisions/0002-crc32c.md). Every read checks a CRC, so this matters: the
 * Node origin swaps in a native step through `installCrc32cUpdate`.
 */
import CRC32C from 'crc-32/crc32c.js';

/**
 * One CRC-32C step: the CRC of `bytes` continued from `seed` (the previous
 * step's result, 0 to start), as an unsigned 32-bit number. Seeds chain the
 * same way in `crc-32` and `@node-rs/crc32` (property test in
 * test/unit/origin/native-crc.test.ts).
 */
export type Crc32cUpdate = (bytes: Uint8Array, seed: number) => number;

/** The pure-JS step: runs anywhere, so it is the default and the only one in workerd. */
export const jsCrc32cUpdate: Crc32cUpdate = (bytes, seed) => CRC32C.buf(bytes, seed) >>> 0;

let update: Crc32cUpdate = jsCrc32cUpdate;

/**
 * Replaces the CRC-32C step for this whole process. The Node origin installs a
 * native one once at start (origin/native-crc.ts) because shared/ may not import
 * Node-only packages and the CRC is computed deep inside shared/ decoders
 * (docs/decisions/0002-crc32c.md says why not a parameter). The step must give
 * the values `jsCrc32cUpdate` gives: only speed may change, never a checksum.
 */
export function installCrc32cUpdate(step: Crc32cUpdate): void {
  update = step;
}

/** The step in use, so a test can tell an install happened (values alone cannot). */
export function activeCrc32cUpdate(): Crc32cUpdate {
  return update;
}

/** CRC-32C of `bytes`, as an unsigned 32-bit number. */
export function crc32c(bytes: Uint8Array): number {
  return update(bytes, 0);
}

/**
 * Incremental CRC-32C, so a needle over 1 MiB can be checked while it streams
 * instead of being buffered whole. `digest()` does not reset the state: more
 * `update()` calls continue the same checksum.
 */
export class Crc32cHasher {
  #crc = 0;

  update(bytes: Uint8Array): this {
    this.#crc = update(bytes, this.#crc);
    return this;
  }

  digest(): number {
    return this.#crc >>> 0;
  }
}

const LEGACY_CRC_OFFSET = 0xa282ead8;

/**
 * The form SeaweedFS servers before ~3.09 wrote (Go's `CRC.Value()`): the CRC
 * rotated by 15 bits plus a constant, modulo 2^32. Volumes written then still
 * carry it, so readers accept both forms; Kelp only ever writes the raw CRC.
 */
export function legacyCrcValue(crc: number): number {
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + LEGACY_CRC_OFFSET) >>> 0;
}

/** Whether a stored CRC is `crc` (the CRC-32C of the data) in either the current or the legacy form. */
export function crcFormMatches(stored: number, crc: number): boolean {
  const s = stored >>> 0;
  return s === crc >>> 0 || s === legacyCrcValue(crc);
}

/** Whether `stored` is a valid CRC of `data` in either form. */
export function crcMatches(stored: number, data: Uint8Array): boolean {
  return crcFormMatches(stored, crc32c(data));
}
