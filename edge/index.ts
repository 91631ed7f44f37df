import { AutoRouter, type IRequest } from 'itty-router';
import type { Env } from './env.ts';

// The public read, lookup-cache and write routes arrive with the edge issue;
// until then the Worker answers its health check and 404s everything else.
const router = AutoRouter<IRequest, [Env, ExecutionContext]>();

router.get('/healthz', () => new Response('ok\n', { headers: { 'content-type': 'text/plain' } }));

export default { fetch: router.fetch } satisfies ExportedHandler<Env>;
