/**
 * The Kelp edge Worker: public blob URLs served from the Cache API, volume
 * lookups cached per isolate and per colo, writes forwarded with auth, purge
 * events from volume servers.
 */
import { AutoRouter, type IRequest } from 'itty-router';
import { MethodNotAllowedError } from '../shared/errors.ts';
import type { Env } from './env.ts';
import { handlePurge, PURGE_PATH } from './purge.ts';
import { handlePublicRead } from './read.ts';
import { errorResponse } from './respond.ts';
import { handleDelete, handleSubmit } from './write.ts';

const router = AutoRouter<IRequest, [Env, ExecutionContext]>({
  catch: (err) => errorResponse(err),
  missing: (req) =>
    errorResponse(new MethodNotAllowedError(`${req.method} ${new URL(req.url).pathname} is not served here`)),
});

router
  .get('/healthz', () => new Response('ok\n', { headers: { 'content-type': 'text/plain' } }))
  .post('/submit', (req, env) => handleSubmit(req, env))
  .post(PURGE_PATH, (req, env, ctx) => handlePurge(req, env, ctx))
  .get('*', (req, env, ctx) => handlePublicRead(req, env, ctx))
  .head('*', (req, env, ctx) => handlePublicRead(req, env, ctx))
  .delete('*', (req, env, ctx) => handleDelete(req, env, ctx));

export default { fetch: router.fetch } satisfies ExportedHandler<Env>;
