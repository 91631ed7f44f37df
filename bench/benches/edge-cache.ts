/**
 * Edge cache hits: the Kelp Worker (edge/index.ts, bundled as wrangler would)
 * answering a cached 1 KiB blob, against a bare Worker whose fetch handler
 * only returns `caches.default.match()` for the same object with the same
 * headers. Both run in workerd on Miniflare's own HTTP server (wrangler dev's
 * proxy would cap both near 1,300 req/s), loaded by wrk alike.
 *
 * Then origin requests per 1,000 hot reads after warm-up: the master and the
 * volume server sit behind counting proxies, as in the edge tests.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Miniflare } from 'miniflare';
import { randomBlob, startEdge, startWorker, tempDir } from '../../test/edge/harness.ts';
import { compare } from '../lib/compare.ts';
import type { Row } from '../lib/table.ts';
import type { Bench, BenchContext } from '../run.ts';

const BLOB_BYTES = 1024;
const HOT_READS = 1000;

/**
 * The baseline: a cache match and nothing else. `PUT /fill` stores the
 * request's body under `/blob` with the headers given as JSON, once, before
 * the load.
 */
const BARE_WORKER = `
export default {
  async fetch(request) {
    if (request.method === 'PUT') {
      const headers = JSON.parse(request.headers.get('x-fill-headers'));
      const key = new URL('/blob', request.url).href;
      await caches.default.put(key, new Response(await request.arrayBuffer(), { headers }));
      return new Response('filled\\n');
    }
    return (await caches.default.match(request)) ?? new Response('miss\\n', { status: 404 });
  },
};
`;

/** Headers of a cached response that describe the object (not the hop or the cache state). */
function objectHeaders(res: Response): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of res.headers) {
    if (!['x-kelp-cache', 'cf-cache-status', 'age', 'date', 'transfer-encoding', 'connection'].includes(k)) {
      out[k] = v;
    }
  }
  return out;
}

async function port(mf: Miniflare): Promise<number> {
  return Number((await mf.ready).port);
}

async function run(ctx: BenchContext): Promise<Row[]> {
  const edge = await startEdge({ port: 0 });
  let bare: Miniflare | undefined;
  try {
    const fid = await edge.upload(randomBlob(BLOB_BYTES), { name: 'hot.bin' });
    const kelpPort = await port(edge.mf);
    const kelpUrl = `http://127.0.0.1:${kelpPort}/${fid}`;
    const miss = await fetch(kelpUrl);
    const body = await miss.arrayBuffer();
    const hit = await fetch(kelpUrl);
    await hit.arrayBuffer();
    if (miss.headers.get('x-kelp-cache') !== 'MISS' || hit.headers.get('x-kelp-cache') !== 'HIT') {
      throw new Error(
        `warm-up: expected MISS then HIT, got ${miss.headers.get('x-kelp-cache')}, ${hit.headers.get('x-kelp-cache')}`,
      );
    }

    const dir = tempDir('kelp-bench-bare-');
    const barePath = join(dir, 'bare.mjs');
    writeFileSync(barePath, BARE_WORKER);
    bare = startWorker(barePath, {}, 0);
    const barePort = await port(bare);
    const fill = await fetch(`http://127.0.0.1:${barePort}/fill`, {
      method: 'PUT',
      body,
      headers: { 'x-fill-headers': JSON.stringify(objectHeaders(hit)) },
    });
    if (fill.status !== 200) throw new Error(`bare fill: HTTP ${fill.status}`);
    const bareHit = await fetch(`http://127.0.0.1:${barePort}/blob`);
    const bareBody = await bareHit.arrayBuffer();
    if (bareHit.status !== 200 || bareBody.byteLength !== BLOB_BYTES) {
      throw new Error(`bare warm-up: HTTP ${bareHit.status}, ${bareBody.byteLength} bytes`);
    }

    const originBefore = edge.originRequests();
    const rows = await compare(
      [
        {
          subject: 'bare Worker: caches.default.match()',
          start: async () => ({ port: barePort, stop: async () => {} }),
          load: (p) => ({ url: `http://127.0.0.1:${p}/blob` }),
        },
        {
          subject: 'Kelp Worker: cache hit',
          start: async () => ({ port: kelpPort, stop: async () => {} }),
          load: (p) => ({ url: `http://127.0.0.1:${p}/${fid}` }),
        },
      ],
      { bench: 'edge-cache', ...ctx, goal: '>= 90 %' },
    );
    const duringLoad = edge.originRequests() - originBefore;

    // A counted batch of hot reads, 16 at a time, each checked to be a HIT.
    const batchBefore = edge.originRequests();
    let next = 0;
    let notHit = 0;
    const reader = async () => {
      while (next < HOT_READS) {
        next++;
        const res = await fetch(kelpUrl);
        await res.arrayBuffer();
        if (res.headers.get('x-kelp-cache') !== 'HIT') notHit++;
      }
    };
    await Promise.all(Array.from({ length: ctx.connections }, reader));
    const perThousand = ((edge.originRequests() - batchBefore) * 1000) / HOT_READS;
    rows.push({
      bench: 'edge-cache',
      subject: `origin requests per ${HOT_READS.toLocaleString('en-US')} hot reads`,
      goal: '0',
      note: `${perThousand} (${notHit} not HIT); ${duringLoad} origin requests during all wrk rounds`,
    });
    return rows;
  } finally {
    await bare?.dispose();
    await edge.close();
  }
}

const bench: Bench = {
  name: 'edge-cache',
  description: 'Kelp Worker cache hits vs a bare caches.default.match() Worker, both in Miniflare (workerd)',
  run,
};
export default bench;
