/**
 * What browsers see (issue 11 item 5), looked at in a real browser: Debian's
 * Chromium, driven by playwright-core, loads a page whose <img> and <a> tags
 * point at the edge Worker under `wrangler dev --env local` (the local stack's
 * own edge), in front of a real master and volume server. It checks the
 * decoded sizes of resized images (format=auto and a non-square box without a
 * mode), the pixel colours of a transparent PNG converted to JPEG, the
 * rendered text of a UTF-8 file, the names downloads are saved under, and the
 * cache headers every edge response carries. A screenshot of the page is kept
 * in test-artifacts/browser/.
 *
 * Chromium comes from Debian (npm test's setup installs it when missing,
 * test/support/system-packages.ts); Playwright's own browser downloads are
 * never used.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Response as PwResponse } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MasterServer, startMaster } from '../../origin/master/server.ts';
import { silentLogger } from '../../origin/observability/log.ts';
import { startVolumeServer, type VolumeServer } from '../../origin/volume/server.ts';
import type { AssignResponse } from '../../shared/api.ts';
import { launchChromium } from '../support/browser.ts';
import { freePort } from '../support/ports.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ARTIFACTS = join(ROOT, 'test-artifacts/browser');
const WRANGLER_START_MS = 90_000;
const TEXT = 'Grüße aus Köln: ½ € ✓ Ελληνικά Кириллица — “quoted”\n';

let work: string;
let master: MasterServer;
let volume: VolumeServer;
let wrangler: ChildProcess | undefined;
let edge: string;
let site: Server;
let siteUrl: string;
let browser: Browser;
const wranglerLog: string[] = [];

async function waitForHealth(url: string): Promise<void> {
  const deadline = Date.now() + WRANGLER_START_MS;
  for (;;) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (res.ok) return;
    } catch {
      // not up yet
    }
    if (wrangler?.exitCode !== null && wrangler?.exitCode !== undefined) {
      throw new Error(`wrangler dev exited (${wrangler.exitCode}):\n${wranglerLog.join('')}`);
    }
    if (Date.now() > deadline)
      throw new Error(`wrangler dev did not answer at ${url}:\n${wranglerLog.join('')}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function upload(data: Uint8Array, name: string, type: string): Promise<string> {
  const assigned = (await (await fetch(`http://${master.address}/dir/assign`)).json()) as AssignResponse;
  const form = new FormData();
  form.append('file', new Blob([new Uint8Array(data)], { type }), name);
  const res = await fetch(`http://${assigned.url}/${assigned.fid}`, { method: 'POST', body: form });
  if (res.status !== 201) throw new Error(`upload ${name}: ${res.status} ${await res.text()}`);
  return assigned.fid;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'kelp-browser-'));
  master = await startMaster({
    host: '127.0.0.1',
    port: 0,
    mdir: join(work, 'm'),
    pulseSeconds: 1,
    logger: silentLogger(),
  });
  volume = await startVolumeServer({
    host: '127.0.0.1',
    port: 0,
    locations: [{ dir: join(work, 'v'), maxVolumes: 8 }],
    master: master.address,
    pulseSeconds: 1,
    logger: silentLogger(),
  });
  const deadline = Date.now() + 10_000;
  while (master.topology.aliveNodes().length === 0 && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 50));

  const port = await freePort();
  edge = `http://127.0.0.1:${port}`;
  // A process group of its own, so workerd goes with it when it is stopped (by this pid only).
  wrangler = spawn(
    process.execPath,
    [
      join(ROOT, 'node_modules/wrangler/bin/wrangler.js'),
      'dev',
      '--env',
      'local',
      '--ip',
      '127.0.0.1',
      '--port',
      String(port),
      '--persist-to',
      join(work, 'wrangler'),
      '--var',
      `MASTER_URL:http://${master.address}`,
      '--show-interactive-dev-session=false',
    ],
    {
      cwd: ROOT,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false' },
    },
  );
  wrangler.stdout?.on('data', (c) => wranglerLog.push(String(c)));
  wrangler.stderr?.on('data', (c) => wranglerLog.push(String(c)));
  await waitForHealth(`${edge}/healthz`);

  // Debian's Chromium (npm test installs it: test/support/system-packages.ts).
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  await browser?.close().catch(() => {});
  site?.close();
  if (wrangler?.pid !== undefined && wrangler.exitCode === null) {
    try {
      process.kill(-wrangler.pid, 'SIGTERM');
    } catch {
      // already gone
    }
    await new Promise((r) => setTimeout(r, 500));
    try {
      process.kill(-wrangler.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  await volume?.close();
  await master?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A page on its own origin (as a site embedding Kelp URLs would be). */
async function servePage(html: string): Promise<void> {
  site = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(html);
  });
  await new Promise<void>((r) => site.listen(0, '127.0.0.1', r));
  siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}/`;
}

describe('a page of Kelp URLs in Chromium', () => {
  it('shows the right images, colours, text and file names, with consistent cache headers', async () => {
    const photo = await upload(
      await sharp({ create: { width: 400, height: 300, channels: 3, background: { r: 30, g: 110, b: 200 } } })
        .jpeg()
        .toBuffer(),
      'photo.jpg',
      'image/jpeg',
    );
    // Left half opaque red, right half transparent (colour channels black under it, as PNGs usually store them).
    const w = 40;
    const h = 20;
    const pixels = Buffer.alloc(w * h * 4);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w / 2; x++) pixels.set([220, 20, 20, 255], (y * w + x) * 4);
    const logo = await upload(
      await sharp(pixels, { raw: { width: w, height: h, channels: 4 } })
        .png()
        .toBuffer(),
      'logo.png',
      'image/png',
    );
    const note = await upload(new TextEncoder().encode(TEXT), 'note.txt', 'text/plain; charset=utf-8');

    await servePage(`<!doctype html>
<html><head><meta charset="utf-8"><title>Kelp in a browser</title>
<style>body{background:#f4f4f4;font:14px sans-serif} img{display:block;margin:8px} #flat{width:200px;height:100px;image-rendering:pixelated}</style>
</head><body>
<h1>Kelp through the edge</h1>
<img id="auto" src="${edge}/${photo}.jpg?width=200&format=auto">
<img id="box" src="${edge}/${photo}?width=120&height=60">
<img id="flat" src="${edge}/${logo}?format=jpeg">
<p><a id="webp" href="${edge}/${photo}?format=webp&dl=true">photo as WebP</a></p>
<p><a id="dl" href="${edge}/${note}.txt?dl=true">note (download)</a></p>
<p><a id="text" href="${edge}/${note}.txt">note</a></p>
</body></html>`);

    const context = await browser.newContext({ acceptDownloads: true, deviceScaleFactor: 1 });
    const page = await context.newPage();
    const edgeResponses: PwResponse[] = [];
    page.on('response', (r) => {
      if (r.url().startsWith(edge)) edgeResponses.push(r);
    });
    await page.goto(siteUrl, { waitUntil: 'load' });
    // Evaluated in the page (a string: the test's own TypeScript has no DOM types).
    const sizes = (await page.evaluate(`(async () => {
      const out = {};
      for (const img of document.images) {
        await img.decode();
        out[img.id] = [img.naturalWidth, img.naturalHeight];
      }
      return out;
    })()`)) as Record<string, [number, number]>;
    expect(sizes.auto).toEqual([200, 150]);
    // No mode, a non-square box: SeaweedFS's exact resize (stretched), documented in the README.
    expect(sizes.box).toEqual([120, 60]);
    expect(sizes.flat).toEqual([40, 20]);

    // The page's own script (another origin: the site's port, not the edge's) reads a blob with fetch(),
    // which it may only because --env local allows http://127.0.0.1:* (CORS_ALLOW_ORIGINS), and sees its ETag.
    // If-None-Match is not a CORS-safelisted header: Chromium asks the edge's preflight first.
    const fetched = (await page.evaluate(`(async () => {
      const r = await fetch(${JSON.stringify(`${edge}/${note}.txt`)}, { headers: { range: 'bytes=0-', 'if-none-match': '"other"' } });
      return { status: r.status, text: await r.text(), etag: r.headers.get('etag'), cache: r.headers.get('x-kelp-cache') };
    })()`)) as { status: number; text: string; etag: string | null; cache: string | null };
    expect(fetched.status).toBe(206);
    expect(fetched.text).toBe(TEXT);
    expect(fetched.etag).toMatch(/^"[0-9a-f]+"$/);
    expect(fetched.cache).toMatch(/^(HIT|MISS|REVALIDATED)$/);

    // format=auto: Chromium accepts AVIF, so it gets AVIF, marked Vary: Accept, never immutable (and Vary:
    // Origin: --env local allows cross-origin reads from a list of origins, edge/cors.ts).
    const auto = edgeResponses.find((r) => r.url().includes('format=auto'))!;
    const autoHeaders = await auto.allHeaders();
    expect(autoHeaders['content-type']).toBe('image/avif');
    expect(autoHeaders.vary).toBe('Accept, Origin');
    expect(autoHeaders['cache-control']).not.toMatch(/immutable/);

    // The transparent half is white, the opaque half red (scaled up 5x, pixelated, so each sample is one source pixel).
    const shot = await sharp(await page.locator('#flat').screenshot())
      .raw()
      .toBuffer({ resolveWithObject: true });
    const at = (x: number, y: number) => {
      const i = (y * shot.info.width + x) * shot.info.channels;
      return [shot.data[i]!, shot.data[i + 1]!, shot.data[i + 2]!] as const;
    };
    const [tr, tg, tb] = at(175, 50);
    expect(Math.min(tr, tg, tb), `transparent half is ${[tr, tg, tb]}`).toBeGreaterThan(235);
    const [or, og, ob] = at(25, 50);
    expect(or, `opaque half is ${[or, og, ob]}`).toBeGreaterThan(170);
    expect(Math.max(og, ob)).toBeLessThan(90);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'page.png'), fullPage: true });

    // Downloads are saved under the served format's name, at the edge as at the volume server.
    const [webp] = await Promise.all([page.waitForEvent('download'), page.click('#webp')]);
    expect(webp.suggestedFilename()).toBe('photo.webp');
    const [txt] = await Promise.all([page.waitForEvent('download'), page.click('#dl')]);
    expect(txt.suggestedFilename()).toBe('note.txt');

    // The UTF-8 text renders as written.
    await page.goto(`${edge}/${note}.txt`);
    expect(await page.evaluate('document.characterSet')).toBe('UTF-8');
    // biome-ignore lint/performance/useDomNodeTextContent: the rendered text is what is being checked.
    expect(await page.locator('body').innerText()).toBe(TEXT);
    await page.screenshot({ path: join(ARTIFACTS, 'note.png') });

    // Every edge response: CF-Cache-Status and X-Kelp-Cache agree.
    expect(edgeResponses.length).toBeGreaterThanOrEqual(4);
    for (const r of edgeResponses) {
      const h = await r.allHeaders();
      expect(h['cf-cache-status'], r.url()).toBe(h['x-kelp-cache']);
    }
    await context.close();

    // A browser that cannot show AVIF (no image/avif in its Accept) gets WebP for the same URL.
    const older = await browser.newContext();
    const olderPage = await older.newPage();
    await olderPage.route(`${edge}/**`, (route) =>
      route.continue({ headers: { ...route.request().headers(), accept: 'image/webp,image/*,*/*;q=0.8' } }),
    );
    const res = await olderPage.goto(`${edge}/${photo}.jpg?width=200&format=auto`);
    expect((await res!.allHeaders())['content-type']).toBe('image/webp');
    expect((await res!.allHeaders()).vary).toBe('Accept, Origin');
    const decoded = await sharp(await res!.body()).metadata();
    expect([decoded.format, decoded.width, decoded.height]).toEqual(['webp', 200, 150]);
    await older.close();
    writeFileSync(
      join(ARTIFACTS, 'README.txt'),
      `Screenshots from ${new Date().toISOString()} (test/browser/pages.test.ts)\n`,
    );
  }, 120_000);
});
