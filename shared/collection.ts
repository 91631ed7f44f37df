/**
 * Collection names. A collection becomes part of a file name on disk
 * (`<collection>_<vid>.dat`), of a tier object key and of URLs, so only a
 * safe set is accepted everywhere one comes in: no separators, no dots, no
 * NUL, bounded length. "" is the default collection.
 */
import { InvalidParamError } from './errors.ts';

export const MAX_COLLECTION_LENGTH = 64;
export const COLLECTION_PATTERN = /^[A-Za-z0-9_-]{0,64}$/;

/** The name as given, or InvalidParamError (400) saying what is allowed. */
export function parseCollection(raw: string | null | undefined): string {
  const name = raw ?? '';
  if (!COLLECTION_PATTERN.test(name)) {
    throw new InvalidParamError(
      `collection must be 0-${MAX_COLLECTION_LENGTH} letters, digits, "_" or "-" (got ${JSON.stringify(name.slice(0, MAX_COLLECTION_LENGTH + 1))})`,
    );
  }
  return name;
}
