import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { freePort } from './process.js';
import { tool } from './tools.js';
import { scratchDir } from './scratch.js';

/** Distribution is a distribution v3 registry process on filesystem storage. */
export interface Distribution {
  url: string;
  host: string;
  stop(): Promise<void>;
}

/** startDistribution runs the distribution v3 built by `node test/tools/ensure.mjs distribution`. */
export async function startDistribution(opts: { host?: string } = {}): Promise<Distribution> {
  const listenHost = opts.host ?? '127.0.0.1';
  const bin = tool('distribution');
  const dir = scratchDir('berth-dist-');
  const port = await freePort();
  const cfg = join(dir, 'config.yml');
  writeFileSync(
    cfg,
    [
      'version: 0.1',
      'log: { level: error }',
      `storage: { filesystem: { rootdirectory: ${join(dir, 'data')} }, delete: { enabled: true } }`,
      `http: { addr: ${listenHost}:${port} }`,
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(bin, ['serve', cfg], { stdio: 'ignore' });
  const host = `${listenHost}:${port}`;
  for (let i = 0; ; i++) {
    const ok = await fetch(`http://${host}/v2/`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
    if (i > 200 || child.exitCode !== null) throw new Error('distribution did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `http://${host}`,
    host,
    stop: async () => {
      child.kill('SIGKILL');
      await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * ProxyMode is how the counting proxy treats blob GETs: pass, cut midway, corrupt, down, or
 * stall (send half, then hold the response open until the client goes).
 */
export type ProxyMode = 'pass' | 'cut' | 'corrupt' | 'down' | 'stall';

/**
 * CountingProxy stands between a mirror and its upstream: it counts the blob GETs that reach
 * the upstream (by digest) and can cut, corrupt or refuse them.
 */
export interface CountingProxy {
  host: string;
  mode: ProxyMode;
  /** blobGets counts the GETs of each blob digest forwarded (or attempted). */
  blobGets: Map<string, number>;
  manifestRequests: number;
  /** manifestGets counts the manifest GETs forwarded (HEADs are not counted). */
  manifestGets: number;
  /** stall holds blob digests whose GETs get half the body and then hang (until the client gives up). */
  stall: Set<string>;
  close(): Promise<void>;
}

export async function startCountingProxy(upstream: string): Promise<CountingProxy> {
  const target = new URL(upstream);
  const state = {
    mode: 'pass' as ProxyMode,
    blobGets: new Map<string, number>(),
    manifestRequests: 0,
    manifestGets: 0,
    stall: new Set<string>(),
  };
  const server: Server = createServer((req, res) => {
    const blob = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(req.url ?? '');
    if (blob && req.method === 'GET') {
      state.blobGets.set(blob[1]!, (state.blobGets.get(blob[1]!) ?? 0) + 1);
    }
    if (/\/manifests\//.test(req.url ?? '')) {
      state.manifestRequests++;
      if (req.method === 'GET') state.manifestGets++;
    }
    if (state.mode === 'down') {
      req.socket.destroy();
      return;
    }
    const out = request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: target.host },
      },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        if (blob && req.method === 'GET' && state.stall.has(blob[1]!)) {
          const size = Number(up.headers['content-length']);
          let seen = 0;
          up.on('data', (c: Buffer) => {
            if (seen < size / 2) res.write(c.subarray(0, Math.max(0, Math.floor(size / 2) - seen)));
            seen += c.length;
          });
          return;
        }
        if (!blob || req.method !== 'GET' || state.mode === 'pass') {
          up.pipe(res);
          return;
        }
        const size = Number(up.headers['content-length']);
        let seen = 0;
        up.on('data', (c: Buffer) => {
          if (state.mode === 'stall' && seen + c.length >= size / 2) {
            res.write(c.subarray(0, Math.max(0, Math.floor(size / 2) - seen)));
            up.pause();
            res.once('close', () => up.destroy());
            seen = size;
            return;
          }
          if (state.mode === 'cut' && seen + c.length >= size / 2) {
            res.write(c.subarray(0, Math.max(0, Math.floor(size / 2) - seen)));
            res.socket?.destroy();
            up.destroy();
            return;
          }
          if (state.mode === 'corrupt' && seen === 0)
            c = Buffer.from(c.map((b, i) => (i === 0 ? b ^ 0xff : b)));
          seen += c.length;
          res.write(c);
        });
        up.on('end', () => res.end());
      },
    );
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return Object.assign(state, {
    host: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  });
}
