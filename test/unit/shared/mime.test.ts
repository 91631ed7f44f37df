import { describe, expect, it } from 'vitest';
import { essence, isCompressible, isInlineSafe, mimeFromExtension } from '../../../shared/mime.ts';

describe('mimeFromExtension', () => {
  it('maps common web extensions, with or without a dot, in any case', () => {
    expect(mimeFromExtension('jpg')).toBe('image/jpeg');
    expect(mimeFromExtension('.JPEG')).toBe('image/jpeg');
    expect(mimeFromExtension('photo.WebP')).toBe('image/webp');
    expect(mimeFromExtension('archive.tar.gz')).toBe('application/gzip');
    expect(mimeFromExtension('a.svg')).toBe('image/svg+xml');
  });

  it('knows nothing of unknown or inherited names', () => {
    expect(mimeFromExtension('xyz')).toBeUndefined();
    expect(mimeFromExtension('')).toBeUndefined();
    expect(mimeFromExtension('constructor')).toBeUndefined();
    expect(mimeFromExtension('__proto__')).toBeUndefined();
  });
});

describe('isInlineSafe', () => {
  it('allows passive media, plain text, JSON and PDF', () => {
    for (const t of [
      'image/png',
      'image/jpeg',
      'image/avif',
      'video/mp4',
      'audio/mpeg',
      'text/plain',
      'application/json',
      'application/pdf',
    ]) {
      expect(isInlineSafe(t), t).toBe(true);
    }
    expect(isInlineSafe('Text/Plain; charset=utf-8')).toBe(true);
  });

  it('sends active content as an attachment: HTML, SVG, XML, JavaScript and the unknown', () => {
    for (const t of [
      'text/html',
      'image/svg+xml',
      'application/xml',
      'text/xml',
      'application/xhtml+xml',
      'text/javascript',
      'application/javascript',
      'application/octet-stream',
      'application/x-shockwave-flash',
      '',
    ]) {
      expect(isInlineSafe(t), t).toBe(false);
    }
  });

  it('lets the operator trust more types', () => {
    expect(isInlineSafe('text/html; charset=utf-8', new Set(['text/html']))).toBe(true);
  });
});

describe('isCompressible', () => {
  it('is true for text and structured text', () => {
    for (const t of [
      'text/plain',
      'text/css',
      'application/json',
      'application/ld+json',
      'image/svg+xml',
      'application/javascript',
      'application/wasm',
    ]) {
      expect(isCompressible(t), t).toBe(true);
    }
  });

  it('is false for media that is already compressed', () => {
    for (const t of [
      'image/jpeg',
      'image/png',
      'video/mp4',
      'font/woff2',
      'application/zip',
      'application/gzip',
    ]) {
      expect(isCompressible(t), t).toBe(false);
    }
  });
});

describe('essence', () => {
  it('strips parameters and lowercases', () => {
    expect(essence(' Image/PNG ; q=1')).toBe('image/png');
  });
});
