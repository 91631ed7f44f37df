/** CORS_ALLOW_ORIGINS: parsing, the headers a read's answer gets, preflights (edge/cors.ts). */
import { describe, expect, it } from 'vitest';
import { parseCorsOrigins, preflight, withCors } from '../../../edge/cors.ts';

const LIST = parseCorsOrigins('https://app.example, https://*.cdn.example, http://localhost:*')!;
const ANY = parseCorsOrigins('*')!;

function read(origin?: string): Request {
  return new Request('https://edge.example/3,01637037d6', origin ? { headers: { origin } } : {});
}

function answered(headers: Record<string, string> = {}): Response {
  return new Response('blob', { headers: { etag: '"abc"', ...headers } });
}

describe('parseCorsOrigins', () => {
  it('is off when unset or empty, any origin for *, a pattern list otherwise', () => {
    expect(parseCorsOrigins(undefined)).toBeUndefined();
    expect(parseCorsOrigins('  ')).toBeUndefined();
    expect(ANY.any).toBe(true);
    expect(LIST.any).toBe(false);
    expect(LIST.patterns.map((p) => p.text)).toEqual([
      'https://app.example',
      'https://*.cdn.example',
      'http://localhost:*',
    ]);
  });

  it('names the variable and the entry that does not parse', () => {
    expect(() => parseCorsOrigins('https://app.example,app.example')).toThrow(
      /^CORS_ALLOW_ORIGINS entry "app.example" is not scheme:\/\/host\[:port\]/,
    );
    expect(() => parseCorsOrigins('https://app.example/path')).toThrow(/CORS_ALLOW_ORIGINS/);
  });
});

describe('withCors', () => {
  it('echoes an allowed origin, exposes the read headers, and varies on Origin', () => {
    for (const origin of ['https://app.example', 'https://img.cdn.example', 'http://localhost:5173']) {
      const h = withCors(answered(), read(origin), LIST).headers;
      expect(h.get('access-control-allow-origin')).toBe(origin);
      expect(h.get('access-control-expose-headers')).toContain('ETag');
      expect(h.get('access-control-expose-headers')).toContain('Content-Range');
      expect(h.get('vary')).toBe('Origin');
    }
  });

  it('gives another origin, a lookalike or no Origin nothing but Vary: Origin', () => {
    for (const origin of [
      'https://evil.example',
      'http://app.example',
      'https://app.example.evil.example',
      'https://cdn.example',
      'null',
      undefined,
    ]) {
      const h = withCors(answered(), read(origin), LIST).headers;
      expect(h.get('access-control-allow-origin')).toBeNull();
      expect(h.get('access-control-expose-headers')).toBeNull();
      expect(h.get('vary')).toBe('Origin');
    }
  });

  it('adds Origin to a Vary already there, once', () => {
    const h = withCors(answered({ vary: 'Accept' }), read('https://app.example'), LIST).headers;
    expect(h.get('vary')).toBe('Accept, Origin');
    const again = withCors(answered({ vary: 'accept, origin' }), read('https://app.example'), LIST).headers;
    expect(again.get('vary')).toBe('accept, origin');
  });

  it('answers * to everyone, with no Vary, under CORS_ALLOW_ORIGINS=*', () => {
    for (const origin of ['https://anything.example', undefined]) {
      const h = withCors(answered(), read(origin), ANY).headers;
      expect(h.get('access-control-allow-origin')).toBe('*');
      expect(h.get('vary')).toBeNull();
    }
  });
});

describe('preflight', () => {
  const ask = (origin: string, method: string) =>
    preflight(
      new Request('https://edge.example/3,01637037d6', {
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': method,
          'access-control-request-headers': 'range, if-none-match',
        },
      }),
      LIST,
    );

  it('lets an allowed origin read with Range and conditionals, for a day', () => {
    const res = ask('https://app.example', 'GET');
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(res.headers.get('access-control-allow-methods')).toBe('GET, HEAD');
    expect(res.headers.get('access-control-allow-headers')).toMatch(/Range.*If-None-Match/);
    expect(res.headers.get('access-control-max-age')).toBe('86400');
    expect(res.headers.get('vary')).toBe('Origin');
  });

  it('permits nothing to another origin, or to a write', () => {
    for (const res of [ask('https://evil.example', 'GET'), ask('https://app.example', 'POST')]) {
      expect(res.status).toBe(204);
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
      expect(res.headers.get('access-control-allow-methods')).toBeNull();
    }
  });
});
