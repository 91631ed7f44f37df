/**
 * POST /submit through the Worker streams (issue 11 item 6): the master
 * receives the upload while the client is still sending it (a Worker has
 * 128 MB; uploads may be 256 MiB), the size limit is enforced at the edge
 * before the origin is asked (Content-Length) or while the body passes
 * (chunked), and a master that refuses the connection is replaced by the next
 * one with the body replayed from its start.
 */
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import type { Miniflare } from 'miniflare';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bundleWorker,
  bytes,
  type EdgeCluster,
  LOOPBACK_ORIGINS,
  randomBlob,
  startEdge,
  startWorker,
  tempDir,
  WORKER_ENTRY,
  waitFor,
} from './harness.ts';

/** MAX_UPLOAD_BYTES of this Worker: small, so the limit is cheap to cross. */
const MAX_UPLOAD = 256 * 1024;
/** The Worker allows this much multipart framing on top (edge/write.ts). */
const SLACK = 64 * 1024;

let edge: EdgeCluster;
const extra: Miniflare[] = [];

beforeAll(async () => {
  // An open development edge (PUBLIC_WRITES, as `npm start`): uploads need no key here.
  edge = await startEdge({ port: 0, vars: { MAX_UPLOAD_BYTES: String(MAX_UPLOAD), PUBLIC_WRITES: 'true' } });
}, 60_000);
afterAll(async () => {
  for (const mf of extra) await mf.dispose().catch(() => {});
  await edge?.close();
});

const BOUNDARY = 'kelpboundary7MA4YWxkTrZu0gW';

function multipartParts(size: number, name = 'up.bin'): { head: Buffer; data: Buffer; tail: Buffer } {
  const head = Buffer.from(
    `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\n` +
      'Content-Type: application/octet-stream\r\n\r\n',
  );
  return { head, data: Buffer.from(randomBlob(size)), tail: Buffer.from(`\r\n--${BOUNDARY}--\r\n`) };
}

interface Sent {
  status: number;
  body: string;
}

/**
 * POSTs `chunks` to the Worker's own HTTP server, chunked unless `length` is
 * given; `between(i)` runs before chunk i (i > 0) is written.
 */
function post(
  base: string,
  chunks: Buffer[],
  opts: { length?: number; between?: (i: number) => Promise<void> } = {},
): Promise<Sent> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` };
    if (opts.length !== undefined) headers['content-length'] = String(opts.length);
    else headers['transfer-encoding'] = 'chunked';
    const req = httpRequest(`${base}/submit`, { method: 'POST', headers }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    // The Worker may answer (413) and close before the body is all sent.
    req.on('error', (err) => (settledEarly ? undefined : reject(err)));
    let settledEarly = false;
    req.on('response', () => {
      settledEarly = true;
    });
    (async () => {
      for (let i = 0; i < chunks.length; i++) {
        if (i > 0 && opts.between) await opts.between(i);
        if (settledEarly) break;
        req.write(chunks[i]);
      }
      req.end();
    })().catch(reject);
  });
}

function storedFiles(cluster: EdgeCluster): number {
  return cluster.volumes.reduce(
    (n, v) => n + v.server.store.volumeStatuses().reduce((m, s) => m + s.fileCount, 0),
    0,
  );
}

describe('POST /submit through the edge', () => {
  it('streams: the master has the request while the client is still sending the body', async () => {
    const { head, data, tail } = multipartParts(200 * 1024);
    const before = edge.masterProxy.countOf('/submit');
    const sent = await post(
      edge.edgeUrl!,
      [head, data.subarray(0, 64 * 1024), data.subarray(64 * 1024), tail],
      {
        between: async (i) => {
          // Half-way through, the client waits for the master to have started receiving.
          if (i === 2)
            await waitFor(
              'the master to receive the upload',
              () => edge.masterProxy.countOf('/submit') > before,
            );
        },
      },
    );
    expect(sent.status).toBe(201);
    const { fid, size } = JSON.parse(sent.body) as { fid: string; size: number };
    expect(size).toBe(data.length);
    expect(await bytes(await edge.fetch(`/${fid}`))).toEqual(new Uint8Array(data));
  });

  it('keeps the Content-Length it was given (the master can refuse early too)', async () => {
    const { head, data, tail } = multipartParts(100 * 1024);
    const all = Buffer.concat([head, data, tail]);
    const sent = await post(edge.edgeUrl!, [all], { length: all.length });
    expect(sent.status).toBe(201);
    const { fid } = JSON.parse(sent.body) as { fid: string };
    expect(await bytes(await edge.fetch(`/${fid}`))).toEqual(new Uint8Array(data));
  });

  it('refuses a Content-Length over the limit with 413 before any origin request', async () => {
    const origin = edge.originRequests();
    const { head, data, tail } = multipartParts(MAX_UPLOAD + SLACK);
    const all = Buffer.concat([head, data, tail]);
    const sent = await post(edge.edgeUrl!, [all], { length: all.length });
    expect(sent.status).toBe(413);
    expect(JSON.parse(sent.body)).toMatchObject({ code: 'payload_too_large' });
    expect(edge.originRequests()).toBe(origin);
  });

  it('cuts off a chunked body at the limit with 413, and nothing is stored', async () => {
    const files = storedFiles(edge);
    const { head, data, tail } = multipartParts(MAX_UPLOAD + SLACK + 10_000);
    const pieces = [head];
    for (let at = 0; at < data.length; at += 32 * 1024) pieces.push(data.subarray(at, at + 32 * 1024));
    pieces.push(tail);
    const sent = await post(edge.edgeUrl!, pieces);
    expect(sent.status).toBe(413);
    await new Promise((r) => setTimeout(r, 300));
    expect(storedFiles(edge)).toBe(files);
  });

  it('replays the body to the next master when the first refuses the connection', async () => {
    const dead = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const { port } = s.address() as { port: number };
        s.close(() => resolve(port));
      });
    });
    const scriptPath = await bundleWorker(WORKER_ENTRY, tempDir());
    const mf = startWorker(
      scriptPath,
      {
        MASTER_URL: `http://127.0.0.1:${dead},http://${edge.masterProxy.address}`,
        ORIGIN_ALLOW: LOOPBACK_ORIGINS,
        MAX_UPLOAD_BYTES: String(MAX_UPLOAD),
        PUBLIC_WRITES: 'true',
      },
      0,
    );
    extra.push(mf);
    const base = (await mf.ready).origin;
    const { head, data, tail } = multipartParts(150 * 1024);
    const sent = await post(base, [head, data.subarray(0, 50_000), data.subarray(50_000), tail]);
    expect(sent.status).toBe(201);
    const { fid } = JSON.parse(sent.body) as { fid: string };
    expect(await bytes(await edge.fetch(`/${fid}`))).toEqual(new Uint8Array(data));
  });
});
