/**
 * Issue 10 ("Trust"): one regression test per finding, each first doing what
 * the reproduction did against the old main, then checking the fixed
 * behaviour. Findings 6 (replication) and 9/10b (disk full, temp files) have
 * their own files: replication-rollback.test.ts, test/integration/volume/disk-full.test.ts.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MasterServer, startMaster } from '../../../origin/master/server.ts';
import { silentLogger } from '../../../origin/observability/log.ts';
import { clusterHeaders, sha256Hex } from '../../../origin/security/cluster-auth.ts';
import { startVolumeServer } from '../../../origin/volume/server.ts';
import type { AssignResponse } from '../../../shared/api.ts';
import { formatFid, parseFid } from '../../../shared/fid.ts';
import { captureLogs } from '../../helpers/log-capture.ts';
import {
  assignOk,
  json,
  master,
  readBytes,
  send,
  stopAll,
  type TestMaster,
  type TestVolume,
  tempDir,
  upload,
  volume,
  waitFor,
  waitForNodes,
} from './harness.ts';

const CLUSTER = 'trust-test-cluster-key';
const SIGNING = 'trust-test-signing-key';
const ADMIN = 'trust-test-admin-key';
const CLIENT = 'trust-test-client-key';
const asClient = { Authorization: `Bearer ${CLIENT}` };
const asAdmin = { Authorization: `Bearer ${ADMIN}` };

let m: TestMaster;
let v: TestVolume;
let dataDir: string;

beforeAll(async () => {
  m = await master({ clusterKey: CLUSTER, signingKey: SIGNING, adminKey: ADMIN, clientKeys: [CLIENT] });
  dataDir = tempDir('kelp-vol-');
  v = await volume(m.address, { clusterKey: CLUSTER, signingKey: SIGNING, adminKey: ADMIN, dir: dataDir });
  await waitForNodes(m, 1);
});

afterAll(stopAll);

/** A heartbeat body as a volume server sends it. */
function beat(over: Record<string, unknown> = {}): string {
  return JSON.stringify({
    url: '127.0.0.1:1',
    publicUrl: '127.0.0.1:1',
    dataCenter: 'dc',
    rack: 'r',
    // No free slot: growth must not pick a made-up node that nothing listens on.
    maxVolumeCount: 0,
    maxFileKey: '0',
    volumes: [],
    ...over,
  });
}

function postHeartbeat(body: string, key?: string, headers: Record<string, string> = {}): Promise<Response> {
  const signed = key ? clusterHeaders(key, 'POST', '/heartbeat', sha256Hex(body)) : {};
  return fetch(`${m.base}/heartbeat`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json', ...signed, ...headers },
  });
}

/** What the master shows of its topology: must not move when an outsider speaks. */
async function topologySnapshot(base = m.base): Promise<string> {
  const dir = await (await fetch(`${base}/dir/status`)).json();
  const vol = (await (await fetch(`${base}/vol/status`)).json()) as { Volumes: unknown[] };
  return JSON.stringify({ dir, vol: vol.Volumes });
}

describe('issue 10 finding 1: heartbeats need the cluster credential', () => {
  it('refuses an unsigned, a wrongly signed and a tampered heartbeat (401), and the topology does not move', async () => {
    const before = await topologySnapshot();
    // The reproduction: re-announce the live server with an attacker's publicUrl, and claim every volume.
    const hijack = beat({
      url: v.url,
      publicUrl: 'http://attacker.example:80',
      volumes: [{ ...volumeEntry(1), collection: '' }],
    });
    expect((await postHeartbeat(hijack)).status).toBe(401);
    expect((await postHeartbeat(hijack, 'not-the-cluster-key')).status).toBe(401);
    // A valid signature for another body.
    const signedForOther = clusterHeaders(CLUSTER, 'POST', '/heartbeat', sha256Hex(beat()));
    expect((await postHeartbeat(hijack, undefined, signedForOther)).status).toBe(401);
    // A valid signature for another path.
    const otherPath = clusterHeaders(CLUSTER, 'POST', '/heartbeat?x=1', sha256Hex(hijack));
    expect((await postHeartbeat(hijack, undefined, otherPath)).status).toBe(401);
    // A signature from long ago (a captured request replayed later).
    const old = clusterHeaders(CLUSTER, 'POST', '/heartbeat', sha256Hex(hijack), Date.now() - 3_600_000);
    expect((await postHeartbeat(hijack, undefined, old)).status).toBe(401);
    expect(await topologySnapshot()).toBe(before);
    expect(m.topology.nodes.get(v.url)?.publicUrl).toBe(v.url);
  });

  it('takes a signed heartbeat of a cluster member', async () => {
    const res = await postHeartbeat(beat({ url: '127.0.0.1:2', publicUrl: '127.0.0.1:2' }), CLUSTER);
    expect(res.status, await res.clone().text()).toBe(200);
    expect(m.topology.nodes.has('127.0.0.1:2')).toBe(true);
  });
});

function volumeEntry(id: number) {
  return {
    id,
    collection: '',
    size: 0,
    fileCount: 0,
    deleteCount: 0,
    deletedByteCount: 0,
    readOnly: false,
    replicaPlacement: '000',
    ttl: '',
    compactRevision: 0,
    readsPerDay: 0,
    modifiedAt: 0,
  };
}

describe('cluster key rotation', () => {
  it('a master given the previous key takes beats signed with either key, and no other', async () => {
    const rotating = await master({ clusterKey: 'new-key', previousClusterKey: CLUSTER });
    const post = (key: string, port: number) => {
      const body = beat({ url: `127.0.0.1:${port}`, publicUrl: `127.0.0.1:${port}` });
      return fetch(`${rotating.base}/heartbeat`, {
        method: 'POST',
        body,
        headers: clusterHeaders(key, 'POST', '/heartbeat', sha256Hex(body)),
      });
    };
    expect((await post('new-key', 11)).status).toBe(200);
    expect((await post(CLUSTER, 12)).status).toBe(200);
    expect((await post('third-key', 13)).status).toBe(401);
  });
});

describe('issue 10 finding 2: the sequencer stays inside the key space', () => {
  it('refuses maxFileKey past 2^64-1 or of 201 digits (400) and ignores 2^64-1 itself; assigns go on, also after a restart', async () => {
    const mdir = tempDir('kelp-mdir-');
    const own = await master({ clusterKey: CLUSTER, mdir });
    const post = (maxFileKey: string) => {
      const body = beat({ url: '127.0.0.1:3', publicUrl: '127.0.0.1:3', maxFileKey });
      return fetch(`${own.base}/heartbeat`, {
        method: 'POST',
        body,
        headers: clusterHeaders(CLUSTER, 'POST', '/heartbeat', sha256Hex(body)),
      });
    };
    expect((await post('9'.repeat(201))).status).toBe(400);
    expect((await post((2n ** 64n).toString())).status).toBe(400);
    // Inside u64 but the end of the key space: the beat is taken, the key is not.
    expect((await post((2n ** 64n - 1n).toString())).status).toBe(200);
    expect(own.sequencer.peek()).toBeLessThan(2n ** 32n);
    expect(own.logs.join('\n')).toMatch(/ignored maxFileKey 18446744073709551615/);
    await own.close();
    const again = await master({ clusterKey: CLUSTER, mdir });
    expect(again.sequencer.peek()).toBeLessThan(2n ** 32n);
  });

  it('an upload to a made-up high key does not drag the counter along (open cluster)', async () => {
    const open = await master();
    const ov = await volume(open.address);
    await waitForNodes(open, 1);
    const a = await assignOk(open.base);
    const made = formatFid({ volumeId: parseFid(a.fid).volumeId, key: 2n ** 62n, cookie: 0x12345678 });
    expect((await upload(ov.url, made, randomBytes(10))).status).toBe(201);
    // The next heartbeats carry 2^62; the master keeps its own counter.
    await waitFor('the logged refusal', () =>
      open.logs.some((l) => /ignored maxFileKey 4611686018427387904/.test(l)),
    );
    const next = await assignOk(open.base);
    expect(parseFid(next.fid).key).toBeLessThan(2n ** 32n);
  });
});

describe('issue 10 finding 3: collection names never become paths', () => {
  it('refuses ../../etc, over-long and NUL names on /dir/assign and /admin/assign_volume (400), creates no file and burns no volume id', async () => {
    const status = async () =>
      (await (await fetch(`${m.base}/cluster/status`)).json()) as { MaxVolumeId: number };
    const maxBefore = (await status()).MaxVolumeId;
    const outside = join(dirname(dataDir), 'etc_');
    for (const name of ['../../etc', 'a/b', 'x'.repeat(65), 'nul\u0000byte', '.hidden', 'a b']) {
      const q = new URLSearchParams({ collection: name });
      const res = await fetch(`${m.base}/dir/assign?${q}`, { headers: asClient });
      expect(res.status, `assign collection=${JSON.stringify(name)}`).toBe(400);
      expect(((await res.json()) as { code: string }).code).toBe('invalid_param');
      q.set('volume', '999');
      const admin = await fetch(`${v.base}/admin/assign_volume?${q}`, { method: 'POST', headers: asAdmin });
      expect(admin.status, `assign_volume collection=${JSON.stringify(name)}`).toBe(400);
    }
    expect((await status()).MaxVolumeId).toBe(maxBefore);
    expect(readdirSync(dirname(dataDir)).some((f) => f.startsWith('etc'))).toBe(false);
    expect(existsSync(`${outside}1.dat`)).toBe(false);
    expect(readdirSync(dataDir).filter((f) => f.includes('999'))).toEqual([]);
  });

  it('takes letters, digits, "_" and "-" up to 64, and the volume is found again after a restart', async () => {
    const own = await master();
    const dir = tempDir('kelp-vol-');
    const first = await volume(own.address, { dir });
    await waitForNodes(own, 1);
    const name = `Photos_2026-${'x'.repeat(52)}`;
    const a = await assignOk(own.base, `collection=${name}`);
    const data = randomBytes(500);
    expect((await upload(a.url, a.fid, data, 'p.bin')).status).toBe(201);
    expect(readdirSync(dir).some((f) => f.startsWith(`${name}_`) && f.endsWith('.dat'))).toBe(true);
    await first.stop();
    const again = await volume(own.address, { dir });
    expect((await readBytes(`${again.url}/${a.fid}`)).body.equals(data)).toBe(true);
  });
});

describe('issue 10 finding 4: write and read tokens', () => {
  it('hands a token from /dir/lookup only to an authenticated client, and never for a key not yet assigned', async () => {
    const a = await assignOk(m.base, '', asClient);
    expect(
      (await upload(a.url, a.fid, randomBytes(10), 'x', { Authorization: `Bearer ${a.auth}` })).status,
    ).toBe(201);
    const anonymous = await fetch(`${m.base}/dir/lookup?fileId=${a.fid}`);
    expect(anonymous.status).toBe(200);
    expect(anonymous.headers.get('authorization')).toBeNull();
    await anonymous.text();
    const readAnon = await fetch(`${m.base}/dir/lookup?fileId=${a.fid}&read=yes`);
    expect(readAnon.headers.get('authorization')).toBeNull();
    await readAnon.text();
    // With the key: a token for an assigned fid, none for one past the sequencer.
    const ok = await fetch(`${m.base}/dir/lookup?fileId=${a.fid}`, { headers: asClient });
    expect(ok.headers.get('authorization')).toMatch(/^Bearer /);
    await ok.text();
    const future = formatFid({ ...parseFid(a.fid), key: parseFid(a.fid).key + 10n ** 9n });
    const never = await fetch(`${m.base}/dir/lookup?fileId=${future}`, { headers: asClient });
    expect(never.status).toBe(404);
    expect(never.headers.get('authorization')).toBeNull();
    await never.text();
  });

  it('assign and /submit need the client credential (401); a wrong key is refused', async () => {
    expect((await fetch(`${m.base}/dir/assign`)).status).toBe(401);
    expect((await fetch(`${m.base}/dir/assign`, { headers: { Authorization: 'Bearer nope' } })).status).toBe(
      401,
    );
    const form = new FormData();
    form.append('file', new Blob([new Uint8Array([1, 2, 3])]), 'three.bin');
    const anon = await send(`${m.base}/submit`, { method: 'POST', body: form });
    expect(anon.status).toBe(401);
    const ok = await fetch(`${m.base}/submit`, { method: 'POST', body: form, headers: asClient });
    expect(ok.status, await ok.clone().text()).toBe(201);
  });

  it('a token for fid K covers K_1..K_(count-1) of its batch, not K_count nor a lone K_1', async () => {
    const batch = await assignOk(m.base, 'count=3', asClient);
    const auth = { Authorization: `Bearer ${batch.auth}` };
    expect((await upload(batch.url, `${batch.fid}_2`, randomBytes(10), 'x', auth)).status).toBe(201);
    expect((await upload(batch.url, `${batch.fid}_3`, randomBytes(10), 'x', auth)).status).toBe(401);
    const single = await assignOk(m.base, '', asClient);
    const one = { Authorization: `Bearer ${single.auth}` };
    expect((await upload(single.url, `${single.fid}_1`, randomBytes(10), 'x', one)).status).toBe(401);
    expect((await upload(single.url, single.fid, randomBytes(10), 'x', one)).status).toBe(201);
  });
});

describe('issue 10 finding 5: admin calls need the admin credential and change state only on POST/DELETE', () => {
  it('refuses every volume-server admin call without a credential (401) and takes the admin key or a cluster signature', async () => {
    const a = await assignOk(m.base, '', asClient);
    const vid = parseFid(a.fid).volumeId;
    const calls = [
      `/admin/readonly?volume=${vid}`,
      `/admin/writable?volume=${vid}`,
      `/admin/vacuum?volume=${vid}`,
      '/admin/assign_volume?volume=777',
      '/admin/delete_collection?collection=nothing',
      `/admin/tier/upload?volume=${vid}&backend=local.default`,
    ];
    for (const path of calls) {
      const res = await fetch(`${v.base}${path}`, { method: 'POST' });
      expect(res.status, path).toBe(401);
      await res.text();
      const wrong = await fetch(`${v.base}${path}`, {
        method: 'POST',
        headers: { Authorization: 'Bearer x' },
      });
      expect(wrong.status, path).toBe(401);
      await wrong.text();
    }
    expect(v.server.store.get(vid).readOnly).toBe(false);
    const byAdmin = await fetch(`${v.base}/admin/writable?volume=${vid}`, {
      method: 'POST',
      headers: asAdmin,
    });
    expect(byAdmin.status).toBe(200);
    await byAdmin.text();
    const path = `/admin/writable?volume=${vid}`;
    const byMember = await fetch(`${v.base}${path}`, {
      method: 'POST',
      headers: clusterHeaders(CLUSTER, 'POST', path),
    });
    expect(byMember.status).toBe(200);
    await byMember.text();
  });

  it('refuses /vol/grow and /col/delete without the admin key, and on GET', async () => {
    expect((await fetch(`${m.base}/vol/grow?count=1`, { method: 'POST' })).status).toBe(401);
    expect((await fetch(`${m.base}/vol/grow?count=1`, { headers: asAdmin })).status).toBe(405);
    expect((await fetch(`${m.base}/col/delete?collection=c`, { headers: asAdmin })).status).toBe(405);
    expect((await fetch(`${m.base}/col/delete?collection=c`, { method: 'DELETE' })).status).toBe(401);
    const grown = await fetch(`${m.base}/vol/grow?count=1&collection=grown`, {
      method: 'POST',
      headers: asAdmin,
    });
    expect(grown.status, await grown.clone().text()).toBe(200);
    const gone = await fetch(`${m.base}/col/delete?collection=grown`, { method: 'DELETE', headers: asAdmin });
    expect(gone.status).toBe(204);
  });
});

describe('issue 10 finding 6: type=replicate only from cluster members', () => {
  it('refuses an unsigned type=replicate write or delete (401) and leaves the blob as it was', async () => {
    const a = await assignOk(m.base, '', asClient);
    const auth = { Authorization: `Bearer ${a.auth}` };
    const data = randomBytes(200);
    expect((await upload(a.url, a.fid, data, 'x', auth)).status).toBe(201);
    const del = await fetch(`${v.base}/${a.fid}?type=replicate`, { method: 'DELETE', headers: auth });
    expect(del.status).toBe(401);
    await del.text();
    const put = await send(`${v.base}/${a.fid}?type=replicate`, {
      method: 'PUT',
      body: 'evil',
      headers: auth,
    });
    expect(put.status).toBe(401);
    expect((await readBytes(`${v.url}/${a.fid}`)).body.equals(data)).toBe(true);
  });
});

describe('replication with a cluster key', () => {
  it('signed fan-out carries small and spooled writes and a delete of fid_N to every replica', async () => {
    const keys = { clusterKey: CLUSTER, signingKey: SIGNING };
    const rm = await master({ ...keys, clientKeys: [CLIENT] });
    const replicas = await Promise.all([0, 1].map(() => volume(rm.address, keys)));
    await waitForNodes(rm, 2);
    const a = await assignOk(rm.base, 'replication=001&count=3', asClient);
    const auth = { Authorization: `Bearer ${a.auth}` };
    const small = randomBytes(1000);
    const large = randomBytes(3 * 1024 * 1024);
    expect((await upload(a.url, `${a.fid}_1`, small, 's', auth)).status).toBe(201);
    const big = await send(`http://${a.url}/${a.fid}_2`, { method: 'PUT', body: large, headers: auth });
    expect(big.status, await big.clone().text()).toBe(201);
    for (const r of replicas) {
      expect((await readBytes(`${r.url}/${a.fid}_1`)).body.equals(small)).toBe(true);
      expect((await readBytes(`${r.url}/${a.fid}_2`)).body.equals(large)).toBe(true);
    }
    const del = await fetch(`http://${a.url}/${a.fid}_1`, { method: 'DELETE', headers: auth });
    expect(del.status, await del.clone().text()).toBe(202);
    for (const r of replicas) expect((await readBytes(`${r.url}/${a.fid}_1`)).status).toBe(404);
  });
});

describe('issue 10 finding 7: bounded membership', () => {
  it('refuses a node with more than 4096 volumes or a huge maxVolumeCount (400), even signed', async () => {
    const many = beat({
      url: '127.0.0.1:4',
      volumes: Array.from({ length: 4097 }, (_, i) => volumeEntry(i + 1)),
    });
    expect((await postHeartbeat(many, CLUSTER)).status).toBe(400);
    expect((await postHeartbeat(beat({ url: '127.0.0.1:4', maxVolumeCount: 10 ** 6 }), CLUSTER)).status).toBe(
      400,
    );
    expect(m.topology.nodes.has('127.0.0.1:4')).toBe(false);
  });

  it('forgets a dead node after FORGET_AFTER_PULSES pulses, not 100', async () => {
    let now = Date.now();
    const clocked = await startMaster({
      host: '127.0.0.1',
      port: 0,
      mdir: tempDir('kelp-mdir-'),
      pulseSeconds: 1,
      now: () => now,
      logger: silentLogger(),
    });
    try {
      const res = await fetch(`http://${clocked.address}/heartbeat`, {
        method: 'POST',
        body: beat({ url: '127.0.0.1:5' }),
      });
      expect(res.status).toBe(200);
      expect(clocked.topology.nodes.has('127.0.0.1:5')).toBe(true);
      now += 13_000;
      await waitFor('the dead node to be forgotten', () => !clocked.topology.nodes.has('127.0.0.1:5'), 5_000);
    } finally {
      await clocked.close();
    }
  });
});

describe('issue 10 finding 8: malformed heartbeats', () => {
  it('answers 400 (never 500) to volumes:[null], bad urls and string counts; Max stays a number', async () => {
    const bad = [
      beat({ volumes: [null] }),
      beat({ url: '' }),
      beat({ url: 'x' }),
      beat({ url: 'host:99999' }),
      beat({ url: 'a/b:80' }),
      beat({ publicUrl: 'http://h:1/path' }),
      beat({ publicUrl: 'javascript:alert(1)' }),
      beat({ maxVolumeCount: '8' }),
      beat({ volumes: [{ ...volumeEntry(1), collection: '../x' }] }),
      beat({ volumes: [volumeEntry(1), volumeEntry(1)] }),
      '[]',
      'null',
    ];
    for (const body of bad) {
      const res = await postHeartbeat(body, CLUSTER);
      expect(res.status, body.slice(0, 80)).toBe(400);
      await res.text();
    }
    const status = (await (await fetch(`${m.base}/dir/status`)).json()) as { Topology: { Max: unknown } };
    expect(typeof status.Topology.Max).toBe('number');
  });
});

describe('issue 10 finding 10: Authorization scheme is case-insensitive', () => {
  it('takes "bearer" and "BEARER" for write tokens and client keys', async () => {
    const a = await json<AssignResponse>(
      await fetch(`${m.base}/dir/assign`, { headers: { Authorization: `bearer ${CLIENT}` } }),
      200,
    );
    const res = await upload(a.url, a.fid, randomBytes(10), 'x', { Authorization: `BEARER ${a.auth}` });
    expect(res.status).toBe(201);
  });
});

describe('secure by default', () => {
  it('a master or volume server on a non-loopback address without credentials refuses to start, naming the keys', async () => {
    await expect(
      startMaster({ host: '0.0.0.0', port: 0, mdir: tempDir(), logger: silentLogger() }),
    ).rejects.toThrow(/KELP_CLUSTER_KEY, KELP_JWT_SIGNING_KEY, KELP_CLIENT_KEYS or --whiteList.*--insecure/);
    await expect(
      startVolumeServer({
        host: '0.0.0.0',
        port: 0,
        locations: [{ dir: tempDir(), maxVolumes: 1 }],
        logger: silentLogger(),
      }),
    ).rejects.toThrow(/KELP_CLUSTER_KEY, KELP_JWT_SIGNING_KEY/);
  });

  it('with --insecure it starts and says INSECURE', async () => {
    const logs: string[] = [];
    let started: MasterServer | undefined;
    try {
      started = await startMaster({
        host: '0.0.0.0',
        port: 0,
        mdir: tempDir(),
        insecure: true,
        logger: captureLogs(logs).logger,
      });
      expect(logs.join('\n')).toMatch(/INSECURE/);
    } finally {
      await started?.close();
    }
  });

  it('no secret appears in logs, status pages or error bodies', async () => {
    const pages = await Promise.all(
      ['/dir/status', '/vol/status', '/cluster/status', '/dir/assign', '/vol/grow'].map(async (p) =>
        (await fetch(`${m.base}${p}`, { method: p === '/vol/grow' ? 'POST' : 'GET' })).text(),
      ),
    );
    pages.push(await (await fetch(`${v.base}/status`)).text());
    pages.push(await (await fetch(`${v.base}/admin/readonly?volume=1`, { method: 'POST' })).text());
    const all = [...pages, ...m.logs].join('\n');
    for (const secret of [CLUSTER, SIGNING, ADMIN, CLIENT]) expect(all).not.toContain(secret);
  });
});
