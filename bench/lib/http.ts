import * as http from 'node:http';
import * as net from 'node:net';

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

  /**
   * download GETs a large body and only counts it, on a connection of its own that reads
   * into one reused buffer: node:http would allocate and parse every chunk, and at a GB/s
   * that costs the client most of a core, which the server and MinIO need on this machine.
   * Follows one redirect. Plain http only.
   */
  async download(path: string): Promise<Reply> {
    const first = await rawGet(this.url(path));
    const to = first.headers.location;
    if ((first.status === 307 || first.status === 302) && to) {
      return rawGet(new URL(to, this.url(path)));
    }
    return first;
  }

  close(): void {
    this.agent.destroy();
  }
}

/** HEAD_LIMIT bounds a response head `rawGet` will read. */
const HEAD_LIMIT = 64 * 1024;

/**
 * rawGet sends one GET with `Connection: close` and counts the body: `content-length`
 * bytes, or everything until the server closes. Chunked bodies are refused (a registry
 * sends blobs with a length).
 */
function rawGet(u: URL): Promise<Reply> {
  if (u.protocol !== 'http:')
    return Promise.reject(new Error(`download: ${u.protocol} unsupported`));
  return new Promise<Reply>((resolve, reject) => {
    let head = Buffer.alloc(0);
    let reply: Reply | undefined;
    let want = -1;
    let settled = false;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      sock.destroy();
      if (err) reject(err);
      else if (!reply) reject(new Error('download: connection closed before a response'));
      else if (want >= 0 && reply.bytes !== want) {
        reject(new Error(`download: body ended at ${reply.bytes} of ${want} bytes`));
      } else resolve(reply);
    };
    const onHead = (chunk: Buffer): number => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > HEAD_LIMIT) finish(new Error('download: response head too large'));
        return 0;
      }
      const lines = head.subarray(0, end).toString('latin1').split('\r\n');
      const headers: http.IncomingHttpHeaders = {};
      for (const line of lines.slice(1)) {
        const i = line.indexOf(':');
        if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      if (/chunked/i.test(String(headers['transfer-encoding'] ?? ''))) {
        finish(new Error('download: chunked response bodies are not supported'));
        return 0;
      }
      want = headers['content-length'] === undefined ? -1 : Number(headers['content-length']);
      reply = { status: Number(lines[0]?.split(' ')[1] ?? 0), headers, bytes: 0 };
      return head.length - end - 4;
    };
    const sock = net.connect({
      host: u.hostname,
      port: Number(u.port || 80),
      onread: {
        buffer: Buffer.allocUnsafe(1 << 20),
        callback: (n: number, buf: Uint8Array) => {
          if (settled) return false;
          const body = reply ? n : onHead(Buffer.from(buf.subarray(0, n)));
          if (reply) {
            reply.bytes += body;
            if (want >= 0 && reply.bytes >= want) finish();
          }
          return true;
        },
      },
    });
    sock.on('connect', () =>
      sock.write(
        `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nConnection: close\r\n\r\n`,
      ),
    );
    sock.on('error', (err) => finish(err));
    sock.on('close', () => finish());
  });
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
