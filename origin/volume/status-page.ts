/**
 * A volume server's status page, `/ui/index.html` (where SeaweedFS serves
 * its own): its volumes with their state, its disks, its tier transfers and
 * the errors it answered lately. `/ui/fragments.json` gives the same sections
 * for the page's refresh (origin/http/html.ts). Read-only, and free of
 * secrets: no keys, no tokens, no query strings.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { httpStatusOf, KelpError, NotFoundError } from '../../shared/errors.ts';
import { formatPlacement } from '../../shared/placement.ts';
import { formatTtl } from '../../shared/ttl.ts';
import {
  bytes,
  esc,
  fragmentsOf,
  newNonce,
  renderPage,
  type Section,
  sendHtml,
  table,
} from '../http/html.ts';
import { sendJson } from '../http/respond.ts';
import { KELP_VERSION_STRING } from '../version.ts';
import type { Store } from './store.ts';
import type { TierContext } from './tier-handler.ts';
import type { VolumeStatus } from './volume.ts';

/** Errors the page lists, newest first. */
export const RECENT_ERRORS = 20;

interface ErrorEntry {
  at: string;
  method: string;
  /** The path alone: a query string may carry a token. */
  path: string;
  status: number;
  code: string;
  message: string;
}

/** The last RECENT_ERRORS server-side failures (5xx) this server answered. */
export class RecentErrors {
  private readonly entries: ErrorEntry[] = [];

  note(req: IncomingMessage, err: unknown): void {
    const status = httpStatusOf(err);
    if (status < 500) return;
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    this.entries.unshift({
      at: new Date().toISOString(),
      method: req.method ?? '?',
      path: (q < 0 ? url : url.slice(0, q)).slice(0, 200),
      status,
      code: err instanceof KelpError ? err.code : 'internal',
      // Unknown errors may carry internals: the page says only what a client was told.
      message: err instanceof KelpError ? err.message.slice(0, 300) : 'internal error',
    });
    if (this.entries.length > RECENT_ERRORS) this.entries.length = RECENT_ERRORS;
  }

  all(): readonly ErrorEntry[] {
    return this.entries;
  }
}

/** One word for a volume's state, as the page and `kelp admin volume.list` show it. */
export function volumeState(v: Pick<VolumeStatus, 'readOnly' | 'full' | 'remote' | 'moving'>): string {
  if (v.moving)
    return v.moving.role === 'source' ? `moving to ${v.moving.peer}` : `arriving from ${v.moving.peer}`;
  if (v.remote) return 'tiered';
  if (v.full) return 'full';
  return v.readOnly ? 'sealed' : 'writable';
}

function stateCell(state: string): string {
  const cls = state.split(' ')[0];
  return `<span class="state-${esc(cls)}">${esc(state)}</span>`;
}

export class VolumeStatusPage {
  readonly errors = new RecentErrors();
  private readonly store: Store;
  private readonly tier: TierContext;
  private readonly config: { master?: string; dataCenter: string; rack: string };

  constructor(
    store: Store,
    tier: TierContext,
    config: { master?: string; dataCenter: string; rack: string },
  ) {
    this.store = store;
    this.tier = tier;
    this.config = config;
  }

  sections(): Section[] {
    const volumes = this.store.volumeStatuses();
    const volumeRows = volumes.map((v) => {
      const garbage = v.size > 0 ? v.deletedByteCount / v.size : 0;
      return [
        `<span class="num">${esc(v.id)}</span>`,
        esc(v.collection || '(default)'),
        stateCell(volumeState(v)),
        `<span class="num">${esc(bytes(v.size))}</span>`,
        `<span class="num">${esc(v.fileCount)}</span>`,
        `<span class="num">${esc(`${(garbage * 100).toFixed(1)}%`)}</span>`,
        esc(formatPlacement(v.replicaPlacement)),
        esc(formatTtl(v.ttl) || '-'),
        `<span class="num">${esc(v.readsPerDay)}</span>`,
        esc(v.remote ?? 'local'),
      ];
    });
    const disks = this.store
      .diskStatuses()
      .map((d) => [
        esc(d.dir),
        `<span class="num">${esc(bytes(d.free))}</span>`,
        `<span class="num">${esc(bytes(d.all))}</span>`,
        `<span class="num">${esc(`${d.volumeCount} / ${d.maxVolumes}`)}</span>`,
        stateCell(d.full ? 'full' : 'writable'),
      ]);
    const jobs = this.tier.jobs
      .all()
      .map((j) => [
        esc(j.volumeId),
        esc(j.action),
        esc(j.backend),
        stateCell(j.state === 'failed' ? 'error' : j.state),
        `<span class="num">${esc(j.total ? `${Math.floor((j.bytes / j.total) * 100)}%` : '-')}</span>`,
        esc(j.error ?? ''),
      ]);
    const errors = this.errors
      .all()
      .map((e) => [
        esc(e.at),
        esc(`${e.method} ${e.path}`),
        `<span class="num">${esc(e.status)}</span>`,
        esc(e.code),
        esc(e.message),
      ]);
    return [
      {
        id: 'volumes',
        title: 'Volumes',
        html: table(
          'volumes',
          [
            'Id',
            'Collection',
            'State',
            'Size',
            'Files',
            'Garbage',
            'Replication',
            'TTL',
            'Reads/day',
            'Data',
          ],
          volumeRows,
          'no volumes yet',
        ),
      },
      {
        id: 'disks',
        title: 'Disks',
        html: table('disks', ['Directory', 'Free', 'Size', 'Volumes / slots', 'State'], disks, 'no disks'),
      },
      {
        id: 'tier',
        title: 'Tier transfers',
        html: table('tier', ['Volume', 'Action', 'Backend', 'State', 'Done', 'Error'], jobs, 'none'),
      },
      {
        id: 'errors',
        title: 'Recent errors',
        html: table('errors', ['Time', 'Request', 'Status', 'Code', 'Message'], errors, 'none'),
      },
    ];
  }

  handle(res: ServerResponse, pathname: string): void {
    if (pathname === '/ui/fragments.json') {
      sendJson(res, 200, fragmentsOf(this.sections()), { 'Cache-Control': 'no-store' });
      return;
    }
    if (pathname !== '/ui/index.html' && pathname !== '/ui/') throw new NotFoundError(`no page ${pathname}`);
    const nonce = newNonce();
    const where = `${this.config.dataCenter} / ${this.config.rack}`;
    sendHtml(
      res,
      renderPage({
        title: 'Kelp volume server',
        subtitle: `${KELP_VERSION_STRING} · ${where} · master ${this.config.master ?? 'none'}`,
        sections: this.sections(),
        fragmentsUrl: '/ui/fragments.json',
        nonce,
      }),
      nonce,
    );
  }
}
