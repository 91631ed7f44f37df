/** ORIGIN_ALLOW patterns (edge/allow.ts): scheme, host glob and port must all match. */
import { describe, expect, it } from 'vitest';
import { assertAllowedOrigin, isAllowedOrigin, parseOriginAllow } from '../../../edge/allow.ts';
import { InternalError, UpstreamError } from '../../../shared/errors.ts';

describe('ORIGIN_ALLOW', () => {
  const patterns = parseOriginAllow(
    'http://127.0.0.1:*, https://*.kelp.example, http://vol.kelp.example:8080',
  );

  it('allows what a pattern names: scheme, host glob, port (or any port, or the default one)', () => {
    for (const ok of [
      'http://127.0.0.1:8080',
      'http://127.0.0.1',
      'https://v1.kelp.example',
      'https://v1.kelp.example:443',
      'https://a.b.kelp.example/',
      'http://vol.kelp.example:8080',
      'HTTP://VOL.KELP.EXAMPLE:8080',
    ]) {
      expect(isAllowedOrigin(patterns, ok), ok).toBe(true);
    }
  });

  it('refuses other schemes, hosts, ports, and anything with credentials or a path', () => {
    for (const bad of [
      'https://127.0.0.1:8080',
      'http://127.0.0.2:8080',
      'http://localhost:8080',
      'http://v1.kelp.example',
      'https://kelp.example',
      'https://v1.kelp.example:8443',
      'https://evil.example/?.kelp.example',
      'https://v1.kelp.example.evil.example',
      'http://vol.kelp.example:8081',
      'http://vol.kelp.example',
      'http://user:pw@127.0.0.1:8080',
      'http://127.0.0.1:8080/admin',
      'http://169.254.169.254',
      'not a url',
    ]) {
      expect(isAllowedOrigin(patterns, bad), bad).toBe(false);
    }
  });

  it('names a malformed entry, and refuses to fetch at all when unset', () => {
    expect(() => parseOriginAllow('127.0.0.1:8080')).toThrow(/ORIGIN_ALLOW entry "127.0.0.1:8080"/);
    expect(() => parseOriginAllow('ftp://x')).toThrow(InternalError);
    expect(() => assertAllowedOrigin(undefined, 'http://127.0.0.1:1', 3)).toThrow(/ORIGIN_ALLOW is not set/);
    expect(() => assertAllowedOrigin(patterns, 'http://10.0.0.1:80', 3)).toThrow(UpstreamError);
    expect(() => assertAllowedOrigin(patterns, 'http://10.0.0.1:80', 3)).toThrow(
      /volume 3 named http:\/\/10.0.0.1:80/,
    );
  });
});
