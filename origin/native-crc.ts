/**
 * The Node origin's CRC-32C: `@node-rs/crc32` (Rust, SSE4.2 `crc32` instructions)
 * installed into shared/crc.ts once at process start, so every needle encode,
 * decode and streamed check in this process uses it. shared/ stays Web-API only
 * (it also runs in workerd), so the native package is imported here and nowhere
 * in shared/. Measured in docs/decisions/0002-crc32c.md and bench/crc.ts.
 */
import { crc32c as nativeCrc32c } from '@node-rs/crc32';
import { type Crc32cUpdate, installCrc32cUpdate, jsCrc32cUpdate } from '../shared/crc.ts';

/**
 * Below this many bytes the N-API call costs more than the pure-JS loop saves
 * (crossover measured between 256 B and 1 KiB, decision 0002), so short inputs,
 * e.g. tier-index headers and small needles, stay in JS.
 */
export const NATIVE_CRC_MIN_BYTES = 512;

/** The native step alone; same seed chaining as `jsCrc32cUpdate` (unsigned in, unsigned out). */
export const nativeCrc32cUpdate: Crc32cUpdate = (bytes, seed) => nativeCrc32c(bytes, seed);

/** The step the origin installs: native from `NATIVE_CRC_MIN_BYTES` up, JS below. */
export const originCrc32cUpdate: Crc32cUpdate = (bytes, seed) =>
  bytes.byteLength < NATIVE_CRC_MIN_BYTES ? jsCrc32cUpdate(bytes, seed) : nativeCrc32c(bytes, seed);

/**
 * Makes shared/crc.ts use the native CRC in this process. Called by each origin
 * entry point (volume, master and tier servers, the CLI); idempotent, and only
 * speed changes: values are identical (test/unit/origin/native-crc.test.ts).
 */
export function installNativeCrc32c(): void {
  installCrc32cUpdate(originCrc32cUpdate);
}
