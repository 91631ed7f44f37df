/**
 * With a signing key, volume servers take writes and deletes only with the
 * master's HS256 token for that very fid, unexpired (401 otherwise); without
 * one the cluster is open and the master says so when it starts.
 */
import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AssignResponse } from '../../../shared/api.ts';
import {
  assignOk,
  json,
  lookupOk,
  master,
  readBytes,
  send,
  stopAll,
  type TestMaster,
  type TestVolume,
  upload,
  volume,
  waitForNodes,
} from './harness.ts';

const KEY = 'integration-test-signing-key';
const CLIENT_KEY = 'integration-test-client-key';
const asClient = { Authorization: `Bearer ${CLIENT_KEY}` };

let m: TestMaster;
let vols: TestVolume[];

beforeAll(async () => {
  m = await master({ signingKey: KEY, clientKeys: [CLIENT_KEY] });
  vols = await Promise.all([0, 1].map(() => volume(m.address, { signingKey: KEY })));
  await waitForNodes(m, 2);
});

afterAll(stopAll);

function sign(claims: Record<string, unknown>, exp: number | undefined, key = KEY): Promise<string> {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' });
  if (exp !== undefined) jwt.setExpirationTime(exp);
  return jwt.sign(new TextEncoder().encode(key));
}

const nowSeconds = () => Math.floor(Date.now() / 1000);
const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

async function expect401(res: Response, what: string): Promise<void> {
  const body = await res.text();
  expect(res.status, `${what}: ${body}`).toBe(401);
  expect((JSON.parse(body) as { code: string }).code).toBe('unauthorized');
}

function del(a: { url: string }, fid: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`http://${a.url}/${fid}`, { method: 'DELETE', headers });
}

describe('a secured cluster', () => {
  it('hands out a token with each assign, and says writes need one', async () => {
    const res = await fetch(`${m.base}/dir/assign`, { headers: asClient });
    const a = await json<AssignResponse>(res, 200);
    expect(a.auth).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(res.headers.get('authorization')).toBe(`Bearer ${a.auth}`);
    expect(m.logs.join('\n')).toMatch(/signed token/);
    expect(m.logs.join('\n')).not.toMatch(/OPEN/);
  });

  it('refuses writes without a valid token for the fid (401) and takes the assigned one (201)', async () => {
    const a = await assignOk(m.base, '', asClient);
    const other = await assignOk(m.base, '', asClient);
    const data = randomBytes(300);
    await expect401(await upload(a.url, a.fid, data), 'no token');
    await expect401(await upload(a.url, a.fid, data, 'x', bearer(other.auth!)), "another fid's token");
    await expect401(
      await upload(a.url, a.fid, data, 'x', bearer(await sign({ fid: a.fid }, nowSeconds() - 30))),
      'expired token',
    );
    await expect401(
      await upload(
        a.url,
        a.fid,
        data,
        'x',
        bearer(await sign({ fid: a.fid }, nowSeconds() + 30, 'wrong-key')),
      ),
      'token signed with another key',
    );
    await expect401(
      await upload(a.url, a.fid, data, 'x', bearer(await sign({ fid: a.fid }, undefined))),
      'token that never expires',
    );
    await expect401(await upload(a.url, a.fid, data, 'x', bearer('not.a.jwt')), 'garbage token');
    // Nothing of the refused attempts was stored.
    expect((await readBytes(`${a.url}/${a.fid}`)).status).toBe(404);

    const ok = await upload(a.url, a.fid, data, 'x', bearer(a.auth!));
    expect(ok.status, await ok.clone().text()).toBe(201);
    // Reads need no token (no read key configured).
    const back = await readBytes(`${a.url}/${a.fid}`);
    expect(back.status).toBe(200);
    expect(back.body.equals(data)).toBe(true);
  });

  it('accepts the token in ?jwt= and the AT cookie, and for every fid of a counted batch', async () => {
    const a = await assignOk(m.base, 'count=3', asClient);
    const viaQuery = await fetch(`http://${a.url}/${a.fid}?jwt=${a.auth}`, { method: 'PUT', body: 'q' });
    expect(viaQuery.status).toBe(201);
    const viaCookie = await fetch(`http://${a.url}/${a.fid}_1`, {
      method: 'PUT',
      body: 'c',
      headers: { Cookie: `AT=${a.auth}` },
    });
    expect(viaCookie.status).toBe(201);
    expect((await upload(a.url, `${a.fid}_2`, randomBytes(10), 'x', bearer(a.auth!))).status).toBe(201);
  });

  it('a token expires', async () => {
    const a = await assignOk(m.base, '', asClient);
    const shortLived = await sign({ fid: a.fid }, nowSeconds() + 1);
    await new Promise((r) => setTimeout(r, 2_100));
    await expect401(
      await upload(a.url, a.fid, randomBytes(10), 'x', bearer(shortLived)),
      'token past its exp',
    );
  });

  it('refuses deletes the same way (401) and takes the lookup token (202)', async () => {
    const a = await assignOk(m.base, '', asClient);
    const other = await assignOk(m.base, '', asClient);
    expect((await upload(a.url, a.fid, randomBytes(100), 'x', bearer(a.auth!))).status).toBe(201);

    await expect401(await del(a, a.fid), 'delete without a token');
    await expect401(await del(a, a.fid, bearer(other.auth!)), "delete with another fid's token");
    await expect401(
      await del(a, a.fid, bearer(await sign({ fid: a.fid }, nowSeconds() - 30))),
      'delete with an expired token',
    );
    expect((await readBytes(`${a.url}/${a.fid}`)).status).toBe(200);

    // /dir/lookup?fileId= hands out a fresh token for that fid, to an authenticated client only.
    const anonymous = await fetch(`${m.base}/dir/lookup?fileId=${a.fid}`);
    expect(anonymous.headers.get('authorization')).toBeNull();
    await anonymous.text();
    const res = await fetch(`${m.base}/dir/lookup?fileId=${a.fid}`, { headers: asClient });
    expect(res.status).toBe(200);
    const token = res.headers.get('authorization')?.replace(/^Bearer /, '');
    expect(token).toBeTruthy();
    const ok = await del(a, a.fid, bearer(token!));
    expect(ok.status).toBe(202);
    expect((await readBytes(`${a.url}/${a.fid}`)).status).toBe(404);
  });

  it('replicas take the forwarded token: a "001" write and delete reach both copies', async () => {
    const a = await assignOk(m.base, 'replication=001', asClient);
    const data = randomBytes(2000);
    const res = await upload(a.url, a.fid, data, 'x', bearer(a.auth!));
    expect(res.status, await res.clone().text()).toBe(201);
    const locations = (await lookupOk(m.base, a.fid)).locations;
    expect(locations.map((l) => l.url).sort()).toEqual(vols.map((v) => v.url).sort());
    for (const l of locations) expect((await readBytes(`${l.url}/${a.fid}`)).body.equals(data)).toBe(true);
    // A replica refuses a `type=replicate` write that carries no token: it is no back door.
    const peer = locations.find((l) => l.url !== a.url)!;
    await expect401(
      await send(`http://${peer.url}/${a.fid}?type=replicate`, { method: 'PUT', body: 'sneaky' }),
      'replicate without a token',
    );
    expect((await del(a, a.fid, bearer(a.auth!))).status).toBe(202);
    for (const l of locations) expect((await readBytes(`${l.url}/${a.fid}`)).status).toBe(404);
  });

  it('/submit signs its own upload', async () => {
    const form = new FormData();
    form.append('file', new Blob([new Uint8Array([1, 2, 3])]), 'three.bin');
    const res = await fetch(`${m.base}/submit`, { method: 'POST', body: form, headers: asClient });
    expect(res.status, await res.clone().text()).toBe(201);
  });
});

describe('an open cluster', () => {
  it('says so in the master startup log, and takes writes without a token', async () => {
    const open = await master();
    expect(open.logs.join('\n')).toMatch(/OPEN/);
    await volume(open.address);
    await waitForNodes(open, 1);
    const a = await assignOk(open.base);
    expect(a.auth).toBeUndefined();
    expect((await upload(a.url, a.fid, randomBytes(10))).status).toBe(201);
  });
});
