import type { Middleware } from 'koa';
import { NO_AUTH, type Need } from '../../auth/service.js';
import { Errors } from '../../errors.js';
import type { Ctx, Services, State } from '../context.js';
import { query, queryAll } from '../params.js';

/** realmOf is the token realm for this request: configured, else this host's /auth/token. */
function realmOf(ctx: Ctx, s: Services): string {
  return s.auth.realm(ctx.req.headers.host, 'encrypted' in ctx.req.socket);
}

/**
 * authenticate sets `ctx.state.identity` from the Authorization header (401 when it does not
 * check out) and serves Berth's token endpoint, `GET /auth/token`. With auth off it only sets
 * the all-allowed identity. Probes (/healthz, /readyz) are never authenticated.
 */
export function authenticate(s: Services): Middleware<State> {
  return async (ctx: Ctx, next) => {
    ctx.state.identity = NO_AUTH;
    if (!s.auth.enabled || ctx.path === '/healthz' || ctx.path === '/readyz') {
      await next();
      return;
    }
    if (ctx.path === '/auth/token' && s.auth.issuesTokens) {
      ctx.state.route = 'token';
      if (ctx.method !== 'GET') {
        ctx.set('Allow', 'GET');
        throw Errors.unsupported({ method: ctx.method, route: 'token' });
      }
      const body = await s.auth.issue(
        ctx.get('authorization'),
        queryAll(ctx, 'scope'),
        query(ctx, 'service'),
      );
      ctx.set('Cache-Control', 'no-store');
      ctx.body = body;
      return;
    }
    ctx.state.identity = await s.auth.authenticate(ctx.get('authorization'), realmOf(ctx, s));
    await next();
  };
}

/**
 * needsOf is the access a route and method require. A route this table does not know needs a
 * logged-in caller, so a new route is closed until it is listed here.
 */
export function needsOf(route: string, method: string, params: Record<string, string>): Need[] {
  const name = params.name;
  const repo = (action: 'pull' | 'push' | 'delete'): Need[] =>
    name === undefined ? [{ kind: 'login' }] : [{ kind: 'repository', name, action }];
  const read = method === 'GET' || method === 'HEAD';
  switch (route) {
    case 'base':
      return [{ kind: 'login' }];
    case 'catalog':
    case 'search':
      return [{ kind: 'catalog' }];
    case 'discover':
    case 'access':
      return [];
    case 'tags':
    case 'referrers':
    case 'storage':
      return repo('pull');
    case 'manifest':
    case 'blob':
      if (read) return repo('pull');
      if (method === 'PUT') return repo('push');
      if (method === 'DELETE') return repo('delete');
      return [{ kind: 'login' }];
    case 'blob-upload':
    case 'blob-upload-chunk':
      return repo('push');
    case 'import':
      // push on each target repository, checked by the handler once the archive names them.
      return [{ kind: 'login' }];
    default:
      return [{ kind: 'login' }];
  }
}

/**
 * requireNeeds throws 401/403 unless the caller has every one of `needs`: for a handler whose
 * needs are known only from its request's body (an import's target repositories).
 */
export function requireNeeds(ctx: Ctx, s: Services, needs: Need[]): void {
  if (!s.auth.enabled) return;
  s.auth.require(ctx.state.identity, needs, realmOf(ctx, s));
}

/** authorize throws 401/403 unless the caller may do what the matched route does. */
export function authorize(
  ctx: Ctx,
  s: Services,
  route: string,
  params: Record<string, string>,
): void {
  if (!s.auth.enabled) return;
  s.auth.require(ctx.state.identity, needsOf(route, ctx.method, params), realmOf(ctx, s));
}
