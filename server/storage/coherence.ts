import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { Errors } from '../errors.js';
import { monotonicClock, type Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import type { Endpoint, Peers } from './peers.js';

/** Largest invalidation body accepted (a few keys). */
const MAX_BODY = 64 * 1024;

export interface CoherenceOptions {
  /** listen is `host:port` for the invalidation listener (port 0: any free port). */
  listen: string;
  /** advertise is the `host:port` others reach it at ('' = from listen, see advertised). */
  advertise: string;
  /** timeoutMs bounds how long a writer waits for each peer's answer (default 1 s). */
  timeoutMs?: number;
  /** invalidate drops a key (or everything below a prefix) from this process's cache. */
  invalidate: (key: string) => void;
  clock?: Clock;
  log?: Logger;
  /** observe hears each announcement: `told` when every peer answered, else `revoked`. */
  observe?: (outcome: 'told' | 'revoked') => void;
}

/**
 * Coherence keeps the tags every process holds in memory true to storage (ADR 0025). Each
 * process listens for invalidations on an endpoint of its own, written in its peers entry.
 * A process that moved a tag {@link announce}s the key to every other process of its latest
 * round before the write is acknowledged; one that does not answer within `timeoutMs` (or a
 * view too old to trust) makes the writer revoke what everyone keeps (`Peers.revokeAll`).
 */
export class Coherence {
  private server: Server | undefined;
  private endpointValue: Endpoint | undefined;
  private readonly token = randomBytes(24).toString('base64url');
  private readonly timeoutMs: number;
  private readonly clock: Clock;

  constructor(
    private readonly peers: () => Peers,
    private readonly opts: CoherenceOptions,
  ) {
    this.timeoutMs = opts.timeoutMs ?? 1000;
    this.clock = opts.clock ?? monotonicClock;
  }

  /** endpoint is where this process listens, once started. */
  endpoint(): Endpoint | undefined {
    return this.endpointValue;
  }

  /** start opens the listener (before the first peers round, which writes its endpoint). */
  async start(): Promise<void> {
    const { host, port } = splitAddr(this.opts.listen);
    // A request cut off mid-body (the writer gave up) must not become an unhandled rejection.
    const server = createServer((req, res) => {
      this.handle(req, res).catch(() => res.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // exclusive: each worker of a cluster (`http.workers`) gets a listener of its own; a
      // shared one would hand an invalidation to any worker, not the one it is meant for.
      server.listen({ port, host, exclusive: true }, () => resolve());
    });
    this.server = server;
    const bound = (server.address() as AddressInfo).port;
    this.endpointValue = {
      url: `http://${advertised(this.opts.advertise, host, bound)}`,
      token: this.token,
    };
  }

  async stop(): Promise<void> {
    this.endpointValue = undefined;
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
    s?.closeAllConnections();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const auth = Buffer.from(req.headers.authorization ?? '');
    const want = Buffer.from(`Bearer ${this.token}`);
    if (req.method !== 'POST' || req.url !== '/invalidate') return end(res, 404);
    if (auth.length !== want.length || !timingSafeEqual(auth, want)) return end(res, 401);
    let body = '';
    for await (const chunk of req) {
      body += (chunk as Buffer).toString('utf8');
      if (body.length > MAX_BODY) return end(res, 413);
    }
    let keys: unknown;
    try {
      keys = (JSON.parse(body) as { keys?: unknown }).keys;
    } catch {
      return end(res, 400);
    }
    if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string')) return end(res, 400);
    for (const k of keys) this.opts.invalidate(k);
    end(res, 204);
  }

  /**
   * announce tells every other process that `keys` changed, and resolves once each has
   * dropped them, or, failing that, once none of them can still serve what it kept
   * (`Peers.revokeAll`). 503 when even that fails: the write is not acknowledged.
   */
  async announce(keys: string[]): Promise<void> {
    const view = this.peers().view();
    const targets = view?.peers.filter((p) => p.endpoint !== undefined) ?? [];
    if (view) {
      const answers = await Promise.all(targets.map((p) => this.tell(p.endpoint!, keys)));
      if (answers.every(Boolean)) {
        if (targets.length > 0) this.opts.observe?.('told');
        return;
      }
    }
    this.opts.log?.warn(
      { peers: targets.length, fresh: view !== undefined },
      'peer not told, revoking kept tags',
    );
    this.opts.observe?.('revoked');
    try {
      await this.peers().revokeAll();
    } catch (err) {
      this.opts.log?.warn({ err }, 'revoking kept tags failed');
      throw Errors.unavailable(
        { reason: 'could not tell the other replicas of a tag change' },
        { 'Retry-After': '5' },
      );
    }
  }

  private async tell(endpoint: Endpoint, keys: string[]): Promise<boolean> {
    const abort = new AbortController();
    const timer = this.clock.after(this.timeoutMs, () => abort.abort());
    try {
      const r = await fetch(`${endpoint.url}/invalidate`, {
        method: 'POST',
        headers: { authorization: `Bearer ${endpoint.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ keys }),
        signal: abort.signal,
      });
      await r.arrayBuffer();
      return r.status === 204;
    } catch {
      return false;
    } finally {
      timer.cancel();
    }
  }
}

function end(res: ServerResponse, status: number): void {
  res.statusCode = status;
  res.end();
}

function splitAddr(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  return { host: addr.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(addr.slice(i + 1)) };
}

/**
 * advertised is the `host:port` others reach this listener at: `advertise` when set (its
 * port 0 or missing: the bound one), else the listen host, or for a wildcard listen host the
 * first non-internal IPv4 address (a pod's IP).
 */
function advertised(advertise: string, listenHost: string, port: number): string {
  if (advertise !== '') {
    const i = advertise.lastIndexOf(':');
    if (i < 0) return `${advertise}:${port}`;
    const p = Number(advertise.slice(i + 1));
    return p === 0 ? `${advertise.slice(0, i)}:${port}` : advertise;
  }
  if (listenHost !== '0.0.0.0' && listenHost !== '' && listenHost !== '::') {
    return `${listenHost.includes(':') ? `[${listenHost}]` : listenHost}:${port}`;
  }
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? [])
      if (a.family === 'IPv4' && !a.internal) return `${a.address}:${port}`;
  }
  return `127.0.0.1:${port}`;
}
