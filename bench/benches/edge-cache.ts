/**
 * Edge cache hits: the Kelp Worker (edge/index.ts, bundled as wrangler would)
 * answering a cached 1 KiB blob, against a bare Worker whose fetch handler
 * only returns `caches.default.match()` for the same object with the same
 * headers. Both run in workerd on Miniflare's own HTTP server (wrangler dev's
 * proxy would cap both near 1,300 req/s), loaded by wrk alike.
 *
 * A third Worker, the same code with EDGE_FRESH_SECONDS=0, confirms its copy
 * with the origin on every read (If-None-Match, 304; concurrent reads share
 * one request): the price of revalidation, side by side with a plain hit.
 *
 * Then origin requests per 1,000 hot reads, for both: the master and the
 * volume server sit behind counting proxies, as in the edge tests, and each
 * Worker reads a blob of its own so their requests can be told apart.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Miniflare } from 'miniflare';
import {
  bundleWorker,
  LOOPBACK_ORIGINS,
  randomBlob,
  startEdge,
  startWorker,
  tempDir,
  WORKER_ENTRY,
} from '../../test/edge/harness.ts';
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

/** Reads `url` HOT_READS times, `connections` at a time; returns how many answers were not `state`. */
async function hotReads(url: string, connections: number, state: string): Promise<number> {
  let next = 0;
  let other = 0;
  const reader = async () => {
    while (next < HOT_READS) {
      next++;
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.headers.get('x-kelp-cache') !== state) other++;
    }
  };
  await Promise.all(Array.from({ length: connections }, reader));
  return other;
}

async function run(ctx: BenchContext): Promise<Row[]> {
  const edge = await startEdge({ port: 0 });
  let bare: Miniflare | undefined;
  let revalidating: Miniflare | undefined;
  try {
    const fid = await edge.upload(randomBlob(BLOB_BYTES), { name: 'hot.bin' });
    const revalidatedFid = await edge.upload(randomBlob(BLOB_BYTES), { name: 'checked.bin' });
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
      // The headers Kelp stores with its copy (its client-facing max-age would expire the bare one mid-run).
      headers: {
        'x-fill-headers': JSON.stringify({
          ...objectHeaders(hit),
          'cache-control': 'public, max-age=604800',
          'x-kelp-confirmed': String(Date.now()),
          'cache-tag': `kelp-f-${fid.replace(',', '-')},kelp-v-${fid.slice(0, fid.indexOf(','))}`,
        }),
      },
    });
    if (fill.status !== 200) throw new Error(`bare fill: HTTP ${fill.status}`);
    const bareHit = await fetch(`http://127.0.0.1:${barePort}/blob`);
    const bareBody = await bareHit.arrayBuffer();
    if (bareHit.status !== 200 || bareBody.byteLength !== BLOB_BYTES) {
      throw new Error(`bare warm-up: HTTP ${bareHit.status}, ${bareBody.byteLength} bytes`);
    }

    // The same Worker with no fresh period: every read asks the origin whether its copy still holds.
    revalidating = startWorker(
      await bundleWorker(WORKER_ENTRY, tempDir('kelp-bench-reval-')),
      {
        MASTER_URL: `http://${edge.masterProxy.address}`,
        ORIGIN_ALLOW: LOOPBACK_ORIGINS,
        EDGE_FRESH_SECONDS: '0',
      },
      0,
    );
    const revalidatingPort = await port(revalidating);
    const revalidatedUrl = `http://127.0.0.1:${revalidatingPort}/${revalidatedFid}`;
    await (await fetch(revalidatedUrl)).arrayBuffer();
    const checked = await fetch(revalidatedUrl);
    await checked.arrayBuffer();
    if (checked.headers.get('x-kelp-cache') !== 'REVALIDATED') {
      throw new Error(`warm-up: expected REVALIDATED, got ${checked.headers.get('x-kelp-cache')}`);
    }

    const volume = edge.volumes[0]!.proxy;
    const originOf = (f: string) => volume.countOf(`/${f}`);
    const before = { hit: originOf(fid), revalidated: originOf(revalidatedFid), all: edge.originRequests() };
    const rows = await compare(
      [
        {
          subject: 'bare Worker: caches.default.match()',
          start: async () => ({ port: barePort, stop: async () => {} }),
          load: (p) => ({ url: `http://127.0.0.1:${p}/blob` }),
        },
        {
          subject: 'Kelp Worker: cache hit (EDGE_FRESH_SECONDS=5)',
          start: async () => ({ port: kelpPort, stop: async () => {} }),
          load: (p) => ({ url: `http://127.0.0.1:${p}/${fid}` }),
        },
        {
          subject: 'Kelp Worker: revalidated hit (EDGE_FRESH_SECONDS=0, 304 each time)',
          start: async () => ({ port: revalidatingPort, stop: async () => {} }),
          load: (p) => ({ url: `http://127.0.0.1:${p}/${revalidatedFid}` }),
        },
      ],
      { bench: 'edge-cache', ...ctx, goal: '>= 90 %' },
    );
    rows[2]!.goal = '';
    const seconds = ctx.durationSec * ctx.rounds;
    const during = (row: Row, origin: number) => {
      const reads = (row.reqPerSec ?? 0) * seconds;
      return `${origin} origin requests in ~${Math.round(reads).toLocaleString('en-US')} reads during the wrk rounds (${((origin * 1000) / Math.max(1, reads)).toFixed(2)} per 1,000)`;
    };
    rows[1]!.note = [rows[1]!.note, during(rows[1]!, originOf(fid) - before.hit)].filter(Boolean).join('; ');
    rows[2]!.note = [rows[2]!.note, during(rows[2]!, originOf(revalidatedFid) - before.revalidated)]
      .filter(Boolean)
      .join('; ');

    // Counted batches of hot reads, 16 at a time, each checked to be what it should be.
    for (const [label, url, f, state] of [
      ['cache hit', kelpUrl, fid, 'HIT'],
      ['revalidated hit', revalidatedUrl, revalidatedFid, 'REVALIDATED'],
    ] as const) {
      const batchBefore = originOf(f);
      const other = await hotReads(url, ctx.connections, state);
      const perThousand = ((originOf(f) - batchBefore) * 1000) / HOT_READS;
      rows.push({
        bench: 'edge-cache',
        subject: `origin requests per ${HOT_READS.toLocaleString('en-US')} hot reads: ${label}`,
        goal: state === 'HIT' ? '~0' : '',
        note: `${perThousand} (${other} not ${state})`,
      });
    }
    // Lookups and everything else the edge asked the origins for during the whole bench.
    rows.push({
      bench: 'edge-cache',
      subject: 'master lookups during the bench',
      note: `${edge.lookups()} (origin requests in all: ${edge.originRequests() - before.all} since warm-up)`,
    });
    return rows;
  } finally {
    await bare?.dispose();
    await revalidating?.dispose();
    await edge.close();
  }
}

const bench: Bench = {
  name: 'edge-cache',
  description: 'Kelp Worker cache hits vs a bare caches.default.match() Worker, both in Miniflare (workerd)',
  run,
};
export default bench;
