/**
 * Optional read tokens (SeaweedFS's `[jwt.signing.read]`): with a read key,
 * a GET of a blob needs the token that `/dir/lookup?fileId=...&read=yes`
 * hands out for that fid (401 otherwise); writes still use the write key.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assignOk,
  master,
  stopAll,
  type TestMaster,
  type TestVolume,
  upload,
  volume,
  waitForNodes,
} from './harness.ts';

const WRITE_KEY = 'read-token-test-write-key';
const READ_KEY = 'read-token-test-read-key';
const CLIENT_KEY = 'read-token-test-client-key';
const asClient = { Authorization: `Bearer ${CLIENT_KEY}` };

let m: TestMaster;
let v: TestVolume;

beforeAll(async () => {
  m = await master({ signingKey: WRITE_KEY, readSigningKey: READ_KEY, clientKeys: [CLIENT_KEY] });
  v = await volume(m.address, { signingKey: WRITE_KEY, readSigningKey: READ_KEY });
  await waitForNodes(m, 1);
});

afterAll(stopAll);

async function readToken(fid: string): Promise<string> {
  // Read tokens go to authenticated clients only (issue 10 finding 4).
  const anonymous = await fetch(`${m.base}/dir/lookup?fileId=${fid}&read=yes`);
  expect(anonymous.status).toBe(200);
  expect(anonymous.headers.get('authorization')).toBeNull();
  await anonymous.text();
  const res = await fetch(`${m.base}/dir/lookup?fileId=${fid}&read=yes`, { headers: asClient });
  expect(res.status).toBe(200);
  await res.json();
  const auth = res.headers.get('authorization');
  expect(auth).toMatch(/^Bearer /);
  return auth!.slice(7);
}

describe('read tokens', () => {
  it('serves a blob only with the read token for its fid', async () => {
    const data = randomBytes(300);
    const a = await assignOk(m.base, '', asClient);
    expect((await upload(a.url, a.fid, data, 'r.bin', { Authorization: `Bearer ${a.auth}` })).status).toBe(
      201,
    );

    const none = await fetch(`http://${a.url}/${a.fid}`);
    expect(none.status).toBe(401);
    await none.text();
    // The write token is signed with the other key: not a read token.
    const withWrite = await fetch(`http://${a.url}/${a.fid}`, {
      headers: { Authorization: `Bearer ${a.auth}` },
    });
    expect(withWrite.status).toBe(401);
    await withWrite.text();

    const token = await readToken(a.fid);
    const ok = await fetch(`http://${a.url}/${a.fid}?jwt=${token}`);
    expect(ok.status).toBe(200);
    expect(Buffer.from(await ok.arrayBuffer()).equals(data)).toBe(true);

    // Bound to the fid: another file's read token does not open this one.
    const b = await assignOk(m.base, '', asClient);
    expect((await upload(b.url, b.fid, data, 'r.bin', { Authorization: `Bearer ${b.auth}` })).status).toBe(
      201,
    );
    const other = await fetch(`http://${b.url}/${b.fid}`, { headers: { Authorization: `Bearer ${token}` } });
    expect(other.status).toBe(401);
    await other.text();
    expect(v.url).toBe(a.url);
  });
});
