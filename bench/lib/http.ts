import * as http from 'node:http';

/** Body is what a request sends: nothing, one buffer, or a stream of buffers (chunked). */
export type Body = Buffer | Iterable<Buffer> | AsyncIterable<Buffer> | undefined;

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** body is kept only with `keep: true` (small replies); `bytes` is always counted. */
  body?: Buffer;
  bytes: number;
}

export interface RequestOptions {
  headers?: Record<string, string | number>;
  body?: Body;
  /** keep the reply body in memory (manifests, lists); big bodies are only counted. */
  keep?: boolean;
  /** follow one 307/302 to another host (a presigned storage URL). */
  follow?: boolean;
  timeoutMs?: number;
  /** onData sees every chunk of the reply body (to hash it). */
  onData?: (chunk: Buffer) => void;
}

/**
 * Client is a keep-alive HTTP/1.1 client for one base URL, on node:http directly (no fetch
 * layer) so that the load generator costs as little CPU as possible.
 */
export class Client {
  readonly agent: http.Agent;
  readonly base: URL;

  constructor(base: string, maxSockets = 256) {
    this.base = new URL(base);
    this.agent = new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
  }

  url(path: string): URL {
    return new URL(path, this.base);
  }

  async request(method: string, path: string, opts: RequestOptions = {}): Promise<Reply> {
    const u = this.url(path);
    const r = await send(u, method, opts, u.host === this.base.host ? this.agent : undefined);
    if (opts.follow && (r.status === 307 || r.status === 302) && r.headers.location) {
      const to = new URL(r.headers.location, u);
      return send(to, method, { ...opts, headers: {} }, undefined);
    }
    return r;
  }

  close(): void {
    this.agent.destroy();
  }
}

const otherAgent = new http.Agent({ keepAlive: true, maxSockets: 256 });

function send(u: URL, method: string, opts: RequestOptions, agent?: http.Agent): Promise<Reply> {
  return new Promise<Reply>((resolve, reject) => {
    const headers: Record<string, string | number> = { ...opts.headers };
    const body = opts.body;
    if (Buffer.isBuffer(body)) headers['content-length'] = body.length;
    else if (body === undefined && (method === 'PUT' || method === 'POST' || method === 'PATCH'))
      headers['content-length'] ??= 0;
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        method,
        headers,
        agent: agent ?? otherAgent,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on('data', (c: Buffer) => {
          bytes += c.length;
          if (opts.keep) chunks.push(c);
          opts.onData?.(c);
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: opts.keep ? Buffer.concat(chunks) : undefined,
            bytes,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (opts.timeoutMs) {
      req.setTimeout(opts.timeoutMs, () =>
        req.destroy(new Error(`timeout after ${opts.timeoutMs} ms`)),
      );
    }
    if (body === undefined) {
      req.end();
    } else if (Buffer.isBuffer(body)) {
      req.end(body);
    } else {
      void pump(req, body).then(
        () => req.end(),
        (err: unknown) => req.destroy(err as Error),
      );
    }
  });
}

async function pump(req: http.ClientRequest, body: Iterable<Buffer> | AsyncIterable<Buffer>) {
  for await (const chunk of body) {
    if (req.destroyed) return;
    if (!req.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          req.off('drain', done);
          req.off('close', done);
          resolve();
        };
        req.on('drain', done);
        req.on('close', done);
      });
    }
  }
}

/** expect throws with the reply's status and body when the status is not one of `ok`. */
export function expect(r: Reply, ok: number[], what: string): Reply {
  if (!ok.includes(r.status)) {
    const body = r.body ? r.body.toString('utf8').slice(0, 300) : '';
    throw new Error(`${what}: HTTP ${r.status} ${body}`.trim());
  }
  return r;
}
