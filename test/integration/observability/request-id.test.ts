/**
 * One request id per request: the caller's X-Request-Id (or cf-ray) when it
 * is sane, a generated one otherwise; echoed in every response, success or
 * error; sent on by the master to the volume server on /submit and by a
 * primary to its replicas, and written as `reqId` on their log lines. Tokens
 * in URLs never reach a line.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { AssignResponse } from '../../../shared/api.ts';
import { captureLogs } from '../../helpers/log-capture.ts';
import { master, stopAll, type TestMaster, volume, waitForNodes } from '../cluster/harness.ts';

afterAll(stopAll);

const GENERATED = /^[\w-]{8}-[0-9a-z]+$/;

async function assign(m: TestMaster, query = ''): Promise<AssignResponse> {
  return (await (await fetch(`${m.base}/dir/assign?${query}`)).json()) as AssignResponse;
}

/** The access lines (debug) of a captured log, by request id. */
function accessLines(lines: string[], reqId: string) {
  return lines
    .map(
      (l) => JSON.parse(l) as { msg: string; reqId?: string; route?: string; status?: number; url?: string },
    )
    .filter((r) => r.msg === 'request' && r.reqId === reqId);
}

describe('X-Request-Id', () => {
  it('is echoed on reads, 404s, writes and master calls; generated when absent; cf-ray taken; junk replaced', async () => {
    const m = await master();
    const v = await volume(m.address);
    await waitForNodes(m, 1);
    const a = await assign(m);
    const rid = (res: Response) => res.headers.get('x-request-id');

    const put = await fetch(`${v.base}/${a.fid}`, {
      method: 'PUT',
      body: 'hello',
      headers: { 'X-Request-Id': 'w-1' },
    });
    expect([put.status, rid(put)]).toEqual([201, 'w-1']);
    const get = await fetch(`${v.base}/${a.fid}`, { headers: { 'X-Request-Id': 'r-1' } });
    expect([get.status, rid(get)]).toEqual([200, 'r-1']);
    const head = await fetch(`${v.base}/${a.fid}`, { method: 'HEAD', headers: { 'X-Request-Id': 'h-1' } });
    expect([head.status, rid(head)]).toEqual([200, 'h-1']);
    const missing = await fetch(`${v.base}/${a.fid.split(',')[0]},ffff00000001`, {
      headers: { 'X-Request-Id': 'r-404' },
    });
    expect([missing.status, rid(missing)]).toEqual([404, 'r-404']);
    const status = await fetch(`${v.base}/status`, { headers: { 'cf-ray': '8c1f2e3d4a5b6c7d-AMS' } });
    expect(rid(status)).toBe('8c1f2e3d4a5b6c7d-AMS');

    const generated = await fetch(`${v.base}/${a.fid}`);
    expect(rid(generated)).toMatch(GENERATED);
    const other = await fetch(`${v.base}/${a.fid}`);
    expect(rid(other)).toMatch(GENERATED);
    expect(rid(other)).not.toBe(rid(generated));
    for (const junk of ['has space', 'x'.repeat(200), 'quote"d']) {
      const res = await fetch(`${v.base}/${a.fid}`, { headers: { 'X-Request-Id': junk } });
      expect(rid(res)).toMatch(GENERATED);
    }

    const lookup = await fetch(`${m.base}/dir/lookup?volumeId=${a.fid.split(',')[0]}`, {
      headers: { 'X-Request-Id': 'm-1' },
    });
    expect([lookup.status, rid(lookup)]).toEqual([200, 'm-1']);
    const notFound = await fetch(`${m.base}/dir/lookup?volumeId=9999`, {
      headers: { 'X-Request-Id': 'm-2' },
    });
    expect([notFound.status, rid(notFound)]).toEqual([404, 'm-2']);
    expect(rid(await fetch(`${m.base}/dir/assign`))).toMatch(GENERATED);
  });

  it('goes from the master to the volume server on /submit, and from a primary to its replicas', async () => {
    const masterLog: string[] = [];
    const logsA: string[] = [];
    const logsB: string[] = [];
    const m = await master({ logger: captureLogs(masterLog).logger });
    const a = await volume(m.address, { rack: 'r1', logger: captureLogs(logsA).logger });
    const b = await volume(m.address, { rack: 'r1', logger: captureLogs(logsB).logger });
    await waitForNodes(m, 2);

    const form = new FormData();
    form.append('file', new Blob(['submitted']), 'a.txt');
    const submit = await fetch(`${m.base}/submit`, {
      method: 'POST',
      body: form,
      headers: { 'X-Request-Id': 'submit-42' },
    });
    expect(submit.status).toBe(201);
    expect(submit.headers.get('x-request-id')).toBe('submit-42');
    expect(accessLines(masterLog, 'submit-42')).toEqual([
      expect.objectContaining({ route: 'submit', status: 201 }),
    ]);
    const onVolumes = [...accessLines(logsA, 'submit-42'), ...accessLines(logsB, 'submit-42')];
    expect(onVolumes).toEqual([expect.objectContaining({ route: 'write', status: 201 })]);

    const r = await assign(m, 'replication=001');
    const [primary, replicaLogs] = r.url === a.url ? [a, logsB] : [b, logsA];
    const primaryLogs = primary === a ? logsA : logsB;
    const put = await fetch(`${primary.base}/${r.fid}`, {
      method: 'PUT',
      body: 'replicated',
      headers: { 'X-Request-Id': 'replicated-7' },
    });
    expect(put.status).toBe(201);
    expect(accessLines(primaryLogs, 'replicated-7')).toEqual([expect.objectContaining({ route: 'write' })]);
    expect(accessLines(replicaLogs, 'replicated-7')).toEqual([
      expect.objectContaining({ route: 'replicate', status: 201 }),
    ]);
    const del = await fetch(`${primary.base}/${r.fid}`, {
      method: 'DELETE',
      headers: { 'X-Request-Id': 'deleted-8' },
    });
    expect(del.status).toBe(202);
    expect(accessLines(replicaLogs, 'deleted-8')).toEqual([expect.objectContaining({ route: 'replicate' })]);
  });

  it('keeps tokens out of the log lines that carry URLs', async () => {
    const SIGNING = 'request-id-test-signing-key-000000';
    const lines: string[] = [];
    const m = await master({ signingKey: SIGNING });
    const v = await volume(m.address, { signingKey: SIGNING, logger: captureLogs(lines).logger });
    await waitForNodes(m, 1);
    const a = await assign(m);
    expect(a.auth).toBeTruthy();
    const put = await fetch(`${v.base}/${a.fid}?jwt=${a.auth}`, { method: 'PUT', body: 'x' });
    expect(put.status).toBe(201);
    const bad = await fetch(`${v.base}/${a.fid}`, {
      method: 'PUT',
      body: 'y',
      headers: { Authorization: `Bearer ${a.auth}x` },
    });
    expect(bad.status).toBe(401);
    const all = lines.join('\n');
    expect(all).toContain('jwt=[redacted]');
    expect(all).not.toContain(a.auth!);
  });
});
