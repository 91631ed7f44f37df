/**
 * `kelp server`'s link between its master and volume server (http/in-process.ts,
 * `inProcess: true`): a `/submit` reaches the volume server without a TCP
 * connection (a small upload without any connection at all: it is handed to
 * the write path as a call), through the same checks (here a signing key and
 * a cluster key: the master's token and signature travel in the headers), and
 * is stored and read back like any other.
 */
import { randomBytes } from 'node:crypto';
import { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inProcessUploads } from '../../../origin/http/in-process.ts';
import type { SubmitResponse } from '../../../shared/api.ts';
import { UnauthorizedError } from '../../../shared/errors.ts';
import {
  json,
  master,
  readBytes,
  stopAll,
  type TestMaster,
  type TestVolume,
  volume,
  waitForNodes,
} from './harness.ts';

const SIGNING_KEY = 'in-process-signing-key';
const CLUSTER_KEY = 'in-process-cluster-key';
const CLIENT_KEY = 'in-process-client-key';

let m: TestMaster;
let v: TestVolume;
const seen = { tcp: 0, other: 0 };
/** Requests the volume server's HTTP server took (a call handed over is not one). */
let httpRequests = 0;

beforeAll(async () => {
  const secured = { signingKey: SIGNING_KEY, clusterKey: CLUSTER_KEY };
  m = await master({ ...secured, clientKeys: [CLIENT_KEY] });
  v = await volume(m.address, { ...secured, inProcess: true });
  v.server.server.on('connection', (s) => (s instanceof Socket ? seen.tcp++ : seen.other++));
  v.server.server.on('request', () => httpRequests++);
  await waitForNodes(m, 1);
  // The first assign grows the volumes (admin calls, over TCP: only forwarded uploads go in memory).
  const warm = await fetch(`${m.base}/dir/assign`, { headers: { Authorization: `Bearer ${CLIENT_KEY}` } });
  expect(warm.status).toBe(200);
});

afterAll(stopAll);

function submit(
  data: Buffer,
  name: string,
  type?: string,
  headers: Record<string, string> = {},
  query = '',
): Promise<Response> {
  const form = new FormData();
  form.append('file', new Blob([data], type ? { type } : {}), name);
  return fetch(`${m.base}/submit${query}`, {
    method: 'POST',
    body: form,
    headers: { Authorization: `Bearer ${CLIENT_KEY}`, ...headers },
  });
}

describe('/submit to a volume server linked in process', () => {
  it('stores uploads without a TCP connection from the master, through the token check', async () => {
    // Small (passed through whole) and over 1 MiB (spooled by the master, streamed from its file).
    for (const size of [1024, 3 * 1024 * 1024]) {
      const data = randomBytes(size);
      const tcpBefore = seen.tcp;
      const out = await json<SubmitResponse>(await submit(data, `b${size}.bin`), 201);
      expect(out.size).toBe(size);
      expect(seen.tcp).toBe(tcpBefore);
      const back = await readBytes(`http://${out.fileUrl}`);
      expect(back.status).toBe(200);
      expect(back.body.equals(data)).toBe(true);
    }
    expect(seen.other).toBeGreaterThan(0);
    // The volume server still wants the master's token: a PUT without one is refused.
    const bare = await fetch(`${v.base}/1,01637037d6`, { method: 'PUT', body: 'x' });
    expect(bare.status).toBe(401);
  });

  it('hands a small upload to the write path as a call: no HTTP request; name, type, pairs and TTL kept', async () => {
    const data = randomBytes(1024);
    // Volumes of the 3m layout grown first: growing is the master's admin call over TCP.
    const grown = await fetch(`${m.base}/dir/assign?ttl=3m`, {
      headers: { Authorization: `Bearer ${CLIENT_KEY}` },
    });
    expect(grown.status).toBe(200);
    const before = httpRequests;
    const res = await submit(data, 'photo.png', 'image/png', { 'Kelp-Owner': 'ana' }, '?ttl=3m');
    const out = await json<SubmitResponse>(res, 201);
    expect(out.fileName).toBe('photo.png');
    expect(out.size).toBe(1024);
    // No HTTP request reached the volume server (over a socket or in memory): the upload was a call.
    expect(httpRequests).toBe(before);
    const back = await fetch(`http://${out.fileUrl}`);
    expect(back.status).toBe(200);
    expect(back.headers.get('content-type')).toBe('image/png');
    expect(back.headers.get('content-disposition')).toContain('photo.png');
    expect(back.headers.get('kelp-owner')).toBe('ana');
    // The TTL went with the call: the blob expires 3 minutes after it was written.
    const expires = Date.parse(back.headers.get('expires') ?? '');
    expect(expires - Date.now()).toBeGreaterThan(2 * 60_000);
    expect(expires - Date.now()).toBeLessThanOrEqual(3 * 60_000);
    expect(back.headers.get('etag')).toBe(`"${out.eTag}"`);
    expect(Buffer.from(await back.arrayBuffer()).equals(data)).toBe(true);
  });

  it("a call still needs the master's token, and the same bytes again answer 204", async () => {
    const uploads = inProcessUploads(v.url);
    expect(uploads).toBeDefined();
    const assigned = await json<{ fid: string; auth: string }>(
      await fetch(`${m.base}/dir/assign`, { headers: { Authorization: `Bearer ${CLIENT_KEY}` } }),
      200,
    );
    const body = Buffer.from('raw bytes, no form');
    const upload = (token?: string) =>
      uploads!({
        pathname: `/${assigned.fid}`,
        query: null,
        headers: {
          'content-length': String(body.length),
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body,
      });
    await expect(upload()).rejects.toBeInstanceOf(UnauthorizedError);
    await expect(upload('not-a-token')).rejects.toBeInstanceOf(UnauthorizedError);
    const first = await upload(assigned.auth);
    expect(first.status).toBe(201);
    const again = await upload(assigned.auth);
    expect(again).toEqual({ status: 204, eTag: first.eTag });
    const back = await readBytes(`${v.url}/${assigned.fid}`);
    expect(back.body.equals(body)).toBe(true);
  });

  it("a call refused for the client's own fault answers its status (400, 415), as over HTTP", async () => {
    const data = Buffer.from('checked in process\n');
    const wrong = await submit(data, 'c.txt', 'text/plain', { 'Content-MD5': 'AAAAAAAAAAAAAAAAAAAAAA==' });
    expect(wrong.status).toBe(400);
    expect(((await wrong.json()) as { error: string }).error).toMatch(/Content-MD5/);
    const br = await submit(data, 'c.txt', 'text/plain', { 'Content-Encoding': 'br' });
    expect(br.status).toBe(415);
    await br.body?.cancel();
  });

  it('once the volume server has stopped, /submit fails as for a stopped server over TCP', async () => {
    await v.stop();
    // Unlinked on stop: no call is handed to a stopped server.
    expect(inProcessUploads(v.url)).toBeUndefined();
    const res = await submit(Buffer.from('late'), 'late.txt');
    expect(res.status).toBeGreaterThanOrEqual(500);
  });
});
