/**
 * Origin-free reads (docs/decisions/0010-origin-free-reads.md): the Worker in
 * workerd reads tiered blobs straight from the bucket, with a real master and
 * volume servers that tier to Ceph's RADOS Gateway (the S3 production clusters
 * run) and are then stopped; and through an R2 binding (Miniflare's local R2).
 *
 * Request counts: the Worker says what each read cost the bucket
 * (`X-Kelp-Tier-Requests`, `X-Kelp-Tier-Bytes`), and a counting proxy between
 * the Worker and the gateway checks the same figures on the wire.
 *
 * Miniflare's R2 has no S3 API, so for the R2 case the objects the volume
 * server wrote through R2's S3 API (`r2.default`, with Ceph standing in for
 * R2's endpoint) are copied into the binding's bucket after each write: in
 * production the binding and the S3 API are one bucket.
 */

import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import type { Miniflare } from 'miniflare';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../origin/observability/log.ts';
import type { TierLocation } from '../../shared/api.ts';
import { formatFid, parseFid } from '../../shared/fid.ts';
import { decodeDeletionSet, isDeleted } from '../../shared/tier-index.ts';
import type { R2BackendConfig, S3BackendConfig } from '../../tiering/backends/backend.ts';
import { createBackend } from '../../tiering/backends/create-backend.ts';
import type { S3Backend } from '../../tiering/backends/s3.ts';
import { type MasterVolume, readCluster, TierClient } from '../../tiering/service/client.ts';
import { planCluster, TierService } from '../../tiering/service/service.ts';
import { type CephRgw, startCephRgw } from '../tiering/ceph-rgw.ts';
import { type CountingProxy, startCountingProxy } from '../tiering/volume/counting-proxy.ts';
import { http, sealVolume, tierDownload, tierStatus, tierUpload } from '../tiering/volume/harness.ts';
import {
  bundleWorker,
  bytes,
  type EdgeCluster,
  LOOPBACK_ORIGINS,
  sleep,
  startEdge,
  startWorker,
  tempDir,
  WORKER_ENTRY,
  waitFor,
} from './harness.ts';

const BUCKET = 'kelp-edge-tier';
const HEAT_KEY = 'edge-tier-test-heat-key';
const FRESH_MS = 2_000;
/**
 * From half its fresh period on, a read refreshes the deletion set (and a hit its copy) in the
 * background: EARLY_REFRESH_FRACTION of edge/freshness.ts, which needs the Worker's types to import.
 */
const EARLY_REFRESH_MS = FRESH_MS / 2;
/** Time for the poll loop and the Worker's own request on top of the bound. */
const SLACK_MS = 600;

let rgw: CephRgw;
let inspector: S3Backend;
let wire: CountingProxy;
let cluster: EdgeCluster;
let r2Worker: Miniflare;

const s3 = (extra: Partial<S3BackendConfig> = {}): S3BackendConfig => ({
  type: 's3',
  id: 'default',
  endpoint: rgw.endpoint,
  region: 'us-east-1',
  bucket: BUCKET,
  accessKeyId: rgw.accessKeyId,
  secretAccessKey: rgw.secretAccessKey,
  forcePathStyle: true,
  ...extra,
});

const r2 = (): R2BackendConfig => ({
  type: 'r2',
  id: 'default',
  endpoint: rgw.endpoint,
  bucket: BUCKET,
  accessKeyId: rgw.accessKeyId,
  secretAccessKey: rgw.secretAccessKey,
});

async function getObject(key: string): Promise<Uint8Array> {
  const out = await inspector.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return out.Body!.transformToByteArray();
}

/** The Worker's answer with its body and the cost it reports. */
async function read(
  fetcher: { fetch(p: string, i?: RequestInit): Promise<Response> },
  fid: string,
  init?: RequestInit,
) {
  const res = await fetcher.fetch(`/${fid}`, init);
  return {
    res,
    body: await bytes(res),
    tierRequests: res.headers.get('x-kelp-tier-requests'),
    tierBytes: res.headers.get('x-kelp-tier-bytes'),
  };
}

const volumeOf = (fid: string) => parseFid(fid).volumeId;

async function tierVolume(volumeId: number, backend: string): Promise<TierLocation> {
  const base = `http://${cluster.volumes[0]!.url}`;
  await sealVolume(base, volumeId);
  await tierUpload(base, volumeId, backend);
  // The heartbeat carries the location once the deletion set is in the bucket.
  return waitFor('the lookup to carry the tier location', async () => (await cluster.lookup(volumeId)).tier!);
}

beforeAll(async () => {
  rgw = await startCephRgw();
  inspector = (await createBackend(s3())) as S3Backend;
  await inspector.client.send(new CreateBucketCommand({ Bucket: BUCKET }));
  wire = await startCountingProxy({ host: rgw.host, port: rgw.port });
  cluster = await startEdge({
    volume: { backends: [s3(), r2()] },
    // An admin key too, to show the heat key is not one.
    master: {
      edgeHeatKeys: [HEAT_KEY],
      adminKey: 'edge-tier-test-admin-key',
      clientKeys: ['edge-tier-test-client-key'],
    },
    clientKey: 'edge-tier-test-client-key',
    vars: {
      HEAT_KEY,
      // Every read sends its report at once: the test reads the master right after.
      HEAT_FLUSH_SECONDS: '0',
      EDGE_FRESH_SECONDS: String(FRESH_MS / 1000),
      LOOKUP_TTL_SECONDS: '1',
      TIER_BACKENDS: JSON.stringify({
        's3.default': { kind: 's3', endpoint: wire.endpoint, region: 'us-east-1', bucket: BUCKET },
      }),
      TIER_S3_DEFAULT_ACCESS_KEY_ID: rgw.accessKeyId,
      TIER_S3_DEFAULT_SECRET_ACCESS_KEY: rgw.secretAccessKey,
    },
  });
}, 180_000);

afterAll(async () => {
  await r2Worker?.dispose().catch(() => {});
  await cluster?.close();
  await wire?.stop();
  await inspector?.close();
  await rgw?.stop();
});

describe('origin-free reads of a volume tiered to S3 (Ceph RGW)', () => {
  let fids: string[];
  let blobs: Uint8Array[];
  let tier: TierLocation;

  it('cold: four bucket requests (deletion set, directory, page, needle); warm: one; byte-identical with the origin headers', async () => {
    ({ fids, blobs } = await cluster.uploadBatch(12, 3000));
    const vid = volumeOf(fids[0]!);
    const origin = await http(`http://${cluster.volumes[0]!.url}`, `/${fids[0]}`);
    // Compressible text, which the volume server stores gzipped: the edge must serve it decoded.
    const text = new TextEncoder().encode('kelp needle volume tier '.repeat(400));
    const textFid = formatFid({ volumeId: vid, key: 0xfffff0n, cookie: 0x1234abcd });
    const put = await http(`http://${cluster.volumes[0]!.url}`, `/${textFid}`, {
      method: 'PUT',
      headers: { 'content-type': 'text/plain' },
      body: text,
    });
    expect(put.status).toBe(201);
    const gz = await http(`http://${cluster.volumes[0]!.url}`, `/${textFid}`, {
      headers: { 'accept-encoding': 'gzip' },
    });
    expect(gz.headers['content-encoding'], 'stored gzipped').toBe('gzip');
    tier = await tierVolume(vid, 's3.default');
    expect(tier).toMatchObject({ kind: 's3', backend: 's3.default', bucket: BUCKET, indexPages: 1 });

    const volumeRequests = cluster.volumes[0]!.proxy.count;
    let gets = wire.counts.gets;
    // The cold read confirms the deletion set no earlier than this. From half its fresh period on, a
    // read also refreshes it (and a hit revalidates its copy) in the background (edge/tier-read.ts,
    // edge/freshness.ts): the exact counts on the wire below hold for reads answered before then. On a
    // machine too loaded for that, each read's own cost (what the Worker reports) is checked instead.
    const coldSent = Date.now();
    const beforeEarlyRefresh = () => Date.now() < coldSent + EARLY_REFRESH_MS;
    const cold = await read(cluster, fids[0]!);
    expect(cold.res.status).toBe(200);
    expect(cold.body).toEqual(blobs[0]);
    expect(cold.res.headers.get('x-kelp-cache')).toBe('MISS');
    expect(cold.tierRequests).toBe('4');
    expect(wire.counts.gets - gets, 'on the wire').toBe(4);
    for (const h of [
      'etag',
      'content-type',
      'content-disposition',
      'last-modified',
      'x-content-type-options',
    ]) {
      expect(cold.res.headers.get(h), h).toBe(origin.headers[h]);
    }

    gets = wire.counts.gets;
    const warm = await read(cluster, fids[1]!);
    expect(warm.body).toEqual(blobs[1]);
    if (beforeEarlyRefresh()) {
      expect(warm.tierRequests).toBe('1');
      expect(wire.counts.gets - gets).toBe(1);
    } else {
      // The needle, and the deletion set when it was past its fresh period.
      expect(['1', '2']).toContain(warm.tierRequests);
    }
    // One needle record: header, DataSize, data, flags and name, CRC, timestamp, padding.
    expect(Number(warm.tierBytes)).toBeGreaterThan(3000);
    expect(Number(warm.tierBytes)).toBeLessThan(3100);

    gets = wire.counts.gets;
    const hit = await read(cluster, fids[0]!);
    expect(hit.body).toEqual(blobs[0]);
    if (Date.now() < coldSent + FRESH_MS) {
      expect(hit.res.headers.get('x-kelp-cache')).toBe('HIT');
      expect(hit.tierRequests, 'a hit costs nothing').toBeNull();
    } else {
      // Answered past the copy's fresh period: it may have been confirmed first.
      expect(['HIT', 'REVALIDATED']).toContain(hit.res.headers.get('x-kelp-cache'));
    }
    const ranged = await read(cluster, fids[2]!, { headers: { range: 'bytes=10-19' } });
    expect(ranged.res.status).toBe(206);
    expect(ranged.body).toEqual(blobs[2]!.subarray(10, 20));
    if (beforeEarlyRefresh()) {
      expect(wire.counts.gets - gets, 'a hit costs nothing, a ranged miss one GET').toBe(1);
    } else {
      expect(['1', '2'], 'a ranged miss: the needle (and the deletion set past its period)').toContain(
        ranged.tierRequests,
      );
    }
    const decoded = await read(cluster, textFid);
    expect(decoded.res.status).toBe(200);
    expect(decoded.body).toEqual(text);
    expect(decoded.res.headers.get('content-type')).toBe('text/plain');
    expect(decoded.res.headers.get('content-encoding')).toBeNull();
    expect(cluster.volumes[0]!.proxy.count - volumeRequests, 'no request reached a volume server').toBe(0);
  }, 120_000);

  it('the edge reports the reads no origin saw; the policy sees them and would promote the volume', async () => {
    const vid = volumeOf(fids[0]!);
    const master = `http://${cluster.master.address}`;
    for (let i = 0; i < 10; i++)
      expect((await read(cluster, fids[0]!)).res.headers.get('x-kelp-cache')).toBe('HIT');
    // 5 reads in the test before (cold, warm, hit, ranged, text) and these 10: none reached a volume server.
    let seen: MasterVolume | undefined;
    const status = await waitFor('the edge heat at the master', async () => {
      const body = (await (await fetch(`${master}/vol/status`)).json()) as { Volumes: MasterVolume[] };
      seen = body.Volumes.find((x) => x.id === vid);
      return (seen?.edgeReadsPerDay ?? 0) >= 15 ? seen : undefined;
    }).catch((err: Error) => {
      throw new Error(`${err.message}; last seen ${JSON.stringify(seen?.edgeReadsPerDay)}`);
    });
    expect(status!.edgeReadsPerDay).toBe(15);
    const snapshot = await readCluster(new TierClient(cluster.master.address));
    const volume = snapshot.volumes.find((v) => v.id === vid)!;
    expect(volume).toMatchObject({ edgeReadsPerDay: 15, remote: 's3.default' });
    expect(volume.readsPerDay).toBe(volume.edgeReadsPerDay! + volume.originReadsPerDay!);
    const rules = [
      {
        backend: 's3.default',
        minAgeMs: 0,
        minFullPercent: 0,
        quietForMs: 0,
        keepLocalDat: false,
        maxReadsPerDay: 2,
        promoteAboveReadsPerDay: 10,
      },
    ];
    const decision = planCluster(snapshot, rules, Date.now()).find((d) => d.volumeId === vid)!;
    expect(decision.action).toBe('download');
    expect(decision.reason).toContain('edge 15');
    // The key is the only way in, and only to this endpoint.
    const forged = await fetch(`${master}/edge/heat`, {
      method: 'POST',
      headers: { authorization: 'Bearer not-the-key', 'content-type': 'application/json' },
      body: JSON.stringify({ reads: { [vid]: 1_000_000 } }),
    });
    expect(forged.status).toBe(401);
    const asAdmin = await fetch(`${master}/vol/grow?count=1`, {
      method: 'POST',
      headers: { authorization: `Bearer ${HEAT_KEY}` },
    });
    expect(asAdmin.status, 'the heat key is no admin key').toBe(401);
  }, 30_000);

  it('a blob deleted after tiering is 404 at the edge within EDGE_FRESH_SECONDS of the acknowledgement', async () => {
    const cached = fids[3]!;
    const unread = fids[4]!;
    expect((await read(cluster, cached)).res.status).toBe(200);
    const base = `http://${cluster.volumes[0]!.url}`;
    for (const fid of [cached, unread]) {
      expect((await http(base, `/${fid}`, { method: 'DELETE' })).status).toBe(202);
    }
    const acked = Date.now();
    // The acknowledgement waited for the deletion set: it is in the bucket now.
    const set = decodeDeletionSet(await getObject(tier.deletesKey));
    expect([...set.keys]).toEqual(expect.arrayContaining([parseFid(cached).key, parseFid(unread).key]));

    for (const fid of [cached, unread]) {
      const gone = await waitFor(
        `${fid} to be 404 at the edge`,
        async () => ((await read(cluster, fid)).res.status === 404 ? Date.now() : 0),
        FRESH_MS + 5_000,
      );
      expect(gone - acked, `${fid} served past the bound`).toBeLessThanOrEqual(FRESH_MS + SLACK_MS);
      for (let i = 0; i < 3; i++) expect((await read(cluster, fid)).res.status).toBe(404);
    }
  }, 30_000);

  it("GCS through its XML API (SigV4 with HMAC keys, region auto, path-style): the edge's gcs reader, with Ceph RGW standing in for storage.googleapis.com", async () => {
    // No GCS is reachable here, and the Firebase emulator speaks only the JSON API and checks no
    // signature: Ceph RGW speaks the XML protocol GCS's interoperability mode takes and checks every
    // signature. The Worker reads the objects the S3 backend wrote, as a `gcs` backend.
    const gcsEnv = (secret: string) => ({
      MASTER_URL: `http://${cluster.masterProxy.address}`,
      ORIGIN_ALLOW: LOOPBACK_ORIGINS,
      EDGE_FRESH_SECONDS: String(FRESH_MS / 1000),
      TIER_BACKENDS: JSON.stringify({
        's3.default': { kind: 'gcs', endpoint: wire.endpoint, bucket: BUCKET },
      }),
      TIER_S3_DEFAULT_ACCESS_KEY_ID: rgw.accessKeyId,
      TIER_S3_DEFAULT_SECRET_ACCESS_KEY: secret,
    });
    const script = await bundleWorker(WORKER_ENTRY, tempDir());
    const gcs = startWorker(script, gcsEnv(rgw.secretAccessKey));
    const forged = startWorker(script, gcsEnv(`${rgw.secretAccessKey}x`));
    try {
      const at = (mf: Miniflare) => ({
        fetch: async (p: string, i?: RequestInit) =>
          (await mf.dispatchFetch(`http://edge.test${p}`, i as never)) as unknown as Response,
      });
      const volumeRequests = cluster.volumes[0]!.proxy.count;
      let gets = wire.counts.gets;
      const cold = await read(at(gcs), fids[5]!);
      expect(cold.res.status).toBe(200);
      expect(cold.body).toEqual(blobs[5]);
      expect(cold.tierRequests).toBe('4');
      expect(wire.counts.gets - gets, 'on the wire').toBe(4);
      // What went out is what GCS's XML API takes: SigV4, the `auto` location, the empty-body hash, path-style.
      const auth = String(wire.last.headers.authorization);
      expect(auth).toMatch(
        new RegExp(
          `^AWS4-HMAC-SHA256 Credential=${rgw.accessKeyId}/\\d{8}/auto/s3/aws4_request, SignedHeaders=`,
        ),
      );
      expect(auth).toContain('x-amz-content-sha256');
      expect(wire.last.headers['x-amz-content-sha256']).toBe(
        'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      );
      expect(wire.last.path).toBe(`/${BUCKET}/${tier.key}`);
      expect(wire.last.headers.range).toMatch(/^bytes=\d+-\d+$/);
      expect(wire.last.status).toBe(206);

      gets = wire.counts.gets;
      const warm = await read(at(gcs), fids[6]!);
      expect(warm.body).toEqual(blobs[6]);
      expect(warm.tierRequests).toBe('1');
      expect(wire.counts.gets - gets).toBe(1);
      // Deleted after tiering (the test before): 404 through this reader too.
      expect((await read(at(gcs), fids[3]!)).res.status).toBe(404);
      expect(cluster.volumes[0]!.proxy.count - volumeRequests, 'no request reached a volume server').toBe(0);

      // A wrong secret: the gateway refuses the signature (403) and the read goes to the origin instead.
      gets = wire.counts.gets;
      const refused = await read(at(forged), fids[7]!);
      expect(wire.counts.gets - gets).toBeGreaterThan(0);
      expect(wire.last.status).toBe(403);
      expect(refused.res.status).toBe(200);
      expect(refused.body).toEqual(blobs[7]);
      expect(refused.tierRequests, 'not served from the bucket').toBeNull();
      expect(cluster.volumes[0]!.proxy.count - volumeRequests, 'served by a volume server').toBeGreaterThan(
        0,
      );
    } finally {
      await gcs.dispose().catch(() => {});
      await forged.dispose().catch(() => {});
    }
  }, 60_000);

  it('with every origin stopped, the blobs are still served byte-identical (one GET a read)', async () => {
    for (const v of cluster.volumes) await v.stop();
    // Past the lookup TTL: the master now knows no live holder, and the edge reads where the bucket is.
    await sleep(1_500);
    for (const i of [5, 6, 7, 8]) {
      const gets = wire.counts.gets;
      const r = await read(cluster, fids[i]!);
      expect(r.res.status, `blob ${i}`).toBe(200);
      expect(r.body).toEqual(blobs[i]);
      // The needle, and the deletion set when it was past its fresh period.
      expect(['1', '2']).toContain(r.tierRequests);
      expect(wire.counts.gets - gets).toBe(Number(r.tierRequests));
    }
    expect((await read(cluster, fids[3]!)).res.status).toBe(404);
  }, 30_000);

  it('corrupt bytes in the bucket are never served', async () => {
    const dat = await getObject(tier.key);
    const at = Buffer.from(dat).indexOf(Buffer.from(blobs[9]!));
    expect(at).toBeGreaterThan(0);
    const bad = new Uint8Array(dat);
    bad[at + 100] = bad[at + 100]! ^ 0xff;
    await inspector.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: tier.key, Body: bad }));
    const r = await read(cluster, fids[9]!);
    expect(r.res.status).not.toBe(200);
    expect(Buffer.from(r.body).includes(Buffer.from(bad.subarray(at, at + 200)))).toBe(false);
    const good = await read(cluster, fids[10]!);
    expect(good.res.status).toBe(200);
    expect(good.body).toEqual(blobs[10]);
  }, 30_000);
});

describe('origin-free reads through an R2 binding (Miniflare R2)', () => {
  it('cold four requests, warm one, a delete 404 within the bound', async () => {
    // The first describe stopped the volume servers: a fresh one on the same master.
    const v = await cluster.addVolume(tempDir());
    await waitFor(
      'the stopped servers to be dead and the new one alive',
      () => {
        const alive = cluster.master.topology.aliveNodes();
        return alive.length === 1 && alive[0]!.url === v.url;
      },
      15_000,
    );
    const { fids, blobs } = await cluster.uploadBatch(6, 2000);
    const vid = volumeOf(fids[0]!);
    const base = `http://${v.url}`;
    await sealVolume(base, vid);
    await tierUpload(base, vid, 'r2.default');
    const tier = await waitFor('the tier location', async () => (await cluster.lookup(vid)).tier!);
    expect(tier).toMatchObject({ kind: 'r2', backend: 'r2.default', bucket: BUCKET });

    const script = await bundleWorker(WORKER_ENTRY, tempDir());
    r2Worker = startWorker(
      script,
      {
        MASTER_URL: `http://${cluster.masterProxy.address}`,
        ORIGIN_ALLOW: LOOPBACK_ORIGINS,
        EDGE_FRESH_SECONDS: String(FRESH_MS / 1000),
        TIER_BACKENDS: JSON.stringify({ 'r2.default': { kind: 'r2', binding: 'TIER', bucket: BUCKET } }),
      },
      undefined,
      undefined,
      ['TIER'],
    );
    await r2Worker.ready;
    const binding = await r2Worker.getR2Bucket('TIER');
    const mirror = async () => {
      for (const key of [tier.key, tier.indexKey, tier.deletesKey])
        await binding.put(key, await getObject(key));
    };
    await mirror();
    const edge = {
      fetch: async (p: string, i?: RequestInit) =>
        (await r2Worker.dispatchFetch(`http://edge.test${p}`, i as never)) as unknown as Response,
    };
    const volumeRequests = v.proxy.count;
    const cold = await read(edge, fids[0]!);
    expect(cold.res.status).toBe(200);
    expect(cold.body).toEqual(blobs[0]);
    expect(cold.tierRequests).toBe('4');
    const warm = await read(edge, fids[1]!);
    expect(warm.body).toEqual(blobs[1]);
    expect(warm.tierRequests).toBe('1');
    expect(v.proxy.count - volumeRequests, 'no request reached the volume server').toBe(0);

    expect((await http(base, `/${fids[2]}`, { method: 'DELETE' })).status).toBe(202);
    await mirror();
    const acked = Date.now();
    const gone = await waitFor(
      'the delete at the edge',
      async () => ((await read(edge, fids[2]!)).res.status === 404 ? Date.now() : 0),
      FRESH_MS + 5_000,
    );
    expect(gone - acked).toBeLessThanOrEqual(FRESH_MS + SLACK_MS);
    expect((await read(edge, fids[3]!)).body).toEqual(blobs[3]);
  }, 120_000);
});

describe('one object per tiered volume, not per replica (replication 001)', () => {
  const SHARED_BUCKET = 'kelp-edge-tier-shared';
  let two: EdgeCluster;

  afterAll(async () => {
    await two?.close();
  });

  it('the tiering service uploads once and points both replicas at it; deletes reach both; downloads restore both, the last one removes the object', async () => {
    await inspector.client.send(new CreateBucketCommand({ Bucket: SHARED_BUCKET }));
    two = await startEdge({ volumes: 2, volume: { backends: [s3({ bucket: SHARED_BUCKET })] } });
    const { fids, blobs } = await two.uploadBatch(40, 2500, { replication: '001' });
    const vid = volumeOf(fids[0]!);
    const [a, b] = two.volumes.map((v) => `http://${v.url}`) as [string, string];
    for (const base of [a, b]) await sealVolume(base, vid);
    const datSizes = await Promise.all(
      [a, b].map(async (base) => {
        const s = (await (await fetch(`${base}/status`)).json()) as {
          Volumes: Array<{ id: number; size: number }>;
        };
        return s.Volumes.find((v) => v.id === vid)!.size;
      }),
    );

    const service = new TierService({
      client: new TierClient(two.master.address),
      rules: [
        { backend: 's3.default', minAgeMs: 0, minFullPercent: 100, quietForMs: 0, keepLocalDat: false },
      ],
      intervalMs: 1_000,
      pollMs: 50,
      logger: silentLogger(),
    });
    expect((await service.round()).kind).toBe('moved');

    const list = async () =>
      (await inspector.client.send(new ListObjectsV2Command({ Bucket: SHARED_BUCKET, Prefix: `${vid}-` })))
        .Contents ?? [];
    const objects = await list();
    const bucketBytes = objects.reduce((n, o) => n + (o.Size ?? 0), 0);
    const status = await Promise.all([a, b].map((base) => tierStatus(base, vid)));
    const [ra, rb] = status.map((s) => s.remote!);
    expect(ra!.key, 'both replicas point at one object').toBe(rb!.key);
    expect([ra!.owner, rb!.owner].sort()).toEqual([false, true]);
    expect(objects.map((o) => o.Key).sort()).toEqual([ra!.deletesKey, ra!.indexKey, ra!.key].sort());
    const dat = objects.find((o) => o.Key === ra!.key)!.Size!;
    const index = objects.find((o) => o.Key === ra!.indexKey)!.Size!;
    // The figures of the report: what one object costs against one per replica.
    console.log(
      `volume ${vid}, 40 needles of 2,500 B, replication 001: bucket ${bucketBytes} B in ${objects.length} objects ` +
        `(.dat ${dat} B, index ${index} B = ${(index / 40).toFixed(1)} B/needle); one object per replica would be ` +
        `${datSizes[0]! + datSizes[1]!} B of .dat in 2 objects`,
    );
    expect(dat).toBe(Math.max(...datSizes));
    expect(bucketBytes).toBeLessThan(datSizes[0]! + datSizes[1]!);

    // Each replica reads its needles from the shared object, through its rewritten index.
    for (const base of [a, b]) {
      for (const i of [0, 17, 39]) {
        const r = await http(base, `/${fids[i]}`);
        expect(r.status).toBe(200);
        expect(new Uint8Array(r.body)).toEqual(blobs[i]);
      }
    }
    // A delete through either replica reaches both, and the deletion set in the bucket.
    expect((await http(b, `/${fids[5]}`, { method: 'DELETE' })).status).toBe(202);
    for (const base of [a, b]) expect((await http(base, `/${fids[5]}`)).status).toBe(404);
    const set = decodeDeletionSet(
      new Uint8Array(
        await (
          await inspector.client.send(new GetObjectCommand({ Bucket: SHARED_BUCKET, Key: ra!.deletesKey }))
        ).Body!.transformToByteArray(),
      ),
    );
    expect(isDeleted(set, parseFid(fids[5]!).key)).toBe(true);

    // Back from the tier: the first replica leaves the object to the other, the last one removes it.
    const nonOwner = ra!.owner ? b : a;
    const owner = ra!.owner ? a : b;
    await tierDownload(nonOwner, vid);
    expect((await list()).length, 'still read by the other replica').toBe(3);
    await tierDownload(owner, vid);
    expect(await list()).toEqual([]);
    for (const base of [a, b]) {
      expect((await tierStatus(base, vid)).remote).toBeNull();
      expect((await http(base, `/${fids[5]}`)).status).toBe(404);
      for (const i of [0, 17, 39])
        expect(new Uint8Array((await http(base, `/${fids[i]}`)).body)).toEqual(blobs[i]);
    }
  }, 120_000);
});
