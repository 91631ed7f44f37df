/**
 * Server-rendered status pages (the master's `/`, a volume server's
 * `/ui/index.html`), as SeaweedFS serves them: no build step, no client-side
 * templates. The page is whole when it arrives; a small inline script then
 * fetches the same sections, rendered again by the server, as JSON every
 * REFRESH_MS and swaps each one in, so the page stays current without a
 * reload. All rendering, and so all escaping, happens here on the server:
 * every value goes through `esc`, and a Content-Security-Policy with a
 * per-response nonce allows only the page's own script.
 */
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';

/** Between two refreshes of a status page. */
export const REFRESH_MS = 2_000;

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Text or an attribute value made inert: the five characters HTML gives meaning to. */
export function esc(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/** `1.5 GiB`: sizes as people read them. */
export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** A table: headers, then rows of cells that are already HTML (escape values with `esc`). */
export function table(id: string, headers: string[], rows: string[][], empty: string): string {
  if (rows.length === 0) return `<p class="empty" data-table="${esc(id)}">${esc(empty)}</p>`;
  const head = headers.map((h) => `<th>${esc(h)}</th>`).join('');
  const body = rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('\n');
  return `<table data-table="${esc(id)}"><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

export interface Section {
  id: string;
  title: string;
  html: string;
}

/** What the page's script fetches: each section's HTML by id, and when it was made. */
export interface Fragments {
  updated: string;
  sections: Record<string, string>;
}

export function fragmentsOf(sections: Section[], now = new Date()): Fragments {
  return { updated: now.toISOString(), sections: Object.fromEntries(sections.map((s) => [s.id, s.html])) };
}

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1a1a1a}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse;margin:.3em 0}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f2f4f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
.state-writable{color:#0a6b2d}.state-sealed,.state-readonly{color:#8a5a00}.state-full,.state-dead,.state-error{color:#b00020}
.state-tiered,.state-moving{color:#1b4fa0}.meta{color:#555}.stale{color:#b00020}.empty{color:#666;font-style:italic}
`;

/** The script: fetch the sections, swap each changed one in, count refreshes (tests read the count). */
function script(fragmentsUrl: string, refreshMs: number): string {
  return `
(() => {
  const url = ${JSON.stringify(fragmentsUrl)};
  const body = document.body;
  body.dataset.refreshes = '0';
  const tick = async () => {
    try {
      const res = await fetch(url, { cache: 'no-store', headers: { accept: 'application/json' } });
      if (!res.ok) throw new Error(String(res.status));
      const data = await res.json();
      for (const [id, html] of Object.entries(data.sections)) {
        const el = document.getElementById(id);
        if (el && el.innerHTML !== html) el.innerHTML = html;
      }
      const updated = document.getElementById('updated');
      updated.textContent = data.updated;
      updated.className = '';
      body.dataset.refreshes = String(Number(body.dataset.refreshes) + 1);
    } catch (err) {
      const updated = document.getElementById('updated');
      updated.textContent = 'not refreshed: ' + err.message;
      updated.className = 'stale';
    } finally {
      setTimeout(tick, ${refreshMs});
    }
  };
  setTimeout(tick, ${refreshMs});
})();`;
}

/** The whole page, its sections already rendered. */
export function renderPage(opts: {
  title: string;
  subtitle: string;
  sections: Section[];
  fragmentsUrl: string;
  nonce: string;
  refreshMs?: number;
}): string {
  const sections = opts.sections
    .map((s) => `<h2>${esc(s.title)}</h2>\n<section id="${esc(s.id)}">${s.html}</section>`)
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(opts.title)}</title>
<style nonce="${opts.nonce}">${STYLE}</style></head>
<body>
<h1>${esc(opts.title)}</h1>
<p class="meta">${esc(opts.subtitle)} · updated <span id="updated">${esc(new Date().toISOString())}</span></p>
${sections}
<script nonce="${opts.nonce}">${script(opts.fragmentsUrl, opts.refreshMs ?? REFRESH_MS)}</script>
</body></html>
`;
}

/** A fresh nonce for one response's script and style. */
export function newNonce(): string {
  return randomBytes(16).toString('base64');
}

/** Sends a status page with a CSP that allows only its own nonce'd script and style, and same-origin fetches. */
export function sendHtml(res: ServerResponse, html: string, nonce: string): void {
  const body = Buffer.from(html);
  res.writeHead(200, {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': body.length,
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    'Content-Security-Policy': `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
  });
  res.end(res.req?.method === 'HEAD' ? undefined : body);
}
