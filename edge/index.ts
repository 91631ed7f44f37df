/**
 * The Kelp edge Worker: public blob URLs served from the Cache API, volume
 * lookups cached per isolate and per colo, writes forwarded with auth, purge
 * events from volume servers.
 */
import { AutoRouter, type IRequest } from 'itty-router';
import { MethodNotAllowedError } from '../shared/errors.ts';
import { type CorsPolicy, preflight, withCors } from './cors.ts';
import { type Env, edgeConfig } from './env.ts';
import { handlePurge, PURGE_PATH } from './purge.ts';
import { handlePublicRead } from './read.ts';
import { errorResponse } from './respond.ts';
import { handleDelete, handleSubmit } from './write.ts';

const HEALTH_PATH = '/healthz';

const router = AutoRouter<IRequest, [Env, ExecutionContext]>({
  catch: (err) => errorResponse(err),
  missing: (req) =>
    errorResponse(new MethodNotAllowedError(`${req.method} ${new URL(req.url).pathname} is not served here`)),
});

router
  .get(HEALTH_PATH, () => new Response('ok\n', { headers: { 'content-type': 'text/plain' } }))
  .post('/submit', (req, env) => handleSubmit(req, env))
  .post(PURGE_PATH, (req, env, ctx) => handlePurge(req, env, ctx))
  .get('*', (req, env, ctx) => handlePublicRead(req, env, ctx))
  .head('*', (req, env, ctx) => handlePublicRead(req, env, ctx))
  .delete('*', (req, env, ctx) => handleDelete(req, env, ctx));

/**
 * Public reads, the hot path, go to their handler directly: the router would
 * parse the URL and its query once more, wrap the request in a Proxy and await
 * its before/finally steps, per read (docs/decisions/0010-origin-free-reads.md,
 * "Warm read cost"). Every other path still goes through it.
 */
async function fetchHandler(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
  const method = request.method;
  if ((method === 'GET' || method === 'HEAD') && !request.url.includes(HEALTH_PATH)) {
    let res: Response;
    try {
      res = await handlePublicRead(request, env, ctx);
    } catch (err) {
      res = errorResponse(err);
    }
    const cors = corsOf(env);
    return cors ? withCors(res, request, cors) : res;
  }
  if (method === 'OPTIONS' && env.CORS_ALLOW_ORIGINS) {
    try {
      const cors = edgeConfig(env).cors;
      if (cors) return preflight(request, cors);
    } catch (err) {
      return errorResponse(err);
    }
  }
  return router.fetch(request, env, ctx);
}

/**
 * The CORS policy (edge/cors.ts), when CORS_ALLOW_ORIGINS is set. Undefined
 * when the configuration does not parse: the read has already answered with
 * that error, and no origin is allowed by a list nobody can read.
 */
function corsOf(env: Env): CorsPolicy | undefined {
  if (!env.CORS_ALLOW_ORIGINS) return undefined;
  try {
    return edgeConfig(env).cors;
  } catch {
    return undefined;
  }
}

export default { fetch: fetchHandler } satisfies ExportedHandler<Env>;
