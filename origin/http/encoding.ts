import type { IncomingMessage } from 'node:http';

/** Whether the client takes gzip: `Accept-Encoding` names gzip (or `*`) with a q-value above 0. */
export function acceptsGzip(req: IncomingMessage): boolean {
  const ae = req.headers['accept-encoding'];
  if (ae === undefined) return false;
  for (const member of ae.split(',')) {
    const [coding, ...params] = member.split(';').map((s) => s.trim().toLowerCase());
    if (coding !== 'gzip' && coding !== 'x-gzip' && coding !== '*') continue;
    const q = params.find((p) => p.startsWith('q='));
    return q === undefined || Number(q.slice(2)) > 0;
  }
  return false;
}
