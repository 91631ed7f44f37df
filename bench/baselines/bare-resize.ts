/**
 * The resize baseline: a bare node:http server holding one JPEG in memory that
 * answers every request with sharp's 200x200 centre crop of it (JPEG, quality
 * 75, EXIF orientation applied): the same libvips work as a Kelp variant, with
 * no volume read, no params, no queue.
 *   node bench/baselines/bare-resize.ts <source.jpg>
 * Prints `listening <port>` once ready.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import sharp from 'sharp';

const source = readFileSync(process.argv[2]!);

const server = createServer((_req, res) => {
  sharp(source)
    .rotate()
    .resize({ width: 200, height: 200, fit: 'cover', position: 'centre', withoutEnlargement: true })
    .jpeg({ quality: 75 })
    .toBuffer()
    .then(
      (out) => {
        res.writeHead(200, { 'Content-Type': 'image/jpeg', 'Content-Length': out.length });
        res.end(out);
      },
      (err: Error) => {
        res.writeHead(500);
        res.end(err.message);
      },
    );
});
server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  console.log(`listening ${typeof addr === 'object' && addr ? addr.port : 0}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
