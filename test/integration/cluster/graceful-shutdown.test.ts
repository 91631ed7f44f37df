/**
 * SIGTERM to a real `kelp volume` process: readiness fails, the master is
 * told at once that the server leaves (a signed POST /cluster/leave), no new
 * connection is accepted, a request in flight is finished within the drain
 * deadline, and the process exits 0; past the deadline the rest is cut off; a
 * second signal exits at once. The leave endpoint takes signed calls only.
 */
import { request } from 'node:http';
import { connect } from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { withClusterAuth } from '../../../origin/security/cluster-auth.ts';
import type { AssignResponse } from '../../../shared/api.ts';
import { type ChildServer, startChild } from '../volume/harness.ts';
import { master, stopAll, tempDir, volume, waitFor, waitForNodes } from './harness.ts';

const children: ChildServer[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) await c.kill();
});
afterAll(stopAll);

const BODY_BYTES = 200_000;

/** A PUT whose body is sent in two halves, the second when `finish()` is called. */
function slowUpload(base: string, fid: string) {
  const url = new URL(`${base}/${fid}`);
  let finish!: () => void;
  const done = new Promise<{ status: number; body: string } | { error: string }>((resolve) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        method: 'PUT',
        path: url.pathname,
        headers: { 'Content-Length': BODY_BYTES, 'Content-Type': 'application/octet-stream' },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (s: string) => {
          body += s;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', (err) => resolve({ error: err.message }));
    req.write(Buffer.alloc(BODY_BYTES / 2, 1));
    finish = () => req.end(Buffer.alloc(BODY_BYTES / 2, 2));
  });
  return { done, finish: () => finish() };
}

function connectRefused(base: string): Promise<boolean> {
  const url = new URL(base);
  return new Promise((resolve) => {
    const s = connect({ host: url.hostname, port: Number(url.port) });
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

async function volumeProcess(masterAddress: string, drainSeconds: number, extra: string[] = []) {
  const child = await startChild(tempDir('kelp-graceful-'), [
    '--master',
    masterAddress,
    '--pulseSeconds',
    '1',
    '--drainSeconds',
    String(drainSeconds),
    ...extra,
  ]);
  children.push(child);
  return child;
}

function exitOf(child: ChildServer): Promise<{ code: number | null; at: number }> {
  return new Promise((resolve) => child.child.once('exit', (code) => resolve({ code, at: Date.now() })));
}

async function assignFrom(m: { base: string }): Promise<AssignResponse> {
  return (await (await fetch(`${m.base}/dir/assign`)).json()) as AssignResponse;
}

describe('kelp volume on SIGTERM', () => {
  it('leaves the master at once, refuses new connections, finishes the request in flight, exits 0', async () => {
    const m = await master();
    const v = await volumeProcess(m.address, 10);
    await waitForNodes(m, 1);
    const a = await assignFrom(m);
    const url = a.url;
    expect((await fetch(`${v.base}/readyz`)).status).toBe(200);

    const upload = slowUpload(v.base, a.fid);
    await new Promise((r) => setTimeout(r, 200));
    const exit = exitOf(v);
    const signalled = Date.now();
    v.child.kill('SIGTERM');
    // Gone from the master long before three missed pulses (3 s) would have said so.
    await waitFor('the master to drop the leaving server', () => !m.topology.nodes.has(url), 1_500);
    expect(m.logs.join('\n')).toContain(`volume server ${url} left the cluster`);
    await waitFor('new connections to be refused', () => connectRefused(v.base), 2_000);
    upload.finish();
    const result = await upload.done;
    expect(result, v.output()).toMatchObject({ status: 201 });
    const { code, at } = await exit;
    expect(code, v.output()).toBe(0);
    expect(at - signalled).toBeLessThan(5_000);
    expect(v.output()).toContain('volumes synced and closed cleanly');
  });

  it('cuts off what is still running at the drain deadline, then exits 0', async () => {
    const m = await master();
    const v = await volumeProcess(m.address, 1);
    await waitForNodes(m, 1);
    const a = await assignFrom(m);
    const stalled = slowUpload(v.base, a.fid);
    await new Promise((r) => setTimeout(r, 200));
    const exit = exitOf(v);
    const signalled = Date.now();
    v.child.kill('SIGTERM');
    const { code, at } = await exit;
    expect(code, v.output()).toBe(0);
    // One second of drain, then the stalled upload's connection is closed.
    expect(at - signalled).toBeGreaterThanOrEqual(900);
    expect(at - signalled).toBeLessThan(4_000);
    expect(await stalled.done).toHaveProperty('error');
    expect(v.output()).toContain('1 connections were still busy after the drain deadline');
  });

  it('exits at once on a second signal', async () => {
    const m = await master();
    const v = await volumeProcess(m.address, 60);
    await waitForNodes(m, 1);
    const a = await assignFrom(m);
    const stalled = slowUpload(v.base, a.fid);
    await new Promise((r) => setTimeout(r, 200));
    const exit = exitOf(v);
    v.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    const again = Date.now();
    v.child.kill('SIGINT');
    const { code, at } = await exit;
    expect(code).toBe(1);
    expect(at - again).toBeLessThan(1_000);
    expect(v.output()).toContain('SIGINT again: exiting now');
    stalled.finish();
    await stalled.done;
  });
});

describe('POST /cluster/leave', () => {
  it('takes a server out only when signed with the cluster key', async () => {
    const CLUSTER = 'graceful-test-cluster-key-0123456789';
    const m = await master({ clusterKey: CLUSTER });
    const v = await volume(m.address, { clusterKey: CLUSTER });
    await waitForNodes(m, 1);
    const target = `${m.base}/cluster/leave`;
    const body = JSON.stringify({ url: v.url });
    const unsigned = await fetch(target, { method: 'POST', body });
    expect(unsigned.status).toBe(401);
    const wrongKey = await fetch(target, {
      method: 'POST',
      headers: withClusterAuth('not-the-cluster-key-at-all-000000', 'POST', target, {}, body),
      body,
    });
    expect(wrongKey.status).toBe(401);
    expect((await fetch(target)).status).toBe(405);
    expect(m.topology.nodes.has(v.url)).toBe(true);
    // The server's own shutdown signs its leave.
    await v.server.shutdown(0);
    expect(m.topology.nodes.has(v.url)).toBe(false);
    expect((await fetch(`${m.base}/dir/lookup?volumeId=1`)).status).toBe(404);
  });

  it('is sent to every master of a list, each keeping its own topology', async () => {
    const CLUSTER = 'graceful-test-cluster-key-several-0123456';
    const [a, b] = [await master({ clusterKey: CLUSTER }), await master({ clusterKey: CLUSTER })];
    const v = await volume(`${a.address},${b.address}`, { clusterKey: CLUSTER });
    await Promise.all([waitForNodes(a, 1), waitForNodes(b, 1)]);
    await v.server.shutdown(0);
    // At once, not after missed pulses: both were told.
    expect(a.topology.nodes.has(v.url)).toBe(false);
    expect(b.topology.nodes.has(v.url)).toBe(false);
  });
});
