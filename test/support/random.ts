import { randomBytes } from 'node:crypto';

/** Random (incompressible) bytes, so no gzip or dedup path makes a test pass by accident. */
export function randomBlob(size: number): Buffer {
  return randomBytes(size);
}
