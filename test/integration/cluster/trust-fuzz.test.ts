/**
 * Issue 10: properties of the membership and admin surfaces, over real HTTP.
 * - Random heartbeats without the cluster credential never change the topology.
 * - Fuzzed heartbeat bodies, correctly signed, get 200 or 400, never a 5xx.
 * - Fuzzed admin queries with the admin key get an answer below 500.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterHeaders, sha256Hex } from '../../../origin/security/cluster-auth.ts';
import { master, stopAll, type TestMaster, type TestVolume, volume, waitForNodes } from './harness.ts';

const CLUSTER = 'fuzz-cluster-key';
const ADMIN = 'fuzz-admin-key';

let m: TestMaster;
let v: TestVolume;

beforeAll(async () => {
  m = await master({ clusterKey: CLUSTER, adminKey: ADMIN });
  v = await volume(m.address, { clusterKey: CLUSTER, adminKey: ADMIN, max: 4 });
  await waitForNodes(m, 1);
});

afterAll(stopAll);

const volumeArb = fc.record(
  {
    id: fc.oneof(fc.integer({ min: -5, max: 2 ** 33 }), fc.constant(null), fc.string()),
    collection: fc.oneof(fc.string({ maxLength: 80 }), fc.constantFrom('', '../x', 'ok_1')),
    size: fc.oneof(fc.nat(), fc.double(), fc.string()),
    fileCount: fc.nat(),
    deleteCount: fc.nat(),
    deletedByteCount: fc.nat(),
    readOnly: fc.oneof(fc.boolean(), fc.constant('true')),
    replicaPlacement: fc.constantFrom('000', '001', '9', '', 'abc'),
    ttl: fc.constantFrom('', '3d', '5x', 'x'.repeat(40)),
    compactRevision: fc.integer({ min: -1, max: 70_000 }),
    readsPerDay: fc.nat(),
    modifiedAt: fc.nat(),
  },
  { requiredKeys: [] },
);

const heartbeatArb = fc.record(
  {
    url: fc.oneof(
      fc.constantFrom('', 'x', '127.0.0.1:65536', 'evil.example:80', '[::1]:9', 'a/b:1'),
      fc.string({ maxLength: 40 }),
      fc.integer({ min: 1, max: 65535 }).map((p) => `127.0.0.9:${p}`),
    ),
    publicUrl: fc.oneof(
      fc.constantFrom('', 'http://attacker.example', 'javascript:x', 'https://h:1/p'),
      fc.string({ maxLength: 40 }),
    ),
    dataCenter: fc.string({ maxLength: 70 }),
    rack: fc.string({ maxLength: 70 }),
    maxVolumeCount: fc.oneof(fc.integer({ min: -1, max: 5000 }), fc.constant('8')),
    maxFileKey: fc.oneof(
      fc.bigInt({ min: 0n, max: 2n ** 66n }).map(String),
      fc.constantFrom('', '-1', 'zz', '9'.repeat(201)),
    ),
    volumes: fc.oneof(fc.array(fc.oneof(volumeArb, fc.constant(null)), { maxLength: 4 }), fc.constant('x')),
  },
  { requiredKeys: [] },
);

async function snapshot(): Promise<string> {
  const dir = await (await fetch(`${m.base}/dir/status`)).json();
  const vol = ((await (await fetch(`${m.base}/vol/status`)).json()) as { Volumes: unknown[] }).Volumes;
  return JSON.stringify({ dir, vol, next: m.sequencer.peek().toString() });
}

describe('membership (issue 10)', () => {
  it('random heartbeats without the cluster credential never change the topology', async () => {
    const before = await snapshot();
    await fc.assert(
      fc.asyncProperty(
        heartbeatArb,
        fc.oneof(
          fc.constant({}),
          fc.record({ 'x-kelp-auth': fc.string(), 'x-kelp-content-sha256': fc.string() }),
          // Signed with a key that is not the cluster's.
          fc.constant('wrong-key'),
        ),
        async (hb, headers) => {
          const body = JSON.stringify(hb);
          const h =
            headers === 'wrong-key'
              ? clusterHeaders('wrong-key', 'POST', '/heartbeat', sha256Hex(body))
              : headers;
          const res = await fetch(`${m.base}/heartbeat`, { method: 'POST', body, headers: h });
          await res.text();
          expect(res.status).toBe(401);
        },
      ),
      { numRuns: 60 },
    );
    expect(await snapshot()).toBe(before);
    expect(m.topology.aliveNodes().map((n) => n.url)).toEqual([v.url]);
  });

  it('signed fuzzed heartbeats get 200 or 400, never a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          heartbeatArb.map((h) => JSON.stringify(h)),
          fc.string({ maxLength: 200 }),
        ),
        async (body) => {
          const res = await fetch(`${m.base}/heartbeat`, {
            method: 'POST',
            body,
            headers: clusterHeaders(CLUSTER, 'POST', '/heartbeat', sha256Hex(body)),
          });
          const text = await res.text();
          expect([200, 400], text).toContain(res.status);
        },
      ),
      { numRuns: 150 },
    );
    // Whatever was taken stayed within the key space and the node bound.
    expect(m.sequencer.peek()).toBeLessThan(2n ** 63n);
    for (const n of m.topology.nodes.values()) expect(n.volumes.size).toBeLessThanOrEqual(4096);
  });

  it('fuzzed admin queries with the admin key are answered below 500', async () => {
    const endpoint = fc.constantFrom(
      '/admin/readonly',
      '/admin/writable',
      '/admin/vacuum',
      '/admin/assign_volume',
      '/admin/delete_collection',
      '/admin/tier/upload',
      '/admin/tier/download',
      '/admin/nope',
    );
    const param = fc.tuple(
      fc.constantFrom(
        'volume',
        'collection',
        'replication',
        'ttl',
        'garbageThreshold',
        'backend',
        'force',
        'zz',
      ),
      fc.oneof(
        fc.string({ maxLength: 30 }),
        fc.integer().map(String),
        fc.constantFrom('../../etc', '1', 'local.default'),
      ),
    );
    await fc.assert(
      fc.asyncProperty(endpoint, fc.array(param, { maxLength: 4 }), async (path, params) => {
        const q = new URLSearchParams(params);
        const res = await fetch(`${v.base}${path}?${q}`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${ADMIN}` },
        });
        const text = await res.text();
        expect(res.status, `${path}?${q}: ${text}`).toBeLessThan(500);
      }),
      { numRuns: 120 },
    );
  });
});
