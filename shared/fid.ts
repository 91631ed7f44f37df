/**
 * File ids (docs/format.md §1): "<vid>,<key hex><cookie hex>" such as "3,01637037d6", an
 * optional "_N" delta suffix (key + N, same cookie) for ids reserved by one
 * assign with count > 1, and the three public URL forms.
 */
import { InvalidFidError, TruncatedDataError } from './errors.ts';

export type Fid = {
  readonly volumeId: number;
  /** u64 needle id; always >= 1 (the sequencer starts at 1). */
  readonly key: bigint;
  readonly cookie: number;
};

/** A parsed fid: `key` already includes the suffix's delta; `delta` is 0n without one. */
export type ParsedFid = Fid & { readonly delta: bigint };

export type FileKey = { readonly key: bigint; readonly cookie: number; readonly delta: bigint };

/** `ext` comes without its dot and keeps its case; `name` only in the /vid/key/name form. */
export type FidPath = { readonly fid: ParsedFid; readonly ext?: string; readonly name?: string };

export const MAX_KEY = 0xffff_ffff_ffff_ffffn;
const MAX_U32 = 0xffff_ffff;

/** A needle stores at most 255 bytes of name; a longer URL name could not be one. */
export const MAX_NAME_BYTES = 255;

export const FID_BINARY_SIZE = 16;

// A volume id is 1-10 decimal digits (at most 2^32 - 1).
// 9-24 hex chars: the last 8 are the cookie, the rest (1-16, odd length allowed) the key.
// Both are checked by hand, not with regexes: they run on every request.
// The extension only picks a MIME type and resize format, so a short alphanumeric one is all
// that is ever needed; refusing the rest keeps odd bytes out of cache keys and headers.
const EXT_PATTERN = /^[A-Za-z0-9]{1,16}$/;

export function parseVolumeId(s: string): number {
  let n = s.length >= 1 && s.length <= 10 ? 0 : -1;
  for (let i = 0; i < s.length && n >= 0; i++) {
    const d = s.charCodeAt(i) - 48;
    n = d >= 0 && d <= 9 ? n * 10 + d : -1;
  }
  if (n < 0 || n > MAX_U32) throw new InvalidFidError(`volume id ${quote(s)} is not a decimal u32`);
  return n;
}

/** The value of hex digit `c` (a char code), or -1. */
function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const lower = c | 0x20;
  return lower >= 97 && lower <= 102 ? lower - 87 : -1;
}

/** Whether s[from, to) is all decimal digits. */
function allDecimal(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** The part after the comma: "01637037d6", "01637037d6_2". Uppercase hex is accepted, as SeaweedFS does. */
export function parseFileKey(s: string): FileKey {
  // 1-16 hex digits of key, 8 of cookie, then optionally "_" and 1-20 decimal digits.
  const underscore = s.indexOf('_');
  const hexEnd = underscore < 0 ? s.length : underscore;
  const keyDigits = hexEnd - 8;
  let valid =
    keyDigits >= 1 &&
    keyDigits <= 16 &&
    (underscore < 0 || (s.length - underscore - 1 >= 1 && s.length - underscore - 1 <= 20));
  // The key's value while it fits a double exactly (13 hex digits = 52 bits), then the cookie's.
  let small = 0;
  let cookie = 0;
  for (let i = 0; valid && i < hexEnd; i++) {
    const d = hexDigit(s.charCodeAt(i));
    if (d < 0) valid = false;
    else if (i < keyDigits) small = small * 16 + d;
    else cookie = cookie * 16 + d;
  }
  if (!valid || (underscore >= 0 && !allDecimal(s, underscore + 1, s.length))) {
    throw new InvalidFidError(`file key ${quote(s)} is not 9-24 hex digits with an optional _N`);
  }
  // Key 0 is never assigned, and formats to a bare cookie that does not parse back.
  const base = keyDigits <= 13 ? BigInt(small) : BigInt(`0x${s.slice(0, keyDigits)}`);
  if (base === 0n) throw new InvalidFidError(`file key ${quote(s)} has key 0`);
  // Without a delta the key is at most 16 hex digits, so within u64: no BigInt sum or compare (every read).
  if (underscore < 0) return { key: base, cookie, delta: 0n };
  const delta = BigInt(s.slice(underscore + 1));
  const key = base + delta;
  if (key > MAX_KEY) throw new InvalidFidError(`file key ${quote(s)}: key plus delta overflows u64`);
  return { key, cookie, delta };
}

/** "3,01637037d6" or "3,01637037d6_2" -> { volumeId, key (delta included), cookie, delta }. */
export function parseFid(s: string): ParsedFid {
  const comma = s.indexOf(',');
  if (comma < 0) throw new InvalidFidError(`file id ${quote(s)} has no comma`);
  return withVolumeId(parseVolumeId(s.slice(0, comma)), parseFileKey(s.slice(comma + 1)));
}

/** `{ volumeId, ...fileKey }` without the spread (a slow runtime call on the request path). */
function withVolumeId(volumeId: number, k: FileKey): ParsedFid {
  return { volumeId, key: k.key, cookie: k.cookie, delta: k.delta };
}

/** Key (8 bytes) then cookie (4 bytes) in lowercase hex, leading zero bytes of the key dropped. */
export function formatFileKey(key: bigint, cookie: number): string {
  checkKeyCookie(key, cookie);
  const keyHex = key.toString(16);
  return (keyHex.length % 2 === 1 ? '0' : '') + keyHex + cookie.toString(16).padStart(8, '0');
}

export function formatFid(fid: Fid): string {
  checkVolumeId(fid.volumeId);
  return `${fid.volumeId},${formatFileKey(fid.key, fid.cookie)}`;
}

/**
 * The public URL forms (docs/format.md §1), chosen by the number of segments:
 * "/3,01637037d6[.ext]", "/3/01637037d6[.ext]" and "/3/01637037d6/name.ext".
 * `pathname` is a URL's pathname, still percent-encoded; only the name is decoded.
 */
export function parseFidPath(pathname: string): FidPath {
  if (!pathname.startsWith('/')) throw new InvalidFidError(`path ${quote(pathname)} does not start with /`);
  // The form every hot read uses, "/vid,key[.ext]", is parsed without splitting the path.
  if (pathname.length > 1 && pathname.indexOf('/', 1) < 0) {
    const comma = pathname.indexOf(',');
    if (comma < 0) throw new InvalidFidError(`path ${quote(pathname)} has no file key`);
    return fidWithExt(pathname.slice(1, comma), pathname.slice(comma + 1));
  }
  const segments = pathname.slice(1).split('/');
  if (segments.length > 3 || segments.includes('')) {
    throw new InvalidFidError(
      `path ${quote(pathname)} is not /vid,key[.ext], /vid/key[.ext] or /vid/key/name`,
    );
  }
  if (segments.length === 3) {
    const name = decodeName(segments[2]!);
    const fid = withVolumeId(parseVolumeId(segments[0]!), parseFileKey(segments[1]!));
    const dot = name.lastIndexOf('.');
    // Like path.extname: a leading dot (".bashrc") or a trailing one gives no extension.
    return dot > 0 && dot < name.length - 1 ? { fid, ext: name.slice(dot + 1), name } : { fid, name };
  }
  // Two segments ("/vid/key[.ext]"): one segment took the fast path above.
  return fidWithExt(segments[0]!, segments[1]!);
}

/** The fid of volume `vid` and file key `rest`, which may end in `.ext`. */
function fidWithExt(vid: string, rest: string): FidPath {
  // A file key has no dot, so a second dot ("key.tar.gz") fails the key, as it does in SeaweedFS.
  const dot = rest.lastIndexOf('.');
  const fid = withVolumeId(parseVolumeId(vid), parseFileKey(dot < 0 ? rest : rest.slice(0, dot)));
  if (dot < 0) return { fid };
  const ext = rest.slice(dot + 1);
  if (!EXT_PATTERN.test(ext))
    throw new InvalidFidError(`extension ${quote(ext)} is not 1-16 letters or digits`);
  return { fid, ext };
}

/**
 * Binary form, 16 bytes big-endian: key (8), cookie (4), volume id (4). Key and cookie
 * come first in the order of the text form after the comma.
 */
export function encodeFidBinary(fid: Fid): Uint8Array<ArrayBuffer> {
  checkVolumeId(fid.volumeId);
  checkKeyCookie(fid.key, fid.cookie);
  const out = new Uint8Array(FID_BINARY_SIZE);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, fid.key);
  view.setUint32(8, fid.cookie);
  view.setUint32(12, fid.volumeId);
  return out;
}

export function decodeFidBinary(bytes: Uint8Array, offset = 0): Fid {
  if (!(Number.isInteger(offset) && offset >= 0 && offset + FID_BINARY_SIZE <= bytes.length)) {
    throw new TruncatedDataError(
      `binary fid at offset ${offset} needs ${FID_BINARY_SIZE} bytes, input has ${bytes.length}`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, FID_BINARY_SIZE);
  const key = view.getBigUint64(0);
  if (key === 0n) throw new InvalidFidError('binary fid has key 0');
  return { volumeId: view.getUint32(12), key, cookie: view.getUint32(8) };
}

function decodeName(raw: string): string {
  let name: string;
  try {
    name = decodeURIComponent(raw);
  } catch {
    throw new InvalidFidError(`file name ${quote(raw)} is not valid percent-encoding`);
  }
  // The name becomes a download filename and part of a Content-Disposition header.
  if (name === '.' || name === '..' || /[/\\]/.test(name) || hasControlChar(name)) {
    throw new InvalidFidError(`file name ${quote(name)} is not a plain file name`);
  }
  if (new TextEncoder().encode(name).length > MAX_NAME_BYTES) {
    throw new InvalidFidError(`file name is longer than ${MAX_NAME_BYTES} bytes`);
  }
  return name;
}

function hasControlChar(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

function checkVolumeId(volumeId: number): void {
  if (!(Number.isInteger(volumeId) && volumeId >= 0 && volumeId <= MAX_U32)) {
    throw new InvalidFidError(`volume id ${volumeId} is not a u32`);
  }
}

function checkKeyCookie(key: bigint, cookie: number): void {
  if (!(typeof key === 'bigint' && key >= 1n && key <= MAX_KEY)) {
    throw new InvalidFidError(`key ${key} is not 1..2^64-1`);
  }
  if (!(Number.isInteger(cookie) && cookie >= 0 && cookie <= MAX_U32)) {
    throw new InvalidFidError(`cookie ${cookie} is not a u32`);
  }
}

function quote(s: string): string {
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}...` : s);
}
