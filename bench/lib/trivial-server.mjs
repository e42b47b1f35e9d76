// The trivial server the bench measures its clients against (each client's ceiling):
// GET/HEAD /small answers 200 with 512 bytes, GET /big?size=N streams N bytes from one
// reused buffer, anything with a body is read and discarded, then 202 with a Location.
// Started with a size, it is also the smallest registry containerd's fetcher can pull
// from: /v2/ceiling:any is an image whose one layer is that many bytes of the same buffer,
// served from memory with its digest computed once at start.
import * as http from 'node:http';
import { createHash } from 'node:crypto';

const small = Buffer.alloc(512, 'x');
const chunk = Buffer.alloc(1 << 20, 'y');

/** image builds the manifest, config and layer digest of an image of one `size`-byte layer. */
function image(size) {
  const h = createHash('sha256');
  for (let left = size; left > 0; left -= chunk.length) {
    h.update(left >= chunk.length ? chunk : chunk.subarray(0, left));
  }
  const layer = `sha256:${h.digest('hex')}`;
  const config = Buffer.from(
    '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}',
  );
  const digest = (b) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: digest(config),
        size: config.length,
      },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layer, size }],
    }),
  );
  return {
    size,
    layer,
    config,
    configDigest: digest(config),
    manifest,
    manifestDigest: digest(manifest),
  };
}

const img = process.argv[2] === undefined ? undefined : image(Number(process.argv[2]));

/** stream writes `left` bytes of the reused buffer, waiting for the socket to drain. */
function stream(res, left) {
  res.writeHead(200, { 'content-length': left });
  const write = () => {
    while (left > 0) {
      const n = Math.min(left, chunk.length);
      left -= n;
      if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
        res.once('drain', write);
        return;
      }
    }
    res.end();
  };
  write();
}

/** registry answers the image's routes; false for any other path. */
function registry(req, res, path) {
  if (!img || !path.startsWith('/v2/')) return false;
  const send = (body, headers) => {
    res.writeHead(200, { 'content-length': body.length, ...headers });
    res.end(req.method === 'GET' ? body : undefined);
  };
  if (path === '/v2/') send(Buffer.from('{}'), { 'content-type': 'application/json' });
  else if (path.startsWith('/v2/ceiling/manifests/')) {
    send(img.manifest, {
      'content-type': 'application/vnd.oci.image.manifest.v1+json',
      'docker-content-digest': img.manifestDigest,
    });
  } else if (path === `/v2/ceiling/blobs/${img.configDigest}`) send(img.config, {});
  else if (path === `/v2/ceiling/blobs/${img.layer}` && req.method === 'GET') stream(res, img.size);
  else if (path === `/v2/ceiling/blobs/${img.layer}`) {
    res.writeHead(200, { 'content-length': img.size });
    res.end();
  } else {
    res.writeHead(404, { 'content-length': 0 });
    res.end();
  }
  return true;
}

const server = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://x');
  if ((req.method === 'GET' || req.method === 'HEAD') && registry(req, res, u.pathname)) return;
  if (req.method === 'GET' && u.pathname === '/big') {
    stream(res, Number(u.searchParams.get('size')));
    return;
  }
  if (req.method === 'GET' || req.method === 'HEAD') {
    res.writeHead(200, { 'content-length': small.length, 'content-type': 'application/json' });
    res.end(req.method === 'GET' ? small : undefined);
    return;
  }
  req.on('data', () => {});
  req.on('end', () => {
    res.writeHead(req.method === 'PUT' ? 201 : 202, { location: '/upload/1', 'content-length': 0 });
    res.end();
  });
});
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
