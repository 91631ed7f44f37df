/**
 * Issue 10 finding 6: a replicated write or delete whose fan-out fails must
 * leave no replica serving the state the client was told failed
 * (docs/decisions/0004-replication-rollback.md). A master in this process and
 * three volume servers as separate processes; a replica is "lost" with
 * SIGKILL, and every copy is then read directly: the primary, the replicas
 * still up, and the killed one once it is restarted on its own files.
 *
 * Before the fix, the primary kept and served the blob it had answered 502
 * for, and so did every replica that had taken it.
 */
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpStatusOf, ReadOnlyVolumeError } from '../../../shared/errors.ts';
import { formatFid } from '../../../shared/fid.ts';
import {
  assignOk,
  type ChildVolume,
  childVolume,
  keyOf,
  lookupOk,
  master,
  readBytes,
  send,
  stopAll,
  type TestMaster,
  type TestVolume,
  upload,
  uploadOk,
  volume,
  volumeIdOf,
  waitFor,
  waitForNodes,
} from './harness.ts';

/** Streamed, so it is spooled on the primary and streamed again to each replica. */
const LARGE_BYTES = 8 * 1024 * 1024;
/** Bytes per write of the client's streamed upload. */
const STREAM_CHUNK_BYTES = 256 * 1024;
const MAX_VOLUMES = 12;

let m: TestMaster;
let vols: ChildVolume[];

beforeAll(async () => {
  m = await master();
  vols = await Promise.all([0, 1, 2].map(() => childVolume(m.address, { max: MAX_VOLUMES })));
  await waitForNodes(m, 3);
});

afterAll(stopAll);

interface Placed {
  vid: number;
  primary: ChildVolume;
  /** The other holders, in lookup order. */
  replicas: ChildVolume[];
  /** A fid of the volume, not yet written. */
  fid(n: number): string;
}

/** Assigns a volume with `replication`; the assign's server is the primary (it takes the client's writes). */
async function place(replication: string): Promise<Placed> {
  const a = await assignOk(m.base, `replication=${replication}`);
  const vid = volumeIdOf(a.fid);
  const urls = (await lookupOk(m.base, String(vid))).locations.map((l) => l.url);
  const holders = urls.map((u) => vols.find((v) => v.url === u)!);
  const primary = holders.find((h) => h.url === a.url)!;
  return {
    vid,
    primary,
    replicas: holders.filter((h) => h !== primary),
    fid: (n) => formatFid({ volumeId: vid, key: keyOf(a.fid) + BigInt(n), cookie: 0x5eed0000 + n }),
  };
}

function datSize(v: ChildVolume, vid: number): number {
  return statSync(join(v.dir, `${vid}.dat`)).size;
}

/** Restarts a killed server on its port and files; waits until the master has all copies of `vid` again. */
async function restart(v: ChildVolume, vid: number, copies: number): Promise<ChildVolume> {
  const back = await childVolume(m.address, {
    dir: v.dir,
    port: Number(v.url.split(':')[1]),
    max: MAX_VOLUMES,
  });
  vols[vols.indexOf(v)] = back;
  await waitFor(`volume ${vid} to have ${copies} live copies again`, async () => {
    return (await lookupOk(m.base, String(vid))).locations.length === copies;
  });
  await waitForNodes(m, 3);
  return back;
}

/** Every server in `servers` answers 404 for `fid`. */
async function expectGone(servers: ChildVolume[], fid: string): Promise<void> {
  for (const s of servers)
    expect((await readBytes(`${s.base}/${fid}`)).status, `${fid} on ${s.url}`).toBe(404);
}

/** Every server in `servers` serves exactly `bytes` for `fid`. */
async function expectServes(servers: ChildVolume[], fid: string, bytes: Buffer): Promise<void> {
  for (const s of servers) {
    const got = await readBytes(`${s.base}/${fid}`);
    expect(got.status, `${fid} on ${s.url}`).toBe(200);
    expect(got.body.length, `${fid} on ${s.url}`).toBe(bytes.length);
    expect(got.body.equals(bytes), `${fid} on ${s.url}: byte-identical`).toBe(true);
  }
}

/** The client's answer to a write or delete whose fan-out failed: the replica's failure, and that it was taken back. */
async function expectFanOutFailed(res: Response): Promise<void> {
  const text = await res.text();
  // 502 is the fan-out failing; the 503 of "a copy is known dead" would mean no write was tried at all.
  expect(res.status, text).toBe(502);
  expect(JSON.parse(text).error).toMatch(/taken back/);
}

/** A PUT of a raw body written in STREAM_CHUNK_BYTES pieces, as a client streams a large file. */
function streamPut(url: string, data: Buffer): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        method: 'PUT',
        agent: false,
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': data.length },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => resolve(new Response(Buffer.concat(chunks), { status: res.statusCode! })));
      },
    );
    req.on('error', reject);
    let at = 0;
    const pump = () => {
      while (at < data.length) {
        const piece = data.subarray(at, at + STREAM_CHUNK_BYTES);
        at += piece.length;
        if (!req.write(piece)) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

describe('issue 10 finding 6: a failed fan-out leaves no replica serving the failed change', () => {
  it('(a) a write after a replica is SIGKILLed: 502, and every copy serves 404 (new fid) or the old bytes (overwrite)', async () => {
    const p = await place('001');
    const [replica] = p.replicas as [ChildVolume];
    const existing = p.fid(1);
    const old = randomBytes(20_000);
    await uploadOk(p.primary.url, existing, old);
    await expectServes([p.primary, replica], existing, old);

    await replica.kill();
    const sizeBefore = datSize(p.primary, p.vid);
    const fresh = p.fid(2);
    await expectFanOutFailed(await upload(p.primary.url, fresh, randomBytes(5_000)));
    await expectFanOutFailed(await upload(p.primary.url, existing, randomBytes(30_000)));
    // The primary did store both (then took them back): this is the rollback, not a refusal up front.
    expect(datSize(p.primary, p.vid)).toBeGreaterThan(sizeBefore + 35_000);
    await expectGone([p.primary], fresh);
    await expectServes([p.primary], existing, old);

    const back = await restart(replica, p.vid, 2);
    await expectGone([p.primary, back], fresh);
    await expectServes([p.primary, back], existing, old);
  });

  it('(b) a delete after a replica is SIGKILLed: 502, and every copy still serves the blob', async () => {
    const p = await place('001');
    const [replica] = p.replicas as [ChildVolume];
    const fid = p.fid(1);
    const bytes = randomBytes(12_345);
    await uploadOk(p.primary.url, fid, bytes);

    await replica.kill();
    await expectFanOutFailed(await fetch(`${p.primary.base}/${fid}`, { method: 'DELETE' }));
    await expectServes([p.primary], fid, bytes);

    const back = await restart(replica, p.vid, 2);
    await expectServes([p.primary, back], fid, bytes);
    // And the blob is whole, not a ghost: a delete now works everywhere.
    expect((await fetch(`${p.primary.base}/${fid}`, { method: 'DELETE' })).status).toBe(202);
    await expectGone([p.primary, back], fid);
  });

  it('(c) "002" with one replica dead: the replica that acknowledged is told to undo, and does', async () => {
    const p = await place('002');
    expect(p.replicas).toHaveLength(2);
    const [acker, victim] = p.replicas as [ChildVolume, ChildVolume];
    const existing = p.fid(1);
    const old = randomBytes(9_000);
    await uploadOk(p.primary.url, existing, old);
    await expectServes([p.primary, acker, victim], existing, old);

    await victim.kill();
    const ackerBefore = datSize(acker, p.vid);
    const fresh = p.fid(2);
    await expectFanOutFailed(await upload(p.primary.url, fresh, randomBytes(4_000)));
    await expectFanOutFailed(await upload(p.primary.url, existing, randomBytes(6_000)));
    await expectFanOutFailed(await fetch(`${p.primary.base}/${existing}`, { method: 'DELETE' }));
    // The live replica took all three (its .dat grew by both needles and more), and undid each.
    expect(datSize(acker, p.vid)).toBeGreaterThan(ackerBefore + 10_000);
    await expectGone([p.primary, acker], fresh);
    await expectServes([p.primary, acker], existing, old);

    const back = await restart(victim, p.vid, 3);
    await expectGone([p.primary, acker, back], fresh);
    await expectServes([p.primary, acker, back], existing, old);
  });

  it('(d) a primary SIGKILLed after a rollback serves the restored state when it restarts', async () => {
    const p = await place('001');
    const [replica] = p.replicas as [ChildVolume];
    const existing = p.fid(1);
    const deleted = p.fid(2);
    const old = randomBytes(15_000);
    const kept = randomBytes(3_000);
    await uploadOk(p.primary.url, existing, old);
    await uploadOk(p.primary.url, deleted, kept);

    await replica.kill();
    const fresh = p.fid(3);
    await expectFanOutFailed(await upload(p.primary.url, fresh, randomBytes(2_000)));
    await expectFanOutFailed(await upload(p.primary.url, existing, randomBytes(16_000)));
    await expectFanOutFailed(await fetch(`${p.primary.base}/${deleted}`, { method: 'DELETE' }));

    await p.primary.kill();
    const primary = await childVolume(m.address, {
      dir: p.primary.dir,
      port: Number(p.primary.url.split(':')[1]),
      max: MAX_VOLUMES,
    });
    vols[vols.indexOf(p.primary)] = primary;
    expect(primary.output()).not.toMatch(/indexed|truncated|dropped/); // nothing for recovery to repair
    await expectGone([primary], fresh);
    await expectServes([primary], existing, old);
    await expectServes([primary], deleted, kept);

    const back = await restart(replica, p.vid, 2);
    await expectGone([primary, back], fresh);
    await expectServes([primary, back], existing, old);
    await expectServes([primary, back], deleted, kept);
  });

  it('(e) a replica SIGKILLed mid-write of a streamed 8 MiB overwrite: every copy serves the old 8 MiB', async () => {
    const p = await place('001');
    const [replica] = p.replicas as [ChildVolume];
    const fid = p.fid(1);
    const old = randomBytes(LARGE_BYTES);
    expect((await streamPut(`${p.primary.base}/${fid}`, old)).status).toBe(201);
    await expectServes([p.primary, replica], fid, old);

    // Frozen first, so the primary's fan-out to it is under way (stuck on a full socket) when it dies.
    const sizeBefore = datSize(p.primary, p.vid);
    replica.child.kill('SIGSTOP');
    const pending = streamPut(`${p.primary.base}/${fid}`, randomBytes(LARGE_BYTES));
    try {
      // The primary has stored the new 8 MiB: it is now streaming them to the frozen replica.
      await waitFor(
        'the primary to store the new needle',
        () => datSize(p.primary, p.vid) >= sizeBefore + LARGE_BYTES,
      );
    } finally {
      await replica.kill();
    }
    await expectFanOutFailed(await pending);
    await expectServes([p.primary], fid, old);

    const back = await restart(replica, p.vid, 2);
    await expectServes([p.primary, back], fid, old);
  });

  it('(f) a write the primary refuses after the fan-out started (read-only there): its error, and the replica withdraws its copy', async () => {
    // The fan-out runs beside the primary's own append and fsync (decision 0004, "in parallel"),
    // so a replica may take a write the primary then fails: it must be undone there.
    const p = await place('001');
    const [replica] = p.replicas as [ChildVolume];
    const made = await fetch(`${p.primary.base}/admin/readonly?volume=${p.vid}`, { method: 'POST' });
    expect(made.status).toBe(200);
    const replicaBefore = datSize(replica, p.vid);
    const fid = p.fid(1);
    const res = await upload(p.primary.url, fid, randomBytes(7_000));
    const body = (await res.json()) as { code?: string };
    expect(res.status).toBe(httpStatusOf(new ReadOnlyVolumeError('')));
    expect(body.code).toBe(new ReadOnlyVolumeError('').code);
    // The replica did store it (its .dat grew by the needle and its undo), and serves none of it.
    expect(datSize(replica, p.vid)).toBeGreaterThan(replicaBefore + 7_000);
    await expectGone([p.primary, replica], fid);
    await fetch(`${p.primary.base}/admin/writable?volume=${p.vid}`, { method: 'POST' });
  });

  it('replica traffic: undo is a type=replicate request only, and a change id it has not seen is refused later', async () => {
    const p = await place('001');
    const [replica] = p.replicas as [ChildVolume];
    const fid = p.fid(1);
    const bytes = randomBytes(100);
    await uploadOk(p.primary.url, fid, bytes);
    // undo= without type=replicate is a client request: refused, nothing deleted.
    const plain = await fetch(`${replica.base}/${fid}?undo=AAAAAAAAAAAAAAAAAAAAAA`, { method: 'DELETE' });
    expect(plain.status).toBe(400);
    await expectServes([replica], fid, bytes);
    // An undo that overtakes its change (a slow replica): the change is then refused.
    const id = 'overtaken-change-0001';
    const undo = await fetch(`${replica.base}/${fid}?type=replicate&undo=${id}`, { method: 'DELETE' });
    expect(undo.status).toBe(200);
    expect(await undo.json()).toEqual({ undone: false });
    const late = await send(`${replica.base}/${fid}?type=replicate&change=${id}`, {
      method: 'PUT',
      body: 'late bytes',
    });
    expect(late.status).toBe(409);
    await expectServes([replica], fid, bytes);
  });
});

describe('issue 10 finding 6 in a secured cluster (signing key)', () => {
  it("the undo carries the client's token, so the replica that acknowledged takes it back", async () => {
    const key = 'rollback-test-signing-key';
    const sm = await master({ signingKey: key });
    const servers = await Promise.all([0, 1, 2].map(() => volume(sm.address, { signingKey: key })));
    await waitForNodes(sm, 3);
    const a = await assignOk(sm.base, 'replication=002');
    const auth = { Authorization: `Bearer ${a.auth}` };
    const old = randomBytes(4_000);
    expect((await upload(a.url, a.fid, old, 'x', auth)).status).toBe(201);
    const [acker, victim] = servers.filter((s) => s.url !== a.url) as [TestVolume, TestVolume];
    await victim.stop();

    const res = await upload(a.url, a.fid, randomBytes(5_000), 'x', auth);
    expect(res.status, await res.clone().text()).toBe(502);
    expect(((await res.json()) as { error: string }).error).toMatch(/taken back/);
    for (const s of [a.url, acker.url]) {
      const got = await readBytes(`${s}/${a.fid}`);
      expect(got.body.equals(old), `old bytes on ${s}`).toBe(true);
    }
  });
});
