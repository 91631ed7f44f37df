/**
 * The master's other endpoints against three in-process volume servers in
 * two data centers: `/submit`, `/dir/status`, `/vol/status`,
 * `/cluster/status`, `/vol/grow` (with placement), `GET /<fid>` redirects,
 * `/col/delete`, and the dataCenter / rack filters of `/dir/assign`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../origin/observability/log.ts';
import { heartbeatOf } from '../../../origin/volume/heartbeat.ts';
import type { SubmitResponse } from '../../../shared/api.ts';
import { formatFid } from '../../../shared/fid.ts';
import {
  assignOk,
  json,
  keyOf,
  lookupOk,
  master,
  readBytes,
  stopAll,
  type TestMaster,
  type TestVolume,
  uploadOk,
  volume,
  volumeIdOf,
  waitForNodes,
} from './harness.ts';

let m: TestMaster;
/** dc1/r1, dc1/r2, dc2/r1 */
let v1: TestVolume;
let v2: TestVolume;
let v3: TestVolume;

beforeAll(async () => {
  m = await master();
  [v1, v2, v3] = await Promise.all([
    volume(m.address, { dataCenter: 'dc1', rack: 'r1', max: 20 }),
    volume(m.address, { dataCenter: 'dc1', rack: 'r2', max: 20 }),
    volume(m.address, { dataCenter: 'dc2', rack: 'r1', max: 20 }),
  ]);
  await waitForNodes(m, 3);
});

afterAll(stopAll);

interface VolStatus {
  Version: string;
  Volumes: Array<{
    id: number;
    collection: string;
    replicaPlacement: string;
    size: number;
    locations: string[];
  }>;
}

interface DirStatus {
  Version: string;
  Topology: {
    Max: number;
    Free: number;
    DataCenters: Array<{
      Id: string;
      Racks: Array<{
        Id: string;
        DataNodes: Array<{
          Url: string;
          PublicUrl: string;
          Volumes: number;
          Max: number;
          Free: number;
          Alive: boolean;
        }>;
      }>;
    }>;
  };
}

const volStatus = async () => json<VolStatus>(await fetch(`${m.base}/vol/status`), 200);
const serverVolumes = async (v: TestVolume) =>
  (await json<{ Volumes: Array<{ id: number; collection: string }> }>(await fetch(`${v.base}/status`), 200))
    .Volumes;
const nodeOf = (url: string) => [v1, v2, v3].find((v) => v.url === url)!;
const dcOf = (url: string) => (nodeOf(url) === v3 ? 'dc2' : 'dc1');
const rackOf = (url: string) => (nodeOf(url) === v2 ? 'r2' : 'r1');

describe('master API', () => {
  it('/submit stores an upload through the master: 201 {fileName, fid, fileUrl, size, eTag}', async () => {
    const data = Buffer.from('{"hello":"kelp"}\n'.repeat(200));
    const form = new FormData();
    form.append('file', new Blob([data], { type: 'application/json' }), 'hello.json');
    const res = await fetch(`${m.base}/submit`, { method: 'POST', body: form });
    const out = await json<SubmitResponse>(res, 201);
    expect(out.fileName).toBe('hello.json');
    expect(out.size).toBe(data.length);
    expect(out.eTag).toMatch(/^[0-9a-f]{8}$/);
    expect(out.fileUrl).toBe(`${(await lookupOk(m.base, out.fid)).locations[0]!.publicUrl}/${out.fid}`);
    const back = await fetch(`http://${out.fileUrl}`);
    expect(back.status).toBe(200);
    expect(Buffer.from(await back.arrayBuffer()).equals(data)).toBe(true);
    expect(back.headers.get('etag')).toBe(`"${out.eTag}"`);
    expect(back.headers.get('content-type')).toMatch(/^application\/json/);

    // Not a multipart POST: refused, nothing assigned.
    expect((await fetch(`${m.base}/submit`)).status).toBe(405);
  });

  it('/submit passes a small body through whole: its name, pair headers and Content-MD5 reach the volume server', async () => {
    const data = Buffer.from('passed through\n');
    const form = () => {
      const f = new FormData();
      f.append('file', new Blob([data], { type: 'text/plain' }), 'p.txt');
      return f;
    };
    const md5 = createHash('md5').update(data).digest('base64');
    const res = await fetch(`${m.base}/submit`, {
      method: 'POST',
      body: form(),
      headers: { 'Kelp-Color': 'blue', 'Content-MD5': md5 },
    });
    const out = await json<SubmitResponse>(res, 201);
    expect(out.fileName).toBe('p.txt');
    expect(out.size).toBe(data.length);
    const back = await fetch(`http://${out.fileUrl}`);
    expect(Buffer.from(await back.arrayBuffer()).equals(data)).toBe(true);
    expect(back.headers.get('kelp-color')).toBe('blue');
    // A raw (not multipart) body: the volume server checks the Content-MD5 the client sent
    // the master, and a wrong one is refused.
    const wrong = createHash('md5').update('other bytes').digest('base64');
    const raw = (digest: string) =>
      fetch(`${m.base}/submit`, {
        method: 'POST',
        body: data,
        headers: { 'Content-MD5': digest, 'Content-Disposition': 'attachment; filename="r.txt"' },
      });
    // The volume server's refusal is the client's fault: its 400 is passed on (a 502 invites retries).
    const refused = await raw(wrong);
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { error: string }).error).toMatch(/Content-MD5/);
    const ok = await json<SubmitResponse>(await raw(md5), 201);
    expect(ok.fileName).toBe('r.txt');
  });

  it('/submit checks Content-MD5 on multipart and on large (spooled) bodies too, and passes client faults on as 4xx', async () => {
    // Multipart bodies' Content-MD5 went unchecked, and a body over the pass-through size lost it on the
    // way to the volume server: both were stored (201) with the client's checksum saying otherwise.
    const large = randomBytes(1536 * 1024);
    for (const data of [Buffer.from('small multipart\n'), large]) {
      const right = createHash('md5').update(data).digest('base64');
      const wrong = createHash('md5').update('other bytes').digest('base64');
      const multipart = (digest: string) => {
        const f = new FormData();
        f.append('file', new Blob([data]), 'm.bin');
        return fetch(`${m.base}/submit`, { method: 'POST', body: f, headers: { 'Content-MD5': digest } });
      };
      const raw = (digest: string) =>
        fetch(`${m.base}/submit`, { method: 'POST', body: data, headers: { 'Content-MD5': digest } });
      for (const [what, send] of [
        ['multipart', multipart],
        ['raw', raw],
      ] as const) {
        const refused = await send(wrong);
        expect(refused.status, `${what} ${data.length}`).toBe(400);
        expect(((await refused.json()) as { error: string }).error).toMatch(/Content-MD5/);
        const stored = await json<SubmitResponse>(await send(right), 201);
        const back = await fetch(`http://${stored.fileUrl}`);
        expect(Buffer.from(await back.arrayBuffer()).equals(data), `${what} ${data.length}`).toBe(true);
      }
    }
    const br = await fetch(`${m.base}/submit`, {
      method: 'POST',
      body: 'x'.repeat(100),
      headers: { 'Content-Encoding': 'br' },
    });
    expect(br.status).toBe(415);
    const notGzip = await fetch(`${m.base}/submit`, {
      method: 'POST',
      body: 'x'.repeat(100),
      headers: { 'Content-Encoding': 'gzip' },
    });
    expect(notGzip.status).toBe(400);
  });

  it('/dir/status and /cluster/status describe the topology', async () => {
    const dir = await json<DirStatus>(await fetch(`${m.base}/dir/status`), 200);
    expect(dir.Version).toBeTruthy();
    expect(dir.Topology.Max).toBe(60);
    expect(dir.Topology.Free).toBeLessThanOrEqual(60);
    const dcs = Object.fromEntries(
      dir.Topology.DataCenters.map((dc) => [
        dc.Id,
        Object.fromEntries(dc.Racks.map((r) => [r.Id, r.DataNodes.map((n) => n.Url)])),
      ]),
    );
    expect(dcs).toEqual({ dc1: { r1: [v1.url], r2: [v2.url] }, dc2: { r1: [v3.url] } });
    const node = dir.Topology.DataCenters[0]!.Racks[0]!.DataNodes[0]!;
    expect(node).toMatchObject({ Max: 20, Alive: true });
    expect(node.PublicUrl).toBe(node.Url);
    expect(node.Free).toBe(node.Max - node.Volumes);

    const cluster = await json<{ IsLeader: boolean; Leader: string; Peers: string[]; MaxVolumeId: number }>(
      await fetch(`${m.base}/cluster/status`),
      200,
    );
    expect(cluster).toMatchObject({ IsLeader: true, Leader: m.address, Peers: [] });
    expect(cluster.MaxVolumeId).toBe(Math.max(0, ...(await volStatus()).Volumes.map((v) => v.id)));
  });

  it('/vol/grow?count=2 grows two volumes, placed as the replication asks', async () => {
    const before = new Set((await volStatus()).Volumes.map((v) => v.id));
    const grown = await json<{ count: number; volumeIds: number[] }>(
      await fetch(`${m.base}/vol/grow?count=2&collection=grown`, { method: 'POST' }),
      200,
    );
    expect(grown.count).toBe(2);
    const after = await volStatus();
    expect(after.Version).toBeTruthy();
    const added = after.Volumes.filter((v) => !before.has(v.id));
    expect(added.map((v) => v.id).sort()).toEqual([...grown.volumeIds].sort());
    for (const v of added) {
      expect(v).toMatchObject({ collection: 'grown', replicaPlacement: '000' });
      expect(v.locations).toHaveLength(1);
      // The volume server really has it.
      expect((await serverVolumes(nodeOf(v.locations[0]!))).map((x) => x.id)).toContain(v.id);
    }

    // "010": another rack of the same data center. "100": another data center.
    for (const [replication, check] of [
      ['010', (a: string, b: string) => dcOf(a) === dcOf(b) && rackOf(a) !== rackOf(b)],
      ['100', (a: string, b: string) => dcOf(a) !== dcOf(b)],
    ] as const) {
      const g = await json<{ count: number; volumeIds: number[] }>(
        await fetch(`${m.base}/vol/grow?count=2&replication=${replication}`, { method: 'POST' }),
        200,
      );
      expect(g.count).toBe(2);
      for (const id of g.volumeIds) {
        const locs = (await lookupOk(m.base, String(id))).locations.map((l) => l.url);
        expect(locs, `volume ${id} (${replication})`).toHaveLength(2);
        expect(check(locs[0]!, locs[1]!), `${replication} placement of ${locs.join(' + ')}`).toBe(true);
      }
    }

    // dataCenter, rack and dataNode place a grown volume as they filter an assign.
    for (const [filter, where] of [
      ['dataCenter=dc2', v3.url],
      ['dataCenter=dc1&rack=r2', v2.url],
      [`dataNode=${v1.url}`, v1.url],
    ] as const) {
      const g = await json<{ volumeIds: number[] }>(
        await fetch(`${m.base}/vol/grow?count=1&collection=placed&${filter}`, { method: 'POST' }),
        200,
      );
      const locs = (await lookupOk(m.base, String(g.volumeIds[0]))).locations.map((l) => l.url);
      expect(locs, filter).toEqual([where]);
    }

    // Placement nobody can meet (three data centers, three nodes in one rack): 406, clearly.
    for (const replication of ['200', '002']) {
      const res = await fetch(`${m.base}/dir/assign?replication=${replication}`);
      const body = await json<{ error: string }>(res, 406);
      expect(body.error).toContain(replication);
    }
  });

  it('freshly grown replicated volumes are whole at once: immediate writes reach both copies', async () => {
    // Heartbeats built just before the growth, delivered just after it (as a pulse in flight
    // would be): they must not hide the new volumes from lookups.
    const stale = [v1, v2, v3].map((v) =>
      JSON.stringify(
        heartbeatOf({
          master: m.address,
          store: v.server.store,
          url: v.url,
          publicUrl: v.url,
          dataCenter: dcOf(v.url),
          rack: rackOf(v.url),
          pulseSeconds: 1,
          log: silentLogger(),
        }),
      ),
    );
    const g = await json<{ volumeIds: number[] }>(
      await fetch(`${m.base}/vol/grow?count=4&replication=010&collection=fresh`, { method: 'POST' }),
      200,
    );
    expect(g.volumeIds).toHaveLength(4);
    for (const body of stale)
      expect((await fetch(`${m.base}/heartbeat`, { method: 'POST', body })).status).toBe(200);
    const a = await assignOk(m.base, 'replication=010&collection=fresh');
    expect(g.volumeIds).toContain(volumeIdOf(a.fid));
    for (const id of g.volumeIds) {
      // No waiting for heartbeats: the master knows both copies as soon as /vol/grow answers.
      const locs = (await lookupOk(m.base, String(id))).locations;
      expect(locs, `volume ${id}`).toHaveLength(2);
      const fid = formatFid({ volumeId: id, key: keyOf(a.fid), cookie: 0x01020304 });
      const data = randomBytes(50);
      await uploadOk(locs[0]!.url, fid, data);
      for (const l of locs) expect((await readBytes(`${l.url}/${fid}`)).body.equals(data)).toBe(true);
    }
  });

  it('GET /<fid> on the master redirects (308) to a server holding it', async () => {
    const a = await assignOk(m.base, 'replication=100');
    const data = randomBytes(777);
    await uploadOk(a.url, a.fid, data);
    const holders = (await lookupOk(m.base, a.fid)).locations.map((l) => `http://${l.publicUrl}/${a.fid}`);
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${m.base}/${a.fid}`, { redirect: 'manual' });
      expect(res.status).toBe(308);
      expect(holders).toContain(res.headers.get('location'));
    }
    // Other URL forms keep their path.
    const [vid, rest] = a.fid.split(',');
    const alt = await fetch(`${m.base}/${vid}/${rest}/name.bin`, { redirect: 'manual' });
    expect(alt.status).toBe(308);
    expect(alt.headers.get('location')).toMatch(new RegExp(`/${vid}/${rest}/name\\.bin$`));
    // Followed, the redirect serves the blob.
    const followed = await fetch(`${m.base}/${a.fid}`);
    expect(Buffer.from(await followed.arrayBuffer()).equals(data)).toBe(true);
    // A volume nobody holds: 404, no redirect.
    expect((await fetch(`${m.base}/99999,01637037d6`, { redirect: 'manual' })).status).toBe(404);
  });

  it('/col/delete removes the collection from the master and from every volume server', async () => {
    const a = await assignOk(m.base, 'collection=x');
    await uploadOk(a.url, a.fid, randomBytes(100));
    const keep = await assignOk(m.base, 'collection=y');
    await uploadOk(keep.url, keep.fid, randomBytes(100));
    const inX = async () => {
      const servers = await Promise.all([v1, v2, v3].map(serverVolumes));
      return servers.flat().filter((v) => v.collection === 'x').length;
    };
    expect(await inX()).toBeGreaterThan(0);

    // A GET never deletes (issue 10 finding 5): a crawler or a prefetch must not wipe a collection.
    expect((await fetch(`${m.base}/col/delete?collection=x`)).status).toBe(405);
    expect(await inX()).toBeGreaterThan(0);
    const res = await fetch(`${m.base}/col/delete?collection=x`, { method: 'POST' });
    expect(res.status).toBe(204);
    expect(await inX()).toBe(0);
    expect((await volStatus()).Volumes.filter((v) => v.collection === 'x')).toEqual([]);
    expect((await fetch(`${m.base}/dir/lookup?volumeId=${volumeIdOf(a.fid)}`)).status).toBe(410);
    expect((await readBytes(`${a.url}/${a.fid}`)).status).toBe(404);
    // Another collection is untouched.
    expect((await readBytes(`${keep.url}/${keep.fid}`)).status).toBe(200);
    // And x does not come back with the next heartbeats.
    await new Promise((r) => setTimeout(r, 1_500));
    expect((await volStatus()).Volumes.filter((v) => v.collection === 'x')).toEqual([]);
    expect((await fetch(`${m.base}/col/delete`, { method: 'POST' })).status).toBe(400);
  });

  it('/dir/assign honours dataCenter and rack, and refuses an unknown data center (400)', async () => {
    for (let i = 0; i < 5; i++) {
      expect((await assignOk(m.base, 'dataCenter=dc2')).url).toBe(v3.url);
      expect([v1.url, v2.url]).toContain((await assignOk(m.base, 'dataCenter=dc1')).url);
      expect((await assignOk(m.base, 'dataCenter=dc1&rack=r2')).url).toBe(v2.url);
    }
    const res = await fetch(`${m.base}/dir/assign?dataCenter=nowhere`);
    const body = await json<{ error: string }>(res, 400);
    expect(body.error).toContain('nowhere');
  });

  it("refuses a query parameter an endpoint does not take (400, naming it), and takes SeaweedFS's", async () => {
    const before = (await json<VolStatus>(await fetch(`${m.base}/vol/status`), 200)).Volumes.length;
    // A typo must not become an assign with the default placement, a grow, or a delete of something else.
    const refused: Array<[string, string]> = [
      ['GET', '/dir/assign?replicaton=001'],
      ['GET', '/dir/lookup?volumeId=1&fileid=1,01637037d6'],
      ['GET', '/vol/status?verbose=1'],
      ['GET', '/dir/status?x=1'],
      ['GET', '/cluster/status?x=1'],
      ['POST', '/vol/grow?count=1&replicaton=001'],
      ['POST', '/col/delete?colection=photos'],
      ['POST', '/vol/vacuum?threshold=0.1'],
    ];
    for (const [method, path] of refused) {
      const body = await json<{ error: string; code: string }>(
        await fetch(`${m.base}${path}`, { method }),
        400,
      );
      expect(body.code, path).toBe('invalid_param');
      expect(body.error, path).toMatch(
        /unknown query parameter "(replicaton|fileid|verbose|x|colection|threshold)"/,
      );
    }
    expect((await json<VolStatus>(await fetch(`${m.base}/vol/status`), 200)).Volumes.length).toBe(before);
    // SeaweedFS's: growth hints taken and ignored, `disk=hdd` (its default), and `pretty` (indented JSON).
    await assignOk(m.base, 'dataSize=1024&preallocate=0&writableVolumeCount=1&memoryMapMaxSizeMb=0&disk=hdd');
    const pretty = await fetch(`${m.base}/dir/assign?pretty=y`);
    const text = await pretty.text();
    expect(pretty.status).toBe(200);
    expect(text).toMatch(/^\{\n {2}"fid": "/);
    expect(Number(pretty.headers.get('content-length'))).toBe(Buffer.byteLength(text));
    const plain = await (await fetch(`${m.base}/dir/status`)).text();
    expect(plain).not.toContain('\n');
  });

  it('answers bad input with 4xx, and a master without volume servers with 503 + Retry-After', async () => {
    for (const q of ['', 'volumeId=abc', 'fileId=3,zz', 'fileId=3,01637037d6_x']) {
      expect((await fetch(`${m.base}/dir/lookup?${q}`)).status, `lookup ?${q}`).toBe(400);
    }
    for (const q of ['count=0', 'count=abc', 'replication=abc', 'ttl=5x']) {
      expect((await fetch(`${m.base}/dir/assign?${q}`)).status, `assign ?${q}`).toBe(400);
    }
    for (const body of ['not json', '{"url":"x:1","volumes":[],"maxFileKey":"zz"}', '{"volumes":[]}']) {
      const res = await fetch(`${m.base}/heartbeat`, { method: 'POST', body });
      expect(res.status, `heartbeat ${body}`).toBe(400);
    }
    expect((await fetch(`${m.base}/no/such/endpoint`)).status).toBe(404);
    // SeaweedFS disk types: Kelp has one kind of disk.
    for (const path of ['/dir/assign?disk=ssd', '/vol/grow?disk=ssd']) {
      const refused = await json<{ error: string }>(await fetch(`${m.base}${path}`, { method: 'POST' }), 400);
      expect(refused.error, path).toContain('disk type "ssd"');
    }

    const empty = await master();
    const res = await fetch(`${empty.base}/dir/assign`);
    expect(res.status).toBe(503);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
  });
});
