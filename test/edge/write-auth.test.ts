/**
 * The edge's own client authentication for its public writes (issue 10):
 * `POST /submit` and `DELETE /<fid>` need one of WRITE_KEYS as
 * `Authorization: Bearer`, checked before any origin request; origin only
 * ever sees the Worker's credentials (MASTER_CLIENT_KEY for the master, the
 * master's delete token for the volume server). The cluster here is secured
 * the way production is: a JWT signing key on master and volume server, and
 * client keys on the master.
 *
 * `clientKeys` on the master lands on another branch; until then the master
 * ignores it. Every assertion here holds either way except the 502 branch of
 * "an edge whose MASTER_CLIENT_KEY the master refuses", which runs when the
 * master is seen to enforce client keys (and checks the open answer otherwise).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MasterConfig } from '../../origin/master/server.ts';
import {
  bytes,
  type EdgeCluster,
  type ExtraWorker,
  multipart,
  randomBlob,
  sleep,
  startEdge,
} from './harness.ts';

const SIGNING_KEY = 'cluster-jwt-signing-key-for-edge-tests';
/** The Worker's credential at the master (one of the master's client keys). */
const MASTER_KEY = 'master-client-key-held-by-the-edge';
/** Two caller keys, as during a rotation. */
const KEY_A = 'caller-write-key-a-5f1c0e';
const KEY_B = 'caller-write-key-b-9d27a4';
/** A small limit so the 413 needs no large body. */
const MAX_UPLOAD_BYTES = 16 * 1024;
/** The edge allows this much multipart framing on top of the file limit (edge/write.ts). */
const MULTIPART_SLACK_BYTES = 64 * 1024;
const OVER_LIMIT = MAX_UPLOAD_BYTES + MULTIPART_SLACK_BYTES + 1;
/** How long an answer to a body that never ends may take: the edge must not wait for the body. */
const DECLARED_LIMIT_WAIT_MS = 3000;

let edge: EdgeCluster;
/** Whether the master refuses `/dir/assign` without a client key (the master-side branch has landed). */
let masterEnforces = false;

beforeAll(async () => {
  edge = await startEdge({
    master: { signingKey: SIGNING_KEY, clientKeys: [MASTER_KEY] } as Partial<MasterConfig>,
    volume: { signingKey: SIGNING_KEY },
    clientKey: MASTER_KEY,
    vars: {
      WRITE_KEYS: ` ${KEY_A}, ${KEY_B} `,
      MASTER_CLIENT_KEY: MASTER_KEY,
      MAX_UPLOAD_BYTES: String(MAX_UPLOAD_BYTES),
    },
  });
  const probe = await fetch(`http://${edge.master.address}/dir/assign`);
  masterEnforces = probe.status === 401;
  await probe.body?.cancel();
}, 60_000);
afterAll(async () => {
  await edge?.close();
});

/** Runs `fn` and returns how many requests the origins (master + volume servers) saw meanwhile. */
async function originRequestsDuring(fn: () => Promise<void>): Promise<number> {
  const before = edge.originRequests();
  await fn();
  return edge.originRequests() - before;
}

type Fetcher = Pick<ExtraWorker, 'fetch'>;

async function submit(
  via: Fetcher,
  data: Uint8Array,
  authorization?: string,
  name = 'up.bin',
): Promise<Response> {
  const { body, headers } = await multipart(data, name);
  return via.fetch('/submit', {
    method: 'POST',
    body,
    headers: authorization === undefined ? headers : { ...headers, authorization },
  });
}

function del(via: Fetcher, path: string, authorization?: string): Promise<Response> {
  return via.fetch(path, { method: 'DELETE', headers: authorization === undefined ? {} : { authorization } });
}

/** Straight at the volume server (its token check applies to writes and deletes, not reads). */
function originGet(fid: string): Promise<Response> {
  return fetch(`http://${edge.volumes[0]!.url}/${fid}`);
}

async function errorOf(res: Response): Promise<{ status: number; code: string; error: string }> {
  const body = (await res.json()) as { code: string; error: string };
  return { status: res.status, ...body };
}

/**
 * POST /submit declaring OVER_LIMIT bytes with a body that sends 1 KiB and then never ends:
 * the answer must come without the body being read (undefined if none comes in time).
 */
async function declaredOverLimit(authorization: string | undefined): Promise<Response | undefined> {
  let pull = 0;
  const endless = new ReadableStream<Uint8Array>({
    pull: async (c) => {
      if (pull++ === 0) c.enqueue(new Uint8Array(1024));
      else await new Promise(() => {});
    },
  });
  return Promise.race([
    edge.fetch('/submit', {
      method: 'POST',
      body: endless,
      duplex: 'half',
      headers: {
        'content-type': 'application/octet-stream',
        'content-length': String(OVER_LIMIT),
        ...(authorization ? { authorization } : {}),
      },
    } as RequestInit),
    sleep(DECLARED_LIMIT_WAIT_MS).then(() => undefined),
  ]);
}

/** No request that reached origin carries any of `secrets`, in a header or in the URL. */
function expectNeverAtOrigin(...secrets: string[]): void {
  for (const seen of edge.originSeen()) {
    const text = `${seen.path} ${JSON.stringify(seen.headers)}`;
    for (const s of secrets) expect(text, `${seen.method} ${seen.path}`).not.toContain(s);
  }
}

/** The claims of a JWT, unverified (the volume server verifies it). */
function jwtClaims(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
}

describe('with a write key', () => {
  it('submits with either key; the master sees the edge MASTER_CLIENT_KEY, never the caller key', async () => {
    for (const key of [KEY_A, KEY_B]) {
      const data = randomBlob(3000);
      const submitsBefore = edge.masterProxy.seen.length;
      const res = await submit(edge, data, `Bearer ${key}`, 'a.bin');
      expect(res.status).toBe(201);
      expect(res.headers.get('cache-control')).toBe('no-store');
      const out = (await res.json()) as { fid: string; size: number };
      expect(out.size).toBe(3000);
      const read = await originGet(out.fid);
      expect(read.status).toBe(200);
      expect(await bytes(read)).toEqual(data);
      const forwarded = edge.masterProxy.seen
        .slice(submitsBefore)
        .filter((s) => s.path.startsWith('/submit'));
      expect(forwarded).toHaveLength(1);
      expect(forwarded[0]!.headers.authorization).toBe(`Bearer ${MASTER_KEY}`);
    }
    expectNeverAtOrigin(KEY_A, KEY_B);
  });

  it('accepts the Bearer scheme in any case (RFC 7235)', async () => {
    for (const scheme of ['bearer', 'BEARER', 'bEaReR']) {
      const res = await submit(edge, randomBlob(100), `${scheme}  ${KEY_A}`);
      expect(res.status, scheme).toBe(201);
      const { fid } = (await res.json()) as { fid: string };
      const gone = await del(edge, `/${fid}`, `${scheme} ${KEY_B}`);
      expect(gone.status, scheme).toBe(202);
      await bytes(gone);
      expect((await originGet(fid)).status, scheme).toBe(404);
    }
  });

  it('deletes at origin with a delete token the master signs for the edge, and purges the cached variants', async () => {
    const data = randomBlob(800);
    const fid = await edge.upload(data, { name: 'd.txt', mime: 'text/plain' });
    // The volume server checks tokens: a delete without one is refused, so the edge's must carry a real one.
    const unsigned = await fetch(`http://${edge.volumes[0]!.url}/${fid}`, { method: 'DELETE' });
    expect(unsigned.status).toBe(401);
    await unsigned.body?.cancel();
    for (const path of [`/${fid}`, `/${fid}.txt`]) {
      expect((await edge.fetch(path)).headers.get('x-kelp-cache'), path).toBe('MISS');
      expect((await edge.fetch(path)).headers.get('x-kelp-cache'), path).toBe('HIT');
    }
    const seenBefore = new Set(edge.originSeen());

    const res = await del(edge, `/${fid}`, `Bearer ${KEY_B}`);
    expect(res.status).toBe(202);
    expect(res.headers.get('cache-control')).toBe('no-store');
    await bytes(res);

    expect((await originGet(fid)).status).toBe(404);
    for (const path of [`/${fid}`, `/${fid}.txt`]) {
      const after = await edge.fetch(path);
      expect([after.status, after.headers.get('x-kelp-cache')], path).toEqual([404, 'MISS']);
      await bytes(after);
    }
    const during = edge.originSeen().filter((s) => !seenBefore.has(s));
    const tokenLookup = during.find((s) => s.path.startsWith('/dir/lookup?fileId='));
    expect(tokenLookup?.path).toBe(`/dir/lookup?fileId=${fid}`);
    expect(tokenLookup?.headers.authorization).toBe(`Bearer ${MASTER_KEY}`);
    const deletes = during.filter((s) => s.method === 'DELETE');
    expect(deletes).toHaveLength(1);
    expect(deletes[0]!.path).toBe(`/${fid}`);
    const m = /^Bearer (\S+)$/.exec(deletes[0]!.headers.authorization ?? '');
    expect(m).not.toBeNull();
    expect(jwtClaims(m![1]!).fid).toBe(fid);
    expectNeverAtOrigin(KEY_A, KEY_B);
  });

  it('deletes one fid of a batch (fid_N) with the token for its batch, leaving the others', async () => {
    const { fids, blobs } = await edge.uploadBatch(3, 200);
    const res = await del(edge, `/${fids[2]}`, `Bearer ${KEY_A}`);
    expect(res.status).toBe(202);
    await bytes(res);
    expect((await originGet(fids[2]!)).status).toBe(404);
    for (const i of [0, 1]) {
      const kept = await originGet(fids[i]!);
      expect(kept.status).toBe(200);
      expect(await bytes(kept)).toEqual(blobs[i]);
    }
  });

  it('refuses query parameters on DELETE (a caller jwt or type=replicate is not theirs to set), before origin', async () => {
    const fid = await edge.upload(randomBlob(100));
    const n = await originRequestsDuring(async () => {
      for (const q of ['?type=replicate', '?jwt=abc', '?x=1']) {
        const res = await del(edge, `/${fid}${q}`, `Bearer ${KEY_A}`);
        expect((await errorOf(res)).code, q).toBe('invalid_param');
      }
    });
    expect(n).toBe(0);
    expect((await originGet(fid)).status).toBe(200);
  });

  it('refuses a body over MAX_UPLOAD_BYTES with 413 (before origin when its length is declared); one under it is stored', async () => {
    const n = await originRequestsDuring(async () => {
      // A declared Content-Length over the limit is refused before the body is read: this body never
      // ends. (A whole body could not be used: the edge answers before reading it, and a client still
      // writing tens of KiB then sees the connection close instead of the answer.)
      const declared = await declaredOverLimit(`Bearer ${KEY_A}`);
      expect(declared?.status).toBe(413);
      const err = await errorOf(declared!);
      expect([err.status, err.code]).toEqual([413, 'payload_too_large']);
      expect(err.error).toContain('MAX_UPLOAD_BYTES');
      // Authentication comes first: an unauthenticated caller learns nothing of the limit.
      const anonymous = await declaredOverLimit(undefined);
      expect(anonymous?.status).toBe(401);
      await anonymous?.body?.cancel();
    });
    expect(n).toBe(0);
    // A body without a Content-Length streams and is cut off at the limit: test/edge/submit.test.ts.
    const ok = await submit(edge, randomBlob(MAX_UPLOAD_BYTES - 1024), `Bearer ${KEY_A}`);
    expect(ok.status).toBe(201);
    await bytes(ok);
  });
});

describe('without a valid write key', () => {
  const BAD: (string | undefined)[] = [
    undefined,
    'Bearer wrong-key',
    `Bearer ${KEY_A}x`,
    `Bearer ${KEY_A.slice(0, -1)}`,
    `Bearer ${KEY_A}, ${KEY_B}`,
    'Bearer',
    KEY_A,
    `Basic ${btoa(`user:${KEY_A}`)}`,
    `Token ${KEY_A}`,
  ];

  it('answers 401 with WWW-Authenticate: Bearer to /submit and DELETE, with no origin request, and loses nothing', async () => {
    const data = randomBlob(500);
    const fid = await edge.upload(data);
    const n = await originRequestsDuring(async () => {
      for (const auth of BAD) {
        for (const res of [await submit(edge, randomBlob(100), auth), await del(edge, `/${fid}`, auth)]) {
          expect(res.headers.get('www-authenticate'), auth).toBe('Bearer');
          expect(res.headers.get('cache-control'), auth).toBe('no-store');
          const err = await errorOf(res);
          expect([err.status, err.code], auth).toEqual([401, 'unauthorized']);
          expect(err.error, auth).not.toContain(KEY_A);
        }
      }
    });
    expect(n).toBe(0);
    const kept = await originGet(fid);
    expect(kept.status).toBe(200);
    expect(await bytes(kept)).toEqual(data);
  });
});

describe('edge configuration', () => {
  it('refuses every write with 403 naming WRITE_KEYS when neither WRITE_KEYS nor PUBLIC_WRITES is set', async () => {
    const closed = await edge.worker({ MASTER_CLIENT_KEY: MASTER_KEY, PUBLIC_WRITES: 'false' });
    try {
      const fid = await edge.upload(randomBlob(100));
      const n = await originRequestsDuring(async () => {
        for (const auth of [undefined, `Bearer ${KEY_A}`, `Bearer ${MASTER_KEY}`]) {
          for (const res of [
            await submit(closed, randomBlob(100), auth),
            await del(closed, `/${fid}`, auth),
          ]) {
            const err = await errorOf(res);
            expect([err.status, err.code], auth).toEqual([403, 'forbidden']);
            expect(err.error).toContain('WRITE_KEYS');
          }
        }
      });
      expect(n).toBe(0);
      expect((await originGet(fid)).status).toBe(200);
      // Reads stay open.
      expect((await closed.fetch(`/${fid}`)).status).toBe(200);
    } finally {
      await closed.close();
    }
  });

  it('PUBLIC_WRITES=true writes without a key and still never forwards what the caller sent', async () => {
    const open = await edge.worker({ PUBLIC_WRITES: 'true', MASTER_CLIENT_KEY: MASTER_KEY });
    try {
      const res = await submit(open, randomBlob(300), 'Bearer callers-own-secret-7c1d');
      expect(res.status).toBe(201);
      const { fid } = (await res.json()) as { fid: string };
      const gone = await del(open, `/${fid}`);
      expect(gone.status).toBe(202);
      await bytes(gone);
      expect((await originGet(fid)).status).toBe(404);
      expectNeverAtOrigin('callers-own-secret-7c1d');
    } finally {
      await open.close();
    }
  });

  it('WRITE_KEYS wins over PUBLIC_WRITES: a stray PUBLIC_WRITES does not open a keyed edge', async () => {
    const keyed = await edge.worker({
      WRITE_KEYS: KEY_A,
      PUBLIC_WRITES: 'true',
      MASTER_CLIENT_KEY: MASTER_KEY,
    });
    try {
      const n = await originRequestsDuring(async () => {
        const res = await submit(keyed, randomBlob(100));
        expect((await errorOf(res)).status).toBe(401);
      });
      expect(n).toBe(0);
      const ok = await submit(keyed, randomBlob(100), `Bearer ${KEY_A}`);
      expect(ok.status).toBe(201);
      await bytes(ok);
    } finally {
      await keyed.close();
    }
  });

  it('an edge whose MASTER_CLIENT_KEY the master refuses answers 502 naming MASTER_CLIENT_KEY', async () => {
    const misconfigured = await edge.worker({ WRITE_KEYS: KEY_A, MASTER_CLIENT_KEY: 'not-a-client-key' });
    try {
      const fid = await edge.upload(randomBlob(100));
      const up = await submit(misconfigured, randomBlob(100), `Bearer ${KEY_A}`);
      const gone = await del(misconfigured, `/${fid}`, `Bearer ${KEY_A}`);
      if (masterEnforces) {
        // The caller's key was right: the edge's own credential is at fault, so not a 401 to the caller.
        for (const res of [up, gone]) {
          const err = await errorOf(res);
          expect([err.status, err.code]).toEqual([502, 'upstream_failed']);
          expect(err.error).toMatch(/MASTER_CLIENT_KEY/);
          expect(err.error).not.toContain('not-a-client-key');
        }
        expect((await originGet(fid)).status).toBe(200);
      } else {
        // Master without client keys (its branch has not landed): the key is not checked there.
        expect([up.status, gone.status]).toEqual([201, 202]);
        await Promise.all([bytes(up), bytes(gone)]);
      }
      const lookups = edge.masterProxy.seen.filter((s) => s.path === `/dir/lookup?fileId=${fid}`);
      expect(lookups.map((s) => s.headers.authorization)).toEqual(['Bearer not-a-client-key']);
    } finally {
      await misconfigured.close();
    }
  });
});
