import { describe, expect, it } from 'vitest';
import {
  effectiveRange,
  httpDate,
  ifNoneMatchMatches,
  isNotModified,
  parseHttpDate,
  preconditionOf,
} from '../../../shared/conditional.ts';

const ETAG = '"3b4c5d6e"';
const LM = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT

describe('If-None-Match', () => {
  it('matches the exact quoted ETag', () => {
    expect(isNotModified({ 'if-none-match': ETAG }, { etag: ETAG })).toBe(true);
    expect(isNotModified({ 'if-none-match': '"other"' }, { etag: ETAG })).toBe(false);
  });

  it('matches any member of a list, with or without spaces', () => {
    expect(ifNoneMatchMatches(`"a", "b",${ETAG}`, ETAG)).toBe(true);
    expect(ifNoneMatchMatches('"a","b"', ETAG)).toBe(false);
    expect(ifNoneMatchMatches(` , "a" ,,${ETAG} `, ETAG)).toBe(true);
  });

  it('compares weakly: W/ on either side still matches (RFC 9110 §13.1.2)', () => {
    expect(ifNoneMatchMatches(`W/${ETAG}`, ETAG)).toBe(true);
    expect(ifNoneMatchMatches(ETAG, `W/${ETAG}`)).toBe(true);
    expect(ifNoneMatchMatches(`"x", W/${ETAG}`, ETAG)).toBe(true);
  });

  it('treats * as matching any existing representation', () => {
    expect(isNotModified({ 'if-none-match': '*' }, { etag: ETAG })).toBe(true);
    expect(isNotModified({ 'if-none-match': ' * ' }, {})).toBe(true);
  });

  it('never matches an unquoted or truncated tag, and stops at a malformed member', () => {
    expect(ifNoneMatchMatches('3b4c5d6e', ETAG)).toBe(false);
    expect(ifNoneMatchMatches('"3b4c5d6e', ETAG)).toBe(false);
    expect(ifNoneMatchMatches(`bogus, ${ETAG}`, ETAG)).toBe(false);
    expect(ifNoneMatchMatches(`"a", *`, ETAG)).toBe(false);
    expect(ifNoneMatchMatches('', ETAG)).toBe(false);
    expect(isNotModified({ 'if-none-match': '"a"' }, {})).toBe(false);
  });

  it('takes precedence over If-Modified-Since', () => {
    const since = httpDate(LM + 10);
    expect(
      isNotModified(
        { 'if-none-match': '"other"', 'if-modified-since': since },
        { etag: ETAG, lastModified: LM },
      ),
    ).toBe(false);
    expect(
      isNotModified(
        { 'if-none-match': ETAG, 'if-modified-since': httpDate(0) },
        { etag: ETAG, lastModified: LM },
      ),
    ).toBe(true);
  });
});

describe('If-Modified-Since', () => {
  it('is not modified when the date is at or after Last-Modified, to the second', () => {
    expect(isNotModified({ 'if-modified-since': httpDate(LM) }, { lastModified: LM })).toBe(true);
    expect(isNotModified({ 'if-modified-since': httpDate(LM + 1) }, { lastModified: LM })).toBe(true);
    expect(isNotModified({ 'if-modified-since': httpDate(LM - 1) }, { lastModified: LM })).toBe(false);
    expect(isNotModified({ 'if-modified-since': httpDate(LM) }, { lastModified: LM + 0.9 })).toBe(true);
  });

  it('is ignored when the date is invalid or Last-Modified unknown', () => {
    expect(isNotModified({ 'if-modified-since': 'yesterday' }, { lastModified: LM })).toBe(false);
    expect(isNotModified({ 'if-modified-since': httpDate(LM) }, {})).toBe(false);
    expect(isNotModified({}, { etag: ETAG, lastModified: LM })).toBe(false);
  });
});

describe('HTTP dates', () => {
  it('formats IMF-fixdate', () => {
    expect(httpDate(LM)).toBe('Sun, 06 Nov 1994 08:49:37 GMT');
    expect(httpDate(LM + 0.7)).toBe('Sun, 06 Nov 1994 08:49:37 GMT');
  });

  it('parses the three forms recipients must accept, as UTC whatever the local zone', () => {
    expect(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT')).toBe(LM);
    expect(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT')).toBe(LM);
    expect(parseHttpDate('Sun Nov  6 08:49:37 1994')).toBe(LM);
    expect(parseHttpDate(' Sun, 06 Nov 1994 08:49:37 GMT ')).toBe(LM);
  });

  it('rejects anything else', () => {
    for (const s of [
      '',
      '1994-11-06T08:49:37Z',
      'Sun, 06 Nov 1994 08:49:37 PST',
      'Sun, 6 Nov 1994 08:49:37 GMT',
      'Sun, 06 Foo 1994 08:49:37 GMT',
      'Sun, 06 Nov 1994 25:49:37 GMT',
      '784111777',
    ]) {
      expect(parseHttpDate(s), s).toBeNull();
    }
  });

  it('reads two-digit years more than 50 years ahead as the past century', () => {
    const year = new Date().getUTCFullYear();
    const ahead = (year + 60) % 100;
    const parsed = parseHttpDate(`Monday, 01-Jan-${String(ahead).padStart(2, '0')} 00:00:00 GMT`)!;
    expect(new Date(parsed * 1000).getUTCFullYear()).toBe(year + 60 - 100);
  });
});

describe('If-Match (strong comparison, 412 first)', () => {
  const v = { etag: '"abc"', lastModified: 1_700_000_000 };
  it('holds for *, our tag, or a list naming it; fails for others and for weak tags', () => {
    for (const im of ['*', '"abc"', '"x", "abc"', ' "abc" '])
      expect(preconditionOf({ 'if-match': im }, v), im).toBe('ok');
    for (const im of ['"x"', 'W/"abc"', 'abc', '"x", W/"abc"', '']) {
      expect(preconditionOf({ 'if-match': im }, v), im).toBe('failed');
    }
    expect(preconditionOf({ 'if-match': '"abc"' }, { etag: 'W/"abc"' })).toBe('failed');
  });

  it('is decided before If-None-Match, which still gives 304 when If-Match holds', () => {
    expect(preconditionOf({ 'if-match': '"x"', 'if-none-match': '"abc"' }, v)).toBe('failed');
    expect(preconditionOf({ 'if-match': '"abc"', 'if-none-match': '"abc"' }, v)).toBe('not-modified');
    expect(preconditionOf({}, v)).toBe('ok');
  });
});

describe('If-Range', () => {
  const v = { etag: '"abc"', lastModified: 1_700_000_000 };
  const date = httpDate(1_700_000_000);
  it('keeps the Range when it names this version: strong tag, or exactly Last-Modified', () => {
    for (const ifRange of ['"abc"', date]) {
      expect(effectiveRange({ range: 'bytes=0-9', 'if-range': ifRange }, v), ifRange).toBe('bytes=0-9');
    }
  });

  it('drops it for another version, a weak tag, an earlier or later date, or garbage', () => {
    for (const ifRange of ['"old"', 'W/"abc"', httpDate(1_699_999_999), httpDate(1_700_000_001), 'soon']) {
      expect(effectiveRange({ range: 'bytes=0-9', 'if-range': ifRange }, v), ifRange).toBeUndefined();
    }
  });

  it('changes nothing without an If-Range, or without a Range to qualify', () => {
    expect(effectiveRange({ range: 'bytes=0-9' }, v)).toBe('bytes=0-9');
    expect(effectiveRange({ 'if-range': '"old"' }, v)).toBeUndefined();
  });
});
