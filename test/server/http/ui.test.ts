import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../server/config/load.js';
import { uiAssetsDir } from '../../../server/http/ui.js';
import { authConfig, basic } from '../../support/auth.js';
import { startTestRegistry, type TestRegistry } from '../../support/server.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

let reg: TestRegistry | undefined;
afterEach(async () => {
  await reg?.close();
  reg = undefined;
});

beforeAll(() => {
  // The real compiled UI, as `npm run build` makes it.
  execFileSync(process.execPath, [join(root, 'ui', 'build.mjs')], { stdio: 'inherit' });
  expect(uiAssetsDir()).toBe(join(root, 'dist', 'ui'));
});

describe('web UI serving', () => {
  it('GIVEN the defaults WHEN / is asked THEN it redirects to /ui/', async () => {
    reg = await startTestRegistry();
    const r = await reg.fetch('/');
    expect(r.status).toBe(302);
    expect(r.headers.get('location')).toBe('/ui/');
  });

  it('GIVEN the defaults WHEN /ui/ and a deep link are asked THEN both are the shell with a self-only content security policy', async () => {
    reg = await startTestRegistry();
    for (const path of ['/ui/', '/ui/anything/deep']) {
      const r = await reg.fetch(path);
      expect(r.status, path).toBe(200);
      expect(r.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(r.headers.get('content-security-policy')).toContain("default-src 'none'");
      expect(r.headers.get('content-security-policy')).toContain("connect-src 'self'");
      const html = await r.text();
      expect(html).toContain('src="/ui/assets/app.js"');
      expect(html).not.toContain('%PREFIX%');
      expect(html).not.toMatch(/https?:\/\//);
    }
  });

  it('GIVEN the defaults WHEN the script is asked THEN it is served, and an unknown asset is a 404 OCI error', async () => {
    reg = await startTestRegistry();
    const js = await reg.fetch('/ui/assets/app.js');
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    const etag = js.headers.get('etag')!;
    expect(
      (await reg.fetch('/ui/assets/app.js', { headers: { 'if-none-match': etag } })).status,
    ).toBe(304);
    const missing = await reg.fetch('/ui/assets/nope.js');
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe(
      'NOT_FOUND',
    );
  });

  it('GIVEN a prefix WHEN the UI is asked there THEN it is served with assets under the prefix, and /ui is nothing', async () => {
    reg = await startTestRegistry({ config: { ui: { prefix: '/registry/console' } } });
    const r = await reg.fetch('/registry/console/');
    expect(r.status).toBe(200);
    expect(await r.text()).toContain('src="/registry/console/assets/app.js"');
    expect((await reg.fetch('/registry/console/assets/app.css')).status).toBe(200);
    expect((await reg.fetch('/registry/console')).headers.get('location')).toBe(
      '/registry/console/',
    );
    expect((await reg.fetch('/ui/')).status).toBe(404);
  });

  it('GIVEN ui.enabled false WHEN / and /ui/ are asked THEN both are 404 as any unknown path', async () => {
    reg = await startTestRegistry({ config: { ui: { enabled: false } } });
    expect((await reg.fetch('/')).status).toBe(404);
    expect((await reg.fetch('/ui/')).status).toBe(404);
    expect((await reg.fetch('/v2/')).status).toBe(200);
  });

  it('GIVEN the UI WHEN it is posted to THEN 405 UNSUPPORTED with Allow', async () => {
    reg = await startTestRegistry();
    const r = await reg.fetch('/ui/', { method: 'POST' });
    expect(r.status).toBe(405);
    expect(r.headers.get('allow')).toBe('GET, HEAD');
  });

  it('GIVEN htpasswd auth WHEN the UI is asked without credentials THEN the shell loads but the catalog is still 401', async () => {
    const auth = authConfig('htpasswd').user('alice', 'pw').build();
    reg = await startTestRegistry({ config: { auth } });
    expect((await reg.fetch('/ui/')).status).toBe(200);
    expect((await reg.fetch('/v2/_catalog')).status).toBe(401);
  });
});

describe('GET /v2/_berth/access', () => {
  const auth = () =>
    authConfig('htpasswd')
      .user('alice', 'pw')
      .user('bob', 'pw')
      .rule({ users: ['alice'], repositories: ['team/**'], actions: ['pull', 'push', 'delete'] })
      .rule({ users: ['bob'], repositories: ['team/**'], actions: ['pull'] })
      .anonymous('public/**')
      .eventsForAdmins('alice')
      .build();

  type Body = {
    user: string | null;
    admin: boolean;
    deletes: boolean;
    repository?: { actions: string[] };
  };
  const ask = async (r: TestRegistry, q: string, who?: string) => {
    const res = await r.fetch(
      `/v2/_berth/access${q}`,
      who ? { headers: { authorization: basic(who, 'pw') } } : {},
    );
    expect(res.status).toBe(200);
    return (await res.json()) as Body;
  };

  it('GIVEN rules WHEN each caller asks about a repository THEN it gets its own actions and role, nothing more', async () => {
    reg = await startTestRegistry({ config: { auth: auth() } });
    expect(await ask(reg, '?repository=team/app', 'alice')).toEqual({
      user: 'alice',
      admin: true,
      deletes: true,
      repository: { name: 'team/app', actions: ['pull', 'push', 'delete'] },
    });
    expect((await ask(reg, '?repository=team/app', 'bob')).repository!.actions).toEqual(['pull']);
    expect((await ask(reg, '', 'bob')).admin).toBe(false);
    const anon = await ask(reg, '?repository=team/app');
    expect(anon.user).toBeNull();
    expect(anon.repository!.actions).toEqual([]);
    expect((await ask(reg, '?repository=public/x')).repository!.actions).toEqual(['pull']);
  });

  it('GIVEN deletes turned off WHEN a caller with delete rights asks THEN deletes is false', async () => {
    reg = await startTestRegistry({ config: { auth: auth(), delete: { enabled: false } } });
    expect((await ask(reg, '?repository=team/app', 'alice')).deletes).toBe(false);
  });

  it('GIVEN a malformed repository name WHEN asked THEN 400 NAME_INVALID', async () => {
    reg = await startTestRegistry({ config: { auth: auth() } });
    const r = await reg.fetch('/v2/_berth/access?repository=UPPER/..');
    expect(r.status).toBe(400);
    expect(((await r.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe(
      'NAME_INVALID',
    );
  });

  it('GIVEN wrong credentials WHEN asked THEN 401, never the anonymous answer', async () => {
    reg = await startTestRegistry({ config: { auth: auth() } });
    const r = await reg.fetch('/v2/_berth/access', {
      headers: { authorization: basic('alice', 'nope') },
    });
    expect(r.status).toBe(401);
  });
});

describe('ui config', () => {
  it('GIVEN a prefix on the API path WHEN loading THEN the error names ui.prefix and the clash', () => {
    expect(() => parseConfig('ui:\n  prefix: /v2/ui\n', {})).toThrow(
      /ui\.prefix: \/v2\/ui is taken by \/v2/,
    );
    expect(() => parseConfig(undefined, { BERTH_UI_PREFIX: '/healthz' })).toThrow(
      /ui\.prefix: \/healthz is taken by \/healthz .*\(from BERTH_UI_PREFIX\)/,
    );
    expect(() => parseConfig('ui:\n  prefix: ui\n', {})).toThrow(/ui\.prefix/);
    expect(parseConfig('ui:\n  prefix: /console\n', {}).ui).toEqual({
      enabled: true,
      prefix: '/console',
    });
  });
});
