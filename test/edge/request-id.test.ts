/**
 * The edge gives origin one request id per request (edge/request-id.ts): the
 * caller's X-Request-Id when it is sane, else a new one, on every origin fetch
 * made for it (the master's lookup and submit, the volume server's read), so
 * origin's log lines of one client request share one `reqId`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EdgeCluster, multipart, randomBlob, startEdge } from './harness.ts';

let edge: EdgeCluster;

beforeAll(async () => {
  edge = await startEdge({ vars: { PUBLIC_WRITES: 'true' } });
}, 60_000);
afterAll(async () => {
  await edge?.close();
});

/** Where each origin's record of requests stands now. */
function mark(): number[] {
  return [edge.masterProxy, ...edge.volumes.map((v) => v.proxy)].map((p) => p.seen.length);
}

/** The X-Request-Id of each origin request seen since `from` (master's first, then each volume server's). */
function idsSince(from: number[]): Array<string | undefined> {
  return [edge.masterProxy, ...edge.volumes.map((v) => v.proxy)].flatMap((p, i) =>
    p.seen.slice(from[i]).map((s) => s.headers['x-request-id'] as string | undefined),
  );
}

describe('the edge and request ids', () => {
  it("passes the caller's X-Request-Id to the master's lookup and to the volume server", async () => {
    const fid = await edge.upload(randomBlob(300));
    const from = mark();
    const res = await edge.fetch(`/${fid}`, { headers: { 'X-Request-Id': 'edge-read-1' } });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    const ids = idsSince(from);
    // A miss: one lookup at the master, one read at the volume server.
    expect(ids).toEqual(['edge-read-1', 'edge-read-1']);
  });

  it('makes one up when the caller sent none (or junk), the same for every origin fetch of the request', async () => {
    const fid = await edge.upload(randomBlob(300));
    const from = mark();
    const res = await edge.fetch(`/${fid}`, { headers: { 'X-Request-Id': 'not sane at all' } });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    const ids = idsSince(from);
    expect(ids.length).toBeGreaterThanOrEqual(1);
    expect(ids[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(new Set(ids).size).toBe(1);
  });

  it('passes it on /submit to the master, which answers with it', async () => {
    const from = mark();
    const { body, headers } = await multipart(randomBlob(100), 'a.bin');
    const res = await edge.fetch('/submit', {
      method: 'POST',
      body,
      headers: { ...headers, 'X-Request-Id': 'edge-submit-9' },
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('x-request-id')).toBe('edge-submit-9');
    expect(idsSince(from)).toEqual(['edge-submit-9']);
  });
});
