// The trivial server the bench measures its own client against (the client's ceiling):
// GET/HEAD /small answers 200 with 512 bytes, GET /big?size=N streams N bytes from one
// reused buffer, anything with a body is read and discarded, then 202 with a Location.
import * as http from 'node:http';

const small = Buffer.alloc(512, 'x');
const chunk = Buffer.alloc(1 << 20, 'y');
const server = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://x');
  if (req.method === 'GET' && u.pathname === '/big') {
    let left = Number(u.searchParams.get('size'));
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
