/**
 * The baseline of tiered reads against S3 (bench/benches/tier-read.ts): a bare
 * loop doing the same signed ranged GETs a tiered read makes, with a lean
 * client and nothing else: the SDK's SigV4 signer, a keep-alive `node:http`
 * agent, `connections` requests in flight for `durationSec`, each at a random
 * needle record of the object. No Kelp code, no range checks, no retries: the
 * cost of the store and of one signed GET, which a tiered read cannot undercut.
 *
 * Run as a child process; config in KELP_S3_LOOP (JSON), one line of JSON
 * (a LoadResult) on stdout. Only loopback endpoints.
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { S3Client } from '@aws-sdk/client-s3';
import type { LoadResult } from './wrk.ts';

interface LoopConfig {
  endpoint: string;
  region: string;
  bucket: string;
  key: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** A file of `offset length` lines: the needle records to read. */
  rangesFile: string;
  connections: number;
  durationSec: number;
}

const config = JSON.parse(process.env.KELP_S3_LOOP ?? '{}') as LoopConfig;
const url = new URL(config.endpoint);
if (url.hostname !== '127.0.0.1' && url.hostname !== 'localhost') {
  throw new Error(`refusing to send load to ${url.hostname}: benchmarks target loopback only`);
}
const ranges = readFileSync(config.rangesFile, 'utf8')
  .trim()
  .split('\n')
  .map((line) => line.split(' ').map(Number) as [number, number]);
const client = new S3Client({
  region: config.region,
  endpoint: config.endpoint,
  forcePathStyle: true,
  credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey },
});
const signer = await client.config.signer();
const agent = new Agent({ keepAlive: true, maxSockets: config.connections });
const path = `/${config.bucket}/${config.key}`;

async function get(): Promise<boolean> {
  const [offset, length] = ranges[Math.floor(Math.random() * ranges.length)]!;
  const signed = await signer.sign({
    method: 'GET',
    protocol: 'http:',
    hostname: url.hostname,
    port: Number(url.port),
    path,
    query: {},
    headers: {
      host: url.host,
      range: `bytes=${offset}-${offset + length - 1}`,
      'x-amz-content-sha256': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    },
  });
  return new Promise((resolve) => {
    const req = request(
      { agent, hostname: url.hostname, port: url.port, path, method: 'GET', headers: signed.headers },
      (res) => {
        let got = 0;
        res.on('data', (chunk: Buffer) => {
          got += chunk.byteLength;
        });
        res.on('end', () => resolve(res.statusCode === 206 && got === length));
        res.on('error', () => resolve(false));
      },
    );
    req.on('error', () => resolve(false));
    req.end();
  });
}

const latencies: number[] = [];
let errors = 0;
const cpuAtStart = process.cpuUsage();
const started = performance.now();
const end = started + config.durationSec * 1000;
await Promise.all(
  Array.from({ length: config.connections }, async () => {
    while (performance.now() < end) {
      const t = performance.now();
      if (await get()) latencies.push(performance.now() - t);
      else errors++;
    }
  }),
);
const seconds = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpuAtStart);
latencies.sort((a, b) => a - b);
const pct = (p: number) =>
  latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? 0;
const result: LoadResult & { cpuUsPerRequest: number } = {
  reqPerSec: latencies.length / seconds,
  p50Ms: pct(50),
  p99Ms: pct(99),
  requests: latencies.length + errors,
  errors,
  /** The loop's own CPU (signing, HTTP), per request. */
  cpuUsPerRequest: (cpu.user + cpu.system) / Math.max(1, latencies.length + errors),
};
console.log(JSON.stringify(result));
agent.destroy();
client.destroy();
