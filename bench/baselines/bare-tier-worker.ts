/**
 * The baseline of bench/benches/edge-tier.ts: a Worker that does one ranged
 * read of a tier object and nothing else. `GET /<offset>/<length>` reads those
 * bytes of the object named by OBJECT_KEY, through the R2 binding TIER when
 * MODE is "r2", else with a SigV4-signed ranged GET (aws4fetch, as the Kelp
 * Worker signs) to S3_ENDPOINT/BUCKET. With MATCH_FIRST = "true" it first asks
 * the Cache API for the request (a miss), as any caching Worker must before
 * it reads further: the floor of a Worker that caches. Bundled by the bench
 * like the Kelp Worker.
 */
import { AwsClient } from 'aws4fetch';

interface BareEnv {
  MODE: string;
  MATCH_FIRST?: string;
  OBJECT_KEY: string;
  BUCKET: string;
  S3_ENDPOINT?: string;
  ACCESS_KEY_ID?: string;
  SECRET_ACCESS_KEY?: string;
  TIER?: {
    get(
      key: string,
      o: { range: { offset: number; length: number } },
    ): Promise<{ arrayBuffer(): Promise<ArrayBuffer> } | null>;
  };
}

let client: AwsClient | undefined;

/** The Worker's Cache API (this file is type-checked with Node's types, which lack it). */
function workerCaches(): { default: { match(r: Request): Promise<Response | undefined> } } {
  return (globalThis as unknown as { caches: ReturnType<typeof workerCaches> }).caches;
}

export default {
  async fetch(request: Request, env: BareEnv): Promise<Response> {
    const [, off, len] = new URL(request.url).pathname.split('/');
    const offset = Number(off);
    const length = Number(len);
    if (env.MATCH_FIRST === 'true') await workerCaches().default.match(request);
    if (env.MODE === 'r2') {
      const obj = await env.TIER!.get(env.OBJECT_KEY, { range: { offset, length } });
      if (!obj) return new Response('missing\n', { status: 404 });
      return new Response(await obj.arrayBuffer(), {
        headers: { 'content-type': 'application/octet-stream' },
      });
    }
    client ??= new AwsClient({
      accessKeyId: env.ACCESS_KEY_ID!,
      secretAccessKey: env.SECRET_ACCESS_KEY!,
      service: 's3',
      region: 'us-east-1',
      retries: 0,
    });
    const req = await client.sign(`${env.S3_ENDPOINT}/${env.BUCKET}/${env.OBJECT_KEY}`, {
      headers: { range: `bytes=${offset}-${offset + length - 1}` },
    });
    const res = await fetch(req);
    return new Response(await res.arrayBuffer(), {
      status: res.status === 206 ? 200 : res.status,
      headers: { 'content-type': 'application/octet-stream' },
    });
  },
};
