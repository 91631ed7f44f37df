/**
 * Conditional GET/HEAD (RFC 9110 §13): whether a 304 or a 412 answers the
 * request, and whether its Range still applies (If-Range). Kelp's
 * ETag is the quoted CRC of the stored bytes (docs/format.md §8), Last-Modified comes
 * from the needle in whole seconds.
 */

/** What the representation offers to compare against. */
export interface Validators {
  /** The ETag exactly as sent in the response, e.g. `"3b4c5d6e"` or `W/"x"`. */
  etag?: string | undefined;
  /** Last-Modified in Unix seconds. */
  lastModified?: number | undefined;
}

/** The request headers read here; node's IncomingHttpHeaders fits. */
export interface ConditionalHeaders {
  'if-match'?: string | undefined;
  'if-none-match'?: string | undefined;
  'if-modified-since'?: string | undefined;
  'if-range'?: string | undefined;
  range?: string | undefined;
}

/** How a GET or HEAD's preconditions come out: go on, 304 Not Modified, or 412 Precondition Failed. */
export type Precondition = 'ok' | 'not-modified' | 'failed';

/**
 * The preconditions of a GET or HEAD of a representation that exists, in the
 * order of RFC 9110 §13.2.2: If-Match first (§13.1.1: `*` or one of its tags
 * equal to ours by the strong function, else 412), then isNotModified's 304.
 */
export function preconditionOf(headers: ConditionalHeaders, v: Validators): Precondition {
  const im = headers['if-match'];
  if (
    im !== undefined &&
    !(im.trim() === '*' || (v.etag !== undefined && entityTagListMatches(im, v.etag, true)))
  ) {
    return 'failed';
  }
  return isNotModified(headers, v) ? 'not-modified' : 'ok';
}

/**
 * True when a GET or HEAD should be answered 304 Not Modified. Call it only
 * for GET/HEAD of a representation that exists (RFC 9110 §13.2.2 evaluates
 * these preconditions only then).
 *
 * If-None-Match, when present, decides alone (§13.1.3: If-Modified-Since is
 * then ignored): `*` matches any existing representation; otherwise the list
 * is compared with the weak function (§8.8.3.2: `W/"a"` matches `"a"`), as
 * §13.1.2 requires for If-None-Match. A malformed member ends the list:
 * nothing after it is trusted, and a 200 is always a correct answer.
 */
export function isNotModified(headers: ConditionalHeaders, v: Validators): boolean {
  const inm = headers['if-none-match'];
  if (inm !== undefined) {
    return v.etag === undefined ? inm.trim() === '*' : ifNoneMatchMatches(inm, v.etag);
  }
  const ims = headers['if-modified-since'];
  if (ims === undefined || v.lastModified === undefined) return false;
  const since = parseHttpDate(ims);
  // An invalid date means the header is ignored (§13.1.3).
  return since !== null && Math.floor(v.lastModified) <= since;
}

/**
 * The Range header to honour: the request's, unless an If-Range says it was
 * meant for another representation (§13.1.5): then none, and the answer is
 * the whole body, so a resumed download never splices two versions. An
 * If-Range holds when its entity tag equals ours by the strong function (a
 * weak tag never does), or its date is exactly our Last-Modified.
 */
export function effectiveRange(headers: ConditionalHeaders, v: Validators): string | undefined {
  const ifRange = headers['if-range'];
  if (ifRange === undefined || headers.range === undefined) return headers.range;
  const value = ifRange.trim();
  let holds: boolean;
  if (value.startsWith('"') || value.startsWith('W/"')) {
    holds = v.etag !== undefined && entityTagListMatches(value, v.etag, true);
  } else {
    const date = parseHttpDate(value);
    holds = date !== null && v.lastModified !== undefined && Math.floor(v.lastModified) === date;
  }
  return holds ? headers.range : undefined;
}

/** Weak comparison of an If-None-Match field value against one ETag. */
export function ifNoneMatchMatches(fieldValue: string, etag: string): boolean {
  if (fieldValue.trim() === '*') return true;
  return entityTagListMatches(fieldValue, etag, false);
}

/**
 * Whether a list of entity tags names `etag`: by the weak function (`W/"a"`
 * matches `"a"`), or the strong one (neither side weak). A malformed member
 * ends the list.
 */
function entityTagListMatches(s: string, etag: string, strong: boolean): boolean {
  if (strong && etag.startsWith('W/')) return false;
  const ours = opaqueTag(etag);
  let i = 0;
  for (;;) {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t' || s[i] === ',')) i++;
    if (i >= s.length) return false;
    const weak = s.startsWith('W/', i);
    if (weak) i += 2;
    if (s[i] !== '"') return false;
    const close = s.indexOf('"', i + 1);
    if (close < 0) return false;
    if (!(strong && weak) && s.slice(i + 1, close) === ours) return true;
    i = close + 1;
  }
}

/** The opaque-tag of an entity-tag, without `W/` and quotes; tolerates an unquoted value of our own. */
function opaqueTag(etag: string): string {
  const t = etag.startsWith('W/') ? etag.slice(2) : etag;
  return t.length >= 2 && t.startsWith('"') && t.endsWith('"') ? t.slice(1, -1) : t;
}

const WEEKDAYS = ['Thu', 'Fri', 'Sat', 'Sun', 'Mon', 'Tue', 'Wed']; // 1970-01-01 was a Thursday
const MONTH_NAMES = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
/** 10000-01-01T00:00:00Z: from there on toUTCString() no longer writes a 4-digit year. */
const YEAR_10000 = 253402300800;
/**
 * Dates already written, by their second modulo this (a power of 2): random
 * reads of blobs written within the same few minutes, the common case on a
 * busy volume, find their Last-Modified here instead of formatting it again.
 */
const DATE_CACHE_SLOTS = 256;
const cachedSeconds = new Float64Array(DATE_CACHE_SLOTS).fill(-1);
const cachedDates: string[] = new Array<string>(DATE_CACHE_SLOTS).fill('');

const pad2 = (n: number): string => (n < 10 ? `0${n}` : `${n}`);

/**
 * IMF-fixdate (RFC 9110 §5.6.7) for Unix seconds: `Sun, 06 Nov 1994 08:49:37 GMT`,
 * exactly as `Date.prototype.toUTCString` writes it. Every read sends one, so
 * the civil date is computed by hand (H. Hinnant's days-to-civil), about five
 * times faster than through a Date, and recent answers are remembered.
 */
export function httpDate(seconds: number): string {
  const s = Math.floor(seconds);
  if (!(s >= 0 && s < YEAR_10000)) return new Date(s * 1000).toUTCString();
  // The low bits of s (ToInt32 keeps them for any s in range).
  const slot = s & (DATE_CACHE_SLOTS - 1);
  if (cachedSeconds[slot] === s) return cachedDates[slot]!;
  const days = Math.floor(s / 86400);
  const secs = s - days * 86400;
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  const hh = Math.floor(secs / 3600);
  const mm = Math.floor((secs - hh * 3600) / 60);
  const ss = secs - hh * 3600 - mm * 60;
  const yyyy = year < 1000 ? String(year).padStart(4, '0') : String(year);
  const date = `${WEEKDAYS[days % 7]}, ${pad2(day)} ${MONTH_NAMES[month - 1]} ${yyyy} ${pad2(hh)}:${pad2(mm)}:${pad2(ss)} GMT`;
  cachedSeconds[slot] = s;
  cachedDates[slot] = date;
  return date;
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const IMF = /^[A-Za-z]{3}, (\d{2}) ([A-Za-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const RFC850 = /^[A-Za-z]{6,9}, (\d{2})-([A-Za-z]{3})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const ASCTIME = /^[A-Za-z]{3} ([A-Za-z]{3}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/;

/**
 * Unix seconds of an HTTP-date in any of the three forms recipients must
 * accept (§5.6.7), or null. Hand-parsed because `Date.parse` reads the
 * zone-less asctime form in the server's local time zone.
 */
export function parseHttpDate(value: string): number | null {
  const s = value.trim();
  let m = IMF.exec(s);
  if (m) return utc(m[3]!, m[2]!, m[1]!, m[4]!, m[5]!, m[6]!);
  m = RFC850.exec(s);
  if (m) {
    // Two-digit years: a date more than 50 years ahead is in the past century (§5.6.7).
    const yy = Number(m[3]);
    const thisYear = new Date().getUTCFullYear();
    let year = Math.floor(thisYear / 100) * 100 + yy;
    if (year > thisYear + 50) year -= 100;
    return utc(String(year), m[2]!, m[1]!, m[4]!, m[5]!, m[6]!);
  }
  m = ASCTIME.exec(s);
  if (m) return utc(m[6]!, m[1]!, m[2]!.trim(), m[3]!, m[4]!, m[5]!);
  return null;
}

function utc(year: string, mon: string, day: string, h: string, min: string, sec: string): number | null {
  const month = MONTHS.indexOf(mon.toLowerCase());
  const d = Number(day);
  const hh = Number(h);
  const mm = Number(min);
  const ss = Number(sec);
  // Leap second 60 is allowed by the grammar; Date.UTC rolls it over.
  if (month < 0 || d < 1 || d > 31 || hh > 23 || mm > 59 || ss > 60) return null;
  return Date.UTC(Number(year), month, d, hh, mm, ss) / 1000;
}
