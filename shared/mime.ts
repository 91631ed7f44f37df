/**
 * Content types for served blobs: from a file extension, whether a browser
 * may render them inline, and whether they are worth gzipping.
 *
 * A compact table rather than a package: no MIME package is installed, and a
 * blob store needs the few dozen types of the web, not all of mime-db.
 */

const TYPES: Record<string, string> = {
  // images
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  png: 'image/png',
  gif: 'image/gif',
  webp: 'image/webp',
  avif: 'image/avif',
  apng: 'image/apng',
  bmp: 'image/bmp',
  ico: 'image/x-icon',
  tif: 'image/tiff',
  tiff: 'image/tiff',
  heic: 'image/heic',
  heif: 'image/heif',
  svg: 'image/svg+xml',
  // audio and video
  mp3: 'audio/mpeg',
  m4a: 'audio/mp4',
  aac: 'audio/aac',
  wav: 'audio/wav',
  oga: 'audio/ogg',
  ogg: 'audio/ogg',
  opus: 'audio/opus',
  flac: 'audio/flac',
  weba: 'audio/webm',
  mp4: 'video/mp4',
  m4v: 'video/mp4',
  webm: 'video/webm',
  ogv: 'video/ogg',
  mov: 'video/quicktime',
  mkv: 'video/x-matroska',
  avi: 'video/x-msvideo',
  m3u8: 'application/vnd.apple.mpegurl',
  ts: 'video/mp2t',
  // text and documents
  txt: 'text/plain',
  text: 'text/plain',
  log: 'text/plain',
  md: 'text/markdown',
  csv: 'text/csv',
  tsv: 'text/tab-separated-values',
  html: 'text/html',
  htm: 'text/html',
  css: 'text/css',
  js: 'text/javascript',
  mjs: 'text/javascript',
  json: 'application/json',
  map: 'application/json',
  webmanifest: 'application/manifest+json',
  xml: 'application/xml',
  rss: 'application/rss+xml',
  atom: 'application/atom+xml',
  xhtml: 'application/xhtml+xml',
  pdf: 'application/pdf',
  wasm: 'application/wasm',
  // fonts
  woff: 'font/woff',
  woff2: 'font/woff2',
  ttf: 'font/ttf',
  otf: 'font/otf',
  // archives and binaries
  zip: 'application/zip',
  gz: 'application/gzip',
  tgz: 'application/gzip',
  tar: 'application/x-tar',
  bz2: 'application/x-bzip2',
  xz: 'application/x-xz',
  zst: 'application/zstd',
  '7z': 'application/x-7z-compressed',
  bin: 'application/octet-stream',
};

/** The default for bytes of unknown type. */
export const OCTET_STREAM = 'application/octet-stream';

/**
 * Content type for an extension (`jpg`, `.JPG`) or a file name (`a.tar.gz` ->
 * the last extension), or undefined when unknown.
 */
export function mimeFromExtension(extOrName: string): string | undefined {
  const dot = extOrName.lastIndexOf('.');
  const ext = (dot >= 0 ? extOrName.slice(dot + 1) : extOrName).toLowerCase();
  return Object.hasOwn(TYPES, ext) ? TYPES[ext] : undefined;
}

/** `Text/HTML; charset=utf-8` -> `text/html`. */
export function essence(mime: string): string {
  const semi = mime.indexOf(';');
  return (semi >= 0 ? mime.slice(0, semi) : mime).trim().toLowerCase();
}

/**
 * Types a browser may render inline from a public URL. Everything else goes
 * out as `Content-Disposition: attachment`, so a Kelp URL never becomes an
 * XSS host: HTML, SVG, XML and JavaScript run in our origin if rendered.
 * Adapted from tus-node-server's GetHandler allowlist, plus the passive media
 * and data types a blob CDN serves (AVIF, modern audio/video, JSON, PDF; PDF
 * viewers are sandboxed in current browsers, a deliberate trade-off).
 * Serve with `X-Content-Type-Options: nosniff` so browsers keep to the type.
 */
export const INLINE_TYPES: ReadonlySet<string> = new Set([
  'text/plain',
  'text/csv',
  'image/jpeg',
  'image/png',
  'image/gif',
  'image/webp',
  'image/avif',
  'image/apng',
  'image/bmp',
  'image/x-icon',
  'image/vnd.microsoft.icon',
  'image/tiff',
  'image/heic',
  'image/heif',
  'audio/mpeg',
  'audio/mp4',
  'audio/aac',
  'audio/wav',
  'audio/wave',
  'audio/x-wav',
  'audio/x-pn-wav',
  'audio/ogg',
  'audio/opus',
  'audio/flac',
  'audio/webm',
  'video/mp4',
  'video/webm',
  'video/ogg',
  'video/quicktime',
  'application/ogg',
  'application/json',
  'application/pdf',
]);

/**
 * Whether `mime` (parameters allowed) may be served inline. `alsoInline` is
 * the operator's override: extra types a deployment decides to trust (e.g.
 * `text/html` on a domain of its own).
 */
export function isInlineSafe(mime: string, alsoInline?: ReadonlySet<string>): boolean {
  const t = essence(mime);
  return INLINE_TYPES.has(t) || (alsoInline?.has(t) ?? false);
}

const COMPRESSIBLE = new Set([
  'application/json',
  'application/javascript',
  'application/x-javascript',
  'application/ecmascript',
  'application/xml',
  'application/wasm',
  'application/x-ndjson',
  'application/graphql',
  'application/vnd.apple.mpegurl',
  'application/x-tar',
  'font/ttf',
  'font/otf',
  'image/bmp',
  'image/x-icon',
  'image/vnd.microsoft.icon',
]);

/**
 * Whether bytes of this type usually shrink under gzip (the upload path's
 * auto-gzip, docs/format.md §8). Already-compressed media (JPEG, PNG, MP4, WOFF2, zip)
 * does not, and gzipping it only costs CPU.
 */
export function isCompressible(mime: string): boolean {
  const t = essence(mime);
  return t.startsWith('text/') || t.endsWith('+json') || t.endsWith('+xml') || COMPRESSIBLE.has(t);
}
