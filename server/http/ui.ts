import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { UiConfig } from '../config/types.js';
import { Errors } from '../errors.js';
import type { Logger } from '../util/log.js';
import type { Ctx } from './context.js';

/** BUILD_MARK is the file `npm run build` writes into the compiled UI folder. */
const BUILD_MARK = 'berth-ui.json';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
};

/**
 * SECURITY_HEADERS go on every UI response. The content security policy allows nothing but
 * this origin, so the UI makes no request anywhere else and cannot be framed.
 */
const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
};

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

/**
 * uiAssetsDir finds the compiled UI (`dist/ui`, written by `npm run build`): beside the
 * compiled server in `dist/`, or under the project when the server runs from source.
 * Undefined when it was not built.
 */
export function uiAssetsDir(): string | undefined {
  const base = fileURLToPath(new URL('../../', import.meta.url));
  return [join(base, 'ui'), join(base, 'dist', 'ui')].find((d) => existsSync(join(d, BUILD_MARK)));
}

function asset(body: Buffer, type: string): Asset {
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
  return { body, type, etag };
}

/** loadAssets reads the compiled UI into memory (a few hundred KiB), the shell with its prefix. */
function loadAssets(dir: string, prefix: string): Map<string, Asset> {
  const out = new Map<string, Asset>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)];
    if (type === undefined || name === BUILD_MARK) continue;
    let body = readFileSync(join(dir, name));
    if (name === 'index.html')
      body = Buffer.from(body.toString('utf8').replaceAll('%PREFIX%', prefix));
    out.set(name, asset(body, type));
  }
  return out;
}

function send(ctx: Ctx, a: Asset, cache: string): void {
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) ctx.set(k, v);
  ctx.set('Cache-Control', cache);
  ctx.set('ETag', a.etag);
  ctx.type = a.type;
  if (ctx.get('if-none-match') === a.etag) {
    ctx.status = 304;
    return;
  }
  ctx.body = a.body;
}

type Middleware = (ctx: Ctx, next: () => Promise<void>) => Promise<void>;

/**
 * webUi serves the web UI under `ui.prefix`: `<prefix>/assets/<file>` are the compiled files,
 * any other path under the prefix is the shell (the UI routes in the browser, so every page
 * has a deep link), and `/` redirects to the prefix. The shell and assets hold no registry
 * data, so they need no credentials; the UI then calls the registry API with the caller's own.
 * Off (`ui.enabled: false`), nothing is served and those paths answer as before (404).
 */
export function webUi(config: UiConfig, log: Logger, dir = uiAssetsDir()): Middleware {
  if (!config.enabled) return (_ctx, next) => next();
  const prefix = config.prefix;
  if (dir === undefined) log.warn({ prefix }, 'web ui is enabled but not built');
  const assets = dir === undefined ? new Map<string, Asset>() : loadAssets(dir, prefix);
  return async (ctx, next) => {
    const path = ctx.path;
    if (path !== '/' && path !== prefix && !path.startsWith(`${prefix}/`)) return next();
    ctx.state.route = 'ui';
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      ctx.set('Allow', 'GET, HEAD');
      throw Errors.unsupported({ method: ctx.method, route: 'ui' });
    }
    if (path === '/' || path === prefix) {
      ctx.redirect(`${prefix}/`);
      return;
    }
    const rest = path.slice(prefix.length + 1);
    const shell = assets.get('index.html');
    if (rest.startsWith('assets/')) {
      const a = assets.get(rest.slice('assets/'.length));
      if (!a) throw Errors.notFound({ path: path.slice(0, 300) });
      send(ctx, a, 'public, max-age=300');
      return;
    }
    if (!shell) throw Errors.notFound({ reason: 'the web ui is not built (npm run build)' });
    send(ctx, shell, 'no-cache');
  };
}
