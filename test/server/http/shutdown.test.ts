import { describe, expect, it } from 'vitest';
import { Agent, request, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { startTestRegistry } from '../../support/server.js';

/** send starts a request on `agent` and resolves with the response and its whole body. */
function send(
  url: URL,
  opts: {
    method: string;
    agent: Agent;
    body?: (write: (b: Buffer) => void, end: () => void) => void;
  },
): Promise<{ res: IncomingMessage; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method, agent: opts.agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ res, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    if (opts.body)
      opts.body(
        (b) => req.write(b),
        () => req.end(),
      );
    else req.end();
  });
}

/** connectFresh resolves once a new TCP connection to `url` is accepted; rejects if refused. */
function connectFresh(url: URL): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect(Number(url.port), url.hostname, () => {
      s.destroy();
      resolve();
    });
    s.on('error', reject);
  });
}

describe('graceful shutdown', () => {
  it('GIVEN an upload in flight WHEN the server closes THEN new connections are refused, the upload completes with Connection: close, and close() resolves', async () => {
    const reg = await startTestRegistry();
    const agent = new Agent({ keepAlive: true, maxSockets: 4 });
    const base = new URL(reg.url);
    // A kept-alive connection with one finished request: idle when close() starts.
    const first = await send(new URL('/v2/', base), { method: 'GET', agent });
    expect(first.res.headers.connection).toBe('keep-alive');
    const start = await reg.fetch('/v2/drain/repo/blobs/uploads/', { method: 'POST' });
    expect(start.status).toBe(202);
    const location = new URL(start.headers.get('location') ?? '', base);

    let finish: () => void = () => undefined;
    // The server has the request (close() would otherwise find an idle connection to drop).
    const started = new Promise<void>((r) => reg.server.once('request', () => r()));
    const upload = send(location, {
      method: 'PATCH',
      agent,
      body: (write, end) => {
        write(Buffer.alloc(1024, 1));
        finish = () => {
          write(Buffer.alloc(1024, 2));
          end();
        };
      },
    });
    await started;

    const closed = reg.close();
    // The listener is gone at once: a new connection is refused.
    await expect(connectFresh(base)).rejects.toThrow(/ECONNREFUSED/);
    finish();
    const { res } = await upload;
    expect(res.statusCode).toBe(202);
    expect(res.headers.range).toBe('0-2047');
    expect(res.headers.connection).toBe('close');
    await closed;
    agent.destroy();
  });

  it('GIVEN a client about to reuse its kept-alive connection WHEN the server starts closing between two of its requests THEN the next request is answered with Connection: close instead of the connection being reset', async () => {
    const reg = await startTestRegistry();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const base = new URL(reg.url);
    const first = await send(new URL('/v2/', base), { method: 'GET', agent });
    expect(first.res.headers.connection).toBe('keep-alive');

    const closed = reg.close();
    // The connection is idle when the drain starts; the listener is already gone.
    await new Promise((r) => setTimeout(r, 100));
    await expect(connectFresh(base)).rejects.toThrow(/ECONNREFUSED/);
    // A puller in a loop sends its next request on the connection it already has.
    const next = await send(new URL('/v2/', base), { method: 'GET', agent });
    expect(next.res.statusCode).toBe(200);
    expect(next.res.headers.connection).toBe('close');
    await closed;
    agent.destroy();
  });

  it('GIVEN an open event stream WHEN the server closes THEN the stream ends and close() does not wait for the shutdown timeout', async () => {
    const reg = await startTestRegistry({ config: { http: { shutdownTimeoutSeconds: 30 } } });
    const res = await fetch(new URL('/v2/_berth/events/stream', reg.url));
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    await reader.read(); // the opening comment

    const closed = reg.close().then(() => 'closed');
    const bound = new Promise((r) => setTimeout(() => r('still open after 5 s'), 5000).unref());
    expect(await Promise.race([closed, bound])).toBe('closed');
    for (;;) if ((await reader.read()).done) break;
  });
});
