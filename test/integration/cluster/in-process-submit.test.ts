/**
 * `kelp server`'s link between its master and volume server (http/in-process.ts,
 * `inProcess: true`): a `/submit` reaches the volume server without a TCP
 * connection, through the same checks (here a signing key and a cluster key:
 * the master's token and signature travel in the headers), and is stored and
 * read back like any other.
 */
import { randomBytes } from 'node:crypto';
import { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SubmitResponse } from '../../../shared/api.ts';
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

beforeAll(async () => {
  const secured = { signingKey: SIGNING_KEY, clusterKey: CLUSTER_KEY };
  m = await master({ ...secured, clientKeys: [CLIENT_KEY] });
  v = await volume(m.address, { ...secured, inProcess: true });
  v.server.server.on('connection', (s) => (s instanceof Socket ? seen.tcp++ : seen.other++));
  await waitForNodes(m, 1);
  // The first assign grows the volumes (admin calls, over TCP: only forwarded uploads go in memory).
  const warm = await fetch(`${m.base}/dir/assign`, { headers: { Authorization: `Bearer ${CLIENT_KEY}` } });
  expect(warm.status).toBe(200);
});

afterAll(stopAll);

function submit(data: Buffer, name: string): Promise<Response> {
  const form = new FormData();
  form.append('file', new Blob([data]), name);
  return fetch(`${m.base}/submit`, {
    method: 'POST',
    body: form,
    headers: { Authorization: `Bearer ${CLIENT_KEY}` },
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

  it('once the volume server has stopped, /submit fails as for a stopped server over TCP', async () => {
    await v.stop();
    const res = await submit(Buffer.from('late'), 'late.txt');
    expect(res.status).toBeGreaterThanOrEqual(500);
  });
});
