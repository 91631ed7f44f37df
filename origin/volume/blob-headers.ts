/**
 * The read configuration of a volume server, and the blob response headers
 * it answers with. The headers themselves are built in shared/blob-headers.ts
 * (the edge serves origin-free reads with the very same headers); plain reads
 * (read-handler.ts) and image variants (resize-read.ts) take them from here,
 * so neither imports the other.
 */
import type { ResizeLimits } from '../../shared/resize.ts';
import type { Resizer } from './resize.ts';

export { blobHeaders, contentDisposition, etagOf } from '../../shared/blob-headers.ts';

export interface ReadConfig {
  /** Extra mime types served inline (e.g. text/html on a domain of its own). */
  alsoInline?: ReadonlySet<string>;
  /** Makes image variants; without one, resize params are refused (400). */
  resizer?: Resizer;
  /** Bounds and named presets of resize requests. */
  resizeLimits?: ResizeLimits;
  /** With a key, free resize params need `sig` (HMAC over path + canonical params); presets do not. */
  resizeSigningKey?: string;
}
