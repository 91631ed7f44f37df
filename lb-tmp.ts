import { randomBytes } from 'node:crypto';
import { writeFileSync, rmSync, mkdtempSync } from 'node:fs';
import { copyFile, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { FileHasher } from './tiering/backends/file-hash.ts';
import { LocalBackend } from './tiering/backends/local.ts';
const dir = mkdtempSync(join(tmpdir(), 'lb-'));
const src = join(dir, 'src.dat');
const blk = randomBytes(1 << 20); const f = await open(src, 'w'); for (let i = 0; i < 256; i++) await f.write(blk); await f.sync(); await f.close();
const T = async (name: string, fn: () => Promise<unknown>) => { const t = performance.now(); await fn(); console.log(name, ((performance.now() - t)).toFixed(0), 'ms'); };
const b = new LocalBackend({ type: 'local', id: 'x', path: join(dir, 'tier') });
await new FileHasher(src, { algorithm: 'sha256', total: 256 << 20 }).result(); // warm thread
for (let r = 0; r < 3; r++) {
  await T('copyFile+fsync', async () => { const d = join(dir, 'c'); await copyFile(src, d); const h = await open(d, 'r'); await h.sync(); await h.close(); await rm(d); });
  await T('sha256 thread', () => new FileHasher(src, { algorithm: 'sha256', total: 256 << 20 }).result());
  await T('md5 thread', () => new FileHasher(src, { algorithm: 'md5', total: 256 << 20 }).result());
  await T('backend.upload', async () => { await b.upload(src, 'k' + r); await b.delete('k' + r); });
}
rmSync(dir, { recursive: true });
