import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_UPLOAD_BYTES, readBody, streamBody } from '../../../../origin/http/body.ts';
import { sendError, sendJson } from '../../../../origin/http/respond.ts';
import { serve, type TestServer } from './serve.ts';

const LIMIT = 1000;

/** A ReadableStream body that fetch sends chunked (no Content-Length). */
function chunked(parts: number, partSize: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent === parts) return controller.close();
      controller.enqueue(new Uint8Array(partSize).fill(97 + (sent % 26)));
      sent++;
    },
  });
}

/** A chunked body of `total` bytes that reports how much fetch has pulled from it. */
function counted(total: number): { body: ReadableStream<Uint8Array>; sent: () => number } {
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= total) return controller.close();
      controller.enqueue(new Uint8Array(64 * 1024));
      sent += 64 * 1024;
    },
  });
  return { body, sent: () => sent };
}

let server: TestServer;
beforeAll(async () => {
  server = await serve(async (req, res) => {
    try {
      if (req.url === '/pause') {
        // Read one chunk, then stall: with back-pressure the client must stall too.
        const it = streamBody(req, Number.POSITIVE_INFINITY);
        await it.next();
        await new Promise((r) => setTimeout(r, 300));
        return sendJson(res, 200, { ok: true });
      }
      if (req.url === '/stream') {
        // Slow consumer: the socket is read only as fast as we iterate.
        let n = 0;
        let chunks = 0;
        for await (const chunk of streamBody(req, LIMIT * 100)) {
          n += chunk.length;
          chunks++;
          await new Promise((r) => setTimeout(r, 1));
        }
        return sendJson(res, 200, { bytes: n, chunks });
      }
      const body = await readBody(req, LIMIT);
      sendJson(res, 200, { bytes: body.length, first: body[0] ?? null });
    } catch (err) {
      sendError(res, err);
    }
  });
});
afterAll(() => server.close());

describe('readBody', () => {
  it('reads a body under the limit, with Content-Length or chunked', async () => {
    const a = await fetch(`${server.url}/`, { method: 'POST', body: new Uint8Array(LIMIT).fill(7) });
    expect(await a.json()).toEqual({ bytes: LIMIT, first: 7 });
    const b = await fetch(`${server.url}/`, { method: 'POST', body: chunked(3, 300), duplex: 'half' });
    expect(await b.json()).toEqual({ bytes: 900, first: 97 });
    const empty = await fetch(`${server.url}/`, { method: 'POST' });
    expect(await empty.json()).toEqual({ bytes: 0, first: null });
  });

  it('refuses an oversized Content-Length with 413 before reading, and closes the connection', async () => {
    const res = await fetch(`${server.url}/`, { method: 'POST', body: new Uint8Array(LIMIT + 1) });
    expect(res.status).toBe(413);
    expect(res.headers.get('connection')).toBe('close');
    expect(await res.json()).toEqual({
      error: `request body exceeds ${LIMIT} bytes`,
      code: 'payload_too_large',
    });
  });

  it('refuses a chunked body with 413 once it crosses the limit', async () => {
    const res = await fetch(`${server.url}/`, { method: 'POST', body: chunked(4, 400), duplex: 'half' });
    expect(res.status).toBe(413);
    expect(res.headers.get('connection')).toBe('close');
    expect(((await res.json()) as { code: string }).code).toBe('payload_too_large');
  });

  it('stops reading a refused upload: the client cannot push the rest', async () => {
    const total = 64 * 1024 * 1024;
    const { body, sent } = counted(total);
    const res = await fetch(`${server.url}/`, { method: 'POST', body, duplex: 'half' });
    expect(res.status).toBe(413);
    await res.arrayBuffer();
    expect(sent()).toBeLessThan(total / 2);
  });

  it('defaults to 256 MiB', () => {
    expect(MAX_UPLOAD_BYTES).toBe(256 * 1024 * 1024);
  });
});

describe('streamBody', () => {
  it('applies back-pressure: a stalled consumer stalls the upload', async () => {
    const total = 64 * 1024 * 1024;
    const { body, sent } = counted(total);
    const res = await fetch(`${server.url}/pause`, { method: 'POST', body, duplex: 'half' });
    expect(res.status).toBe(200);
    // In flowing mode node would have buffered all 64 MiB within the 300 ms stall.
    expect(sent()).toBeLessThan(total / 2);
  });

  it('yields the body chunk by chunk to a slow consumer', async () => {
    const res = await fetch(`${server.url}/stream`, {
      method: 'POST',
      body: chunked(40, 1000),
      duplex: 'half',
    });
    const body = (await res.json()) as { bytes: number; chunks: number };
    expect(body.bytes).toBe(40_000);
    expect(body.chunks).toBeGreaterThan(1);
  });
});
