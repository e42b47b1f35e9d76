import { randomUUID } from 'node:crypto';
import Koa from 'koa';
import { Errors, RegistryError, errorBody, isRegistryError } from '../errors.js';
import { parseName } from '../registry/reference.js';
import { InvalidPathError } from '../storage/driver.js';
import { currentScope, runInScope } from '../util/scope.js';
import type { Ctx, Services, State } from './context.js';
import { authenticate, authorize } from './middleware/auth.js';
import { rateLimit, uploadSessionLimit } from './middleware/limits.js';
import { checkReady } from './readiness.js';
import { query } from './params.js';
import { match, routes } from './routes.js';
import { webUi } from './ui.js';

const API_VERSION = 'registry/2.0';

/** AppHooks adds cross-cutting middleware without the app knowing what it does. */
export interface AppHooks {
  /** outer middleware wraps the error exit, so it sees every final status (metrics). */
  outer?: Koa.Middleware[];
}

/** CLIENT_CLOSED_REQUEST is the status logged and counted for a client that hung up (nginx's 499). */
const CLIENT_CLOSED_REQUEST = 499;

/**
 * clientGone is true when the client closed the connection before its request was whole:
 * whatever failed then failed because of it. The response's socket is asked, not the
 * request: a handler that stops reading a body early (a manifest over the limit) destroys
 * the request itself while the client still waits for the answer.
 */
function clientGone(ctx: Ctx): boolean {
  const socket = ctx.res.socket;
  return !ctx.req.complete && (socket === null || socket.destroyed);
}

/**
 * toRegistryError maps anything thrown below the HTTP layer to the error table: what a client
 * is told, never an internal message.
 */
export function toRegistryError(err: unknown): RegistryError {
  if (isRegistryError(err)) return err;
  if (err instanceof InvalidPathError) return Errors.nameInvalid({ reason: 'invalid path' });
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (
    code === 'ECONNREFUSED' ||
    code === 'ECONNRESET' ||
    code === 'ETIMEDOUT' ||
    code === 'EAI_AGAIN'
  ) {
    return Errors.unavailable({ reason: code }, { 'Retry-After': '5' });
  }
  return new RegistryError('UNKNOWN', 500, 'unknown error');
}

/**
 * createApp builds the koa application from named middleware, outermost first: the access log
 * and request id, the request scope, `hooks.outer` (metrics), the one error exit, deferred work,
 * limits, the web UI (public files), authentication, the events actor, then the dispatcher. Handlers never write error
 * bodies.
 */
export function createApp(s: Services, hooks: AppHooks = {}): Koa<State> {
  const app = new Koa<State>();
  app.proxy = true;
  app.use(accessLog(s));
  app.use(requestScope());
  for (const m of hooks.outer ?? []) app.use(m);
  app.use(errorExit());
  app.use(deferredWork());
  app.use(rateLimit(s.config.limits.rate, s.clock));
  app.use(
    uploadSessionLimit(
      s.config.limits.uploadSessionsPerClient,
      s.config.uploads.ttlSeconds,
      s.clock,
    ),
  );
  app.use(webUi(s.config.ui, s.log));
  app.use(authenticate(s));
  app.use(eventsActor());
  app.use(dispatch(s, routes(s.config)));
  app.on('error', (err: Error & { code?: string }) => {
    if (
      err.code === 'ECONNRESET' ||
      err.code === 'EPIPE' ||
      err.code === 'ERR_STREAM_PREMATURE_CLOSE' ||
      // The connection ended inside a request body: the client hung up.
      err.code === 'HPE_INVALID_EOF_STATE'
    ) {
      s.log.debug({ code: err.code }, 'client went away');
      return;
    }
    s.log.warn({ err }, 'response stream failed');
  });
  return app;
}

type Middleware = (ctx: Ctx, next: () => Promise<void>) => Promise<void>;

/**
 * accessLog gives the request its id (the client's `X-Request-Id`, else a new UUID) and a
 * child logger, and logs one `request` line once the response is over: the status sent, or 499
 * when the client went away before all of it was sent.
 */
function accessLog(s: Services): Middleware {
  return async (ctx, next) => {
    const started = process.hrtime.bigint();
    const requestId = ctx.get('x-request-id') || randomUUID();
    ctx.state.requestId = requestId;
    ctx.state.log = s.log.child({ requestId });
    ctx.state.route = 'unknown';
    ctx.set('X-Request-Id', requestId);
    ctx.set('Docker-Distribution-API-Version', API_VERSION);
    try {
      await next();
    } finally {
      // koa writes the response after this middleware returns: log when it is over.
      const res = ctx.res;
      const log = () => {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        ctx.state.log.info(
          {
            method: ctx.method,
            path: ctx.path,
            route: ctx.state.route,
            status: res.writableFinished ? res.statusCode : CLIENT_CLOSED_REQUEST,
            ms: Math.round(ms * 10) / 10,
            bytesOut: ctx.length,
          },
          'request',
        );
      };
      if (res.closed) log();
      else res.once('close', log);
    }
  };
}

/** requestScope opens the request scope: what decorators (storage metrics, events) know of it. */
function requestScope(): Middleware {
  return (ctx, next) =>
    runInScope<void>(
      {
        id: ctx.state.requestId,
        addr: ctx.ip,
        host: ctx.host,
        scheme: ctx.protocol,
        method: ctx.method,
        useragent: ctx.get('user-agent'),
        storageCalls: 0,
        deferred: [],
        bag: new Map(),
      },
      next,
    );
}

/**
 * errorExit is the one error exit: anything thrown below becomes the OCI error JSON with its
 * status (5xx logged), except when the client hung up mid-request, which is its doing: nobody
 * reads an answer, and metrics and the access log count it as 499.
 */
function errorExit(): Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      if (clientGone(ctx)) {
        ctx.state.log.info(
          { route: ctx.state.route, reason: (err as Error | undefined)?.message },
          'client closed request',
        );
        ctx.body = null;
        ctx.status = CLIENT_CLOSED_REQUEST;
        return;
      }
      const e = toRegistryError(err);
      if (e.status >= 500) ctx.state.log.error({ err, route: ctx.state.route }, 'request failed');
      if (!ctx.req.complete) ctx.req.resume();
      ctx.status = e.status;
      for (const [k, v] of Object.entries(e.headers)) ctx.set(k, v);
      ctx.set('Docker-Distribution-API-Version', API_VERSION);
      ctx.type = 'application/json';
      ctx.body = errorBody(e);
    }
  };
}

/** deferredWork runs what decorators deferred (the events outbox write) before the response. */
function deferredWork(): Middleware {
  return async (_ctx, next) => {
    try {
      await next();
    } finally {
      const scope = currentScope();
      if (scope) await Promise.all(scope.deferred.splice(0).map((run) => run()));
    }
  };
}

/** eventsActor names the authenticated caller as the actor of the request's events. */
function eventsActor(): Middleware {
  return async (ctx, next) => {
    const scope = currentScope();
    const name = ctx.state.identity?.principal.name;
    if (scope && name) scope.actor = name;
    await next();
  };
}

/**
 * dispatch answers the probes, then matches the route table: name check, authorization (pure,
 * before any storage call), the handler for the method (405 with `Allow` otherwise).
 */
function dispatch(s: Services, table: ReturnType<typeof routes>): Middleware {
  return async (ctx) => {
    if (ctx.path === '/healthz') {
      ctx.body = { status: 'ok' };
      return;
    }
    if (ctx.path === '/readyz') {
      await checkReady(s);
      ctx.body = { status: 'ready' };
      return;
    }
    let path: string;
    try {
      path = decodeURIComponent(ctx.path);
    } catch {
      throw Errors.nameInvalid({ reason: 'malformed percent-encoding in path' });
    }
    const m = match(table, path);
    if (!m) throw Errors.notFound({ path: ctx.path.slice(0, 300) });
    ctx.state.route = m.route.name;
    if (m.params.name !== undefined && s.upstreams) {
      // A containerd mirror request names its upstream host: read that upstream's repository.
      m.params.name = s.upstreams.localName(m.params.name, query(ctx, 'ns'));
    }
    if (m.params.name !== undefined) parseName(m.params.name);
    authorize(ctx, s, m.route.name, m.params);
    const handler = m.route.methods[ctx.method as keyof typeof m.route.methods];
    if (!handler) {
      const allow = Object.keys(m.route.methods);
      if (allow.length > 0) ctx.set('Allow', allow.join(', '));
      throw Errors.unsupported(
        { method: ctx.method, route: m.route.name },
        undefined,
        `${ctx.method} is not supported here${s.config.readOnly ? ' (registry is read-only)' : ''}`,
      );
    }
    ctx.state.params = m.params;
    await handler(ctx, s);
  };
}
