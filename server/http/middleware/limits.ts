import type { Middleware } from 'koa';
import type { Clock } from '../../util/clock.js';
import type { LimitsConfig } from '../../config/types.js';
import { Errors, isRegistryError } from '../../errors.js';
import type { Ctx, State } from '../context.js';

const MAX_CLIENTS = 100_000;

const passThrough: Middleware<State> = async (_ctx, next) => {
  await next();
};

/**
 * TokenBucket rate-limits keys independently: each key holds up to `burst` tokens, refilled at
 * `rate` per second; a request takes one. Memory is bounded by dropping full buckets.
 */
export class TokenBucket {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly clock: Clock,
  ) {}

  /** take returns 0 when allowed, else the seconds until a token is available. */
  take(key: string): number {
    const now = this.clock.now();
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.rate);
    b.at = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      if (this.buckets.size >= MAX_CLIENTS && !this.buckets.has(key)) this.sweep(now);
      this.buckets.set(key, b);
      return 0;
    }
    this.buckets.set(key, b);
    return Math.max(1, Math.ceil((1 - b.tokens) / this.rate));
  }

  private sweep(now: number): void {
    for (const [k, b] of this.buckets)
      if (b.tokens + ((now - b.at) / 1000) * this.rate >= this.burst) this.buckets.delete(k);
    if (this.buckets.size >= MAX_CLIENTS) this.buckets.clear();
  }
}

/** clientKey identifies a client for limits: its address (X-Forwarded-For behind a proxy). */
function clientKey(ctx: Ctx): string {
  return ctx.ip;
}

/** rateLimit answers 429 TOOMANYREQUESTS with Retry-After once a client's bucket is empty. */
export function rateLimit(limits: LimitsConfig['rate'], clock: Clock): Middleware<State> {
  if (limits.requestsPerSecond <= 0) return passThrough;
  const bucket = new TokenBucket(limits.requestsPerSecond, limits.burst, clock);
  return async (ctx: Ctx, next) => {
    if (ctx.path === '/healthz' || ctx.path === '/readyz') {
      await next();
      return;
    }
    const wait = bucket.take(clientKey(ctx));
    if (wait > 0)
      throw Errors.tooManyRequests({ retryAfterSeconds: wait }, { 'Retry-After': String(wait) });
    await next();
  };
}

const START = /^\/v2\/.+\/blobs\/uploads\/?$/;
const SESSION = /^\/v2\/.+\/blobs\/uploads\/([^/]+)$/;

/**
 * uploadSessionLimit bounds the upload sessions one client holds open at once (429 when it
 * would exceed `limit`). Sessions leave the count when they end: completed, cancelled
 * (a DELETE, or a digest mismatch on the closing PUT), expired, or answered as unknown
 * (BLOB_UPLOAD_UNKNOWN: ended through another replica, or purged).
 */
export function uploadSessionLimit(
  limit: number,
  ttlSeconds: number,
  clock: Clock,
): Middleware<State> {
  if (limit <= 0) return passThrough;
  const open = new Map<string, Map<string, number>>();
  const live = (key: string): Map<string, number> => {
    const m = open.get(key) ?? new Map<string, number>();
    const now = clock.now();
    for (const [id, until] of m) if (until <= now) m.delete(id);
    return m;
  };
  return async (ctx: Ctx, next) => {
    const key = clientKey(ctx);
    const starting = ctx.method === 'POST' && START.test(ctx.path);
    if (starting && live(key).size >= limit)
      throw Errors.tooManyRequests(
        { limit, reason: 'too many open upload sessions' },
        { 'Retry-After': '60' },
        'too many open upload sessions for this client',
      );
    let failure: { err: unknown } | undefined;
    try {
      await next();
    } catch (err) {
      failure = { err };
    }
    const done = SESSION.exec(ctx.path);
    if (done) {
      const err = failure?.err;
      const ended =
        (failure === undefined &&
          (ctx.method === 'PUT' || ctx.method === 'DELETE') &&
          ctx.status < 300) ||
        ctx.state.uploadEnded === true ||
        (isRegistryError(err) && err.code === 'BLOB_UPLOAD_UNKNOWN');
      if (ended) {
        const m = open.get(key);
        m?.delete(done[1]!);
        if (m?.size === 0) open.delete(key);
      }
    }
    if (failure) throw failure.err;
    if (starting && ctx.status === 202) {
      const id = ctx.response.get('Docker-Upload-UUID');
      if (id !== '') {
        const m = live(key);
        m.set(id, clock.now() + ttlSeconds * 1000);
        open.set(key, m);
        if (open.size > MAX_CLIENTS) open.clear();
      }
    }
  };
}
