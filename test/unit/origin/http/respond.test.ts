import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sendError, sendJson } from '../../../../origin/http/respond.ts';
import { setRootLogger } from '../../../../origin/observability/log.ts';
import {
  NotFoundError,
  RangeNotSatisfiableError,
  TooManyRequestsError,
  UnavailableError,
} from '../../../../shared/errors.ts';
import { captureLogs } from '../../../helpers/log-capture.ts';
import { serve, type TestServer } from './serve.ts';

const bug = new Error('secret internals');

/** Each path throws a different value at sendError. */
const errors: Record<string, () => unknown> = {
  '/416': () => new RangeNotSatisfiableError('no', 1234),
  '/429': () => new TooManyRequestsError('slow down', 2),
  '/503': () => new UnavailableError('growing', 1.5),
  '/404': () => new NotFoundError('cookie mismatch for key 7'),
  '/bug': () => bug,
  '/string': () => 'thrown string',
};

let server: TestServer;
beforeAll(async () => {
  server = await serve((req, res) => {
    const url = req.url ?? '/';
    if (url === '/json') return sendJson(res, 201, { name: 'a.txt', size: 5 }, { ETag: '"abc"' });
    if (url === '/late') {
      // The response has started when the failure happens.
      res.writeHead(200, { 'Content-Length': '100' });
      res.write('partial');
      return sendError(res, new Error('disk went away'));
    }
    // Headers set before the failure describe a body that will never be sent.
    res.setHeader('ETag', '"stale"');
    res.setHeader('Content-Encoding', 'gzip');
    res.setHeader('Cache-Control', 'public, max-age=31536000, immutable');
    res.setHeader('Access-Control-Allow-Origin', '*');
    sendError(res, (errors[url] ?? (() => new Error(`no route ${url}`)))());
  });
});
afterAll(() => server.close());

// Unexpected errors go to the process logger: captured here.
const logged: string[] = [];
beforeAll(() => setRootLogger(captureLogs(logged).logger));
afterEach(() => {
  logged.length = 0;
});

describe('sendJson', () => {
  it('sends JSON with an exact Content-Length and extra headers', async () => {
    const res = await fetch(`${server.url}/json`);
    expect(res.status).toBe(201);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(res.headers.get('etag')).toBe('"abc"');
    const text = await res.text();
    expect(Number(res.headers.get('content-length'))).toBe(Buffer.byteLength(text));
    expect(JSON.parse(text)).toEqual({ name: 'a.txt', size: 5 });
  });

  it('sends no body to HEAD', async () => {
    const res = await fetch(`${server.url}/json`, { method: 'HEAD' });
    expect(res.status).toBe(201);
    expect(Number(res.headers.get('content-length'))).toBeGreaterThan(0);
    expect(await res.text()).toBe('');
  });
});

describe('sendError', () => {
  it('answers 416 with Content-Range: bytes */size', async () => {
    const res = await fetch(`${server.url}/416`);
    expect(res.status).toBe(416);
    expect(res.headers.get('content-range')).toBe('bytes */1234');
    expect(await res.json()).toEqual({ error: 'no', code: 'range_not_satisfiable' });
  });

  it('sends Retry-After when the error carries one, in whole seconds', async () => {
    const a = await fetch(`${server.url}/429`);
    expect([a.status, a.headers.get('retry-after')]).toEqual([429, '2']);
    const b = await fetch(`${server.url}/503`);
    expect([b.status, b.headers.get('retry-after')]).toEqual([503, '2']);
    expect(((await b.json()) as { code: string }).code).toBe('unavailable');
  });

  it('drops body and caching headers set before the failure, keeps the rest', async () => {
    const res = await fetch(`${server.url}/404`);
    expect(res.status).toBe(404);
    expect(res.headers.get('etag')).toBeNull();
    expect(res.headers.get('content-encoding')).toBeNull();
    expect(res.headers.get('cache-control')).toBeNull();
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    // A body-less request keeps its connection.
    expect(res.headers.get('connection')).toBe('keep-alive');
    // A 404 never says why (key, cookie or deletion).
    expect(await res.json()).toEqual({ error: 'not found', code: 'not_found' });
    expect(logged).toEqual([]);
  });

  it('answers an unknown error with a bare 500 and logs it once', async () => {
    for (const path of ['/bug', '/bug', '/string']) {
      const res = await fetch(`${server.url}${path}`);
      expect(res.status).toBe(500);
      expect(await res.json()).toEqual({ error: 'internal error', code: 'internal' });
    }
    // The same error object twice is logged once; the string once.
    expect(logged).toHaveLength(2);
    const first = JSON.parse(logged[0]!) as { level: string; msg: string; err: { message: string } };
    expect(first).toMatchObject({ level: 'error', msg: 'unexpected error', err: { message: bug.message } });
  });

  it('cuts the connection when the response has already started', async () => {
    // Whether the headers made it out or not, the client must never see a complete response.
    const outcome = await fetch(`${server.url}/late`)
      .then((res) => res.text())
      .then(
        () => 'complete',
        () => 'cut',
      );
    expect(outcome).toBe('cut');
  });
});
