/**
 * Image variants (issue 6): resizes/s of a 1 MP JPEG to a 200x200 thumbnail,
 * wrk at concurrency 2 (the resizer's default concurrency):
 *   - a bare node:http server doing the same sharp resize of a buffer in
 *     memory (bench/baselines/bare-resize.ts): the baseline;
 *   - a `kelp volume` server (child process, default [resize] config) answering
 *     `/<fid>.jpg?width=200&height=200` from its volume;
 *   - the edge Worker in Miniflare with the variant cached (warm), which
 *     should make no resize at all: origin requests during the load are noted.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { startEdge } from '../../test/edge/harness.ts';
import { compare } from '../lib/compare.ts';
import { assignVolume, scratchDir, startKelpVolume } from '../lib/kelp.ts';
import { startServer } from '../lib/process.ts';
import type { Row } from '../lib/table.ts';
import { runWrk } from '../lib/wrk.ts';
import type { Bench, BenchContext } from '../run.ts';

const bareResize = fileURLToPath(new URL('../baselines/bare-resize.ts', import.meta.url));
const CONNECTIONS = 2;
const QUERY = 'width=200&height=200';
const FID = '1,0100000001deadbeef';

/** A 1250x800 (1 MP) photo-like JPEG: blurred noise, so it compresses like a picture, not like a flat fill. */
async function sourceJpeg(): Promise<Buffer> {
  const raw = await sharp({
    create: {
      width: 1250,
      height: 800,
      channels: 3,
      background: '#000',
      noise: { type: 'gaussian', mean: 128, sigma: 60 },
    },
  })
    .blur(2)
    .raw()
    .toBuffer({ resolveWithObject: true });
  return sharp(raw.data, { raw: raw.info }).jpeg({ quality: 85 }).toBuffer();
}

async function checkVariant(url: string, what: string): Promise<Response> {
  const res = await fetch(url);
  const body = Buffer.from(await res.arrayBuffer());
  if (res.status !== 200) throw new Error(`${what}: HTTP ${res.status} ${body.toString().slice(0, 200)}`);
  const m = await sharp(body).metadata();
  if (m.width !== 200 || m.height !== 200 || m.format !== 'jpeg')
    throw new Error(`${what}: got ${m.width}x${m.height} ${m.format}`);
  return res;
}

async function run(ctx: BenchContext): Promise<Row[]> {
  const scratch = scratchDir('resize');
  const jpeg = await sourceJpeg();
  const jpegPath = join(scratch.dir, 'source.jpg');
  writeFileSync(jpegPath, jpeg);
  console.error(`  source: 1250x800 JPEG, ${jpeg.length} bytes`);
  const opts = { ...ctx, connections: CONNECTIONS };
  const rows: Row[] = [];
  try {
    const kelpDir = join(scratch.dir, 'kelp');
    const origin = await compare(
      [
        {
          subject: 'bare node:http + sharp, buffer in memory',
          start: () => startServer([bareResize, jpegPath]),
          load: (port) => ({ url: `http://127.0.0.1:${port}/` }),
        },
        {
          subject: `kelp volume: /<fid>.jpg?${QUERY}`,
          start: async () => {
            const s = await startKelpVolume(kelpDir, 'never');
            await assignVolume(s.port, 1);
            const put = await fetch(`http://127.0.0.1:${s.port}/${FID}`, {
              method: 'PUT',
              headers: { 'content-type': 'image/jpeg' },
              body: new Uint8Array(jpeg),
            });
            if (put.status !== 201) throw new Error(`upload: HTTP ${put.status} ${await put.text()}`);
            await checkVariant(`http://127.0.0.1:${s.port}/${FID}.jpg?${QUERY}`, 'kelp volume');
            return s;
          },
          load: (port) => ({ url: `http://127.0.0.1:${port}/${FID}.jpg?${QUERY}` }),
        },
      ],
      { bench: 'resize', ...opts, goal: '>= 80 %' },
    );
    rows.push(...origin);

    const edge = await startEdge({ port: 0 });
    try {
      const fid = await edge.upload(new Uint8Array(jpeg), { name: 'photo.jpg', mime: 'image/jpeg' });
      const port = Number((await edge.mf.ready).port);
      const url = `http://127.0.0.1:${port}/${fid}.jpg?${QUERY}`;
      const miss = await checkVariant(url, 'edge miss');
      const hit = await checkVariant(url, 'edge hit');
      if (miss.headers.get('x-kelp-cache') !== 'MISS' || hit.headers.get('x-kelp-cache') !== 'HIT')
        throw new Error(
          `edge warm-up: ${miss.headers.get('x-kelp-cache')}, ${hit.headers.get('x-kelp-cache')}`,
        );
      const before = edge.originRequests();
      const results = [];
      for (let i = 0; i < ctx.rounds; i++)
        results.push(await runWrk({ url, connections: CONNECTIONS, durationSec: ctx.durationSec }));
      const rps = results.map((r) => r.reqPerSec).sort((a, b) => a - b)[Math.floor(results.length / 2)]!;
      const p50 = results.map((r) => r.p50Ms).sort((a, b) => a - b)[Math.floor(results.length / 2)]!;
      const p99 = results.map((r) => r.p99Ms).sort((a, b) => a - b)[Math.floor(results.length / 2)]!;
      const errors = results.reduce((n, r) => n + r.errors, 0);
      const baseRps = origin[0]!.reqPerSec!;
      for (const r of origin) r.note = [`c=${CONNECTIONS}`, r.note].filter(Boolean).join('; ');
      rows.push({
        bench: 'resize',
        subject: `edge Worker, variant cached: /<fid>.jpg?${QUERY}`,
        reqPerSec: rps,
        p50Ms: p50,
        p99Ms: p99,
        ratio: rps / baseRps,
        goal: '>> 100 %',
        note: `c=${CONNECTIONS}; ${edge.originRequests() - before} origin requests during load${errors ? `; ${errors} errors` : ''}`,
      });
    } finally {
      await edge.close();
    }
    return rows;
  } finally {
    scratch.remove();
  }
}

const bench: Bench = {
  name: 'resize',
  description: 'resizes/s of a 1 MP JPEG to 200x200 at c=2: bare sharp vs kelp volume vs a warm edge cache',
  run,
};
export default bench;
