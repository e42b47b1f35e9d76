import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { authConfig, basic } from '../../support/auth.js';
import { Client, blob, image } from '../../support/image.js';
import { startTestRegistry, type TestRegistry } from '../../support/server.js';
import type { AuthConfig } from '../../../server/config/types.js';

type Action = 'pull' | 'push' | 'delete';

/** Op is one route and method, with the action it needs. */
interface Op {
  route: string;
  method: string;
  action: Action | 'login';
  path: (repo: string) => string;
}

const DIGEST = `sha256:${'a'.repeat(64)}`;
const UPLOAD = '0f3c5a1e-0000-4000-8000-000000000000';

const OPS: Op[] = [
  { route: 'base', method: 'GET', action: 'login', path: () => '/v2/' },
  { route: 'tags', method: 'GET', action: 'pull', path: (r) => `/v2/${r}/tags/list` },
  { route: 'manifest', method: 'GET', action: 'pull', path: (r) => `/v2/${r}/manifests/v1` },
  { route: 'manifest', method: 'HEAD', action: 'pull', path: (r) => `/v2/${r}/manifests/v1` },
  { route: 'manifest', method: 'PUT', action: 'push', path: (r) => `/v2/${r}/manifests/v9` },
  {
    route: 'manifest',
    method: 'DELETE',
    action: 'delete',
    path: (r) => `/v2/${r}/manifests/${DIGEST}`,
  },
  { route: 'blob', method: 'GET', action: 'pull', path: (r) => `/v2/${r}/blobs/${DIGEST}` },
  { route: 'blob', method: 'HEAD', action: 'pull', path: (r) => `/v2/${r}/blobs/${DIGEST}` },
  { route: 'blob', method: 'DELETE', action: 'delete', path: (r) => `/v2/${r}/blobs/${DIGEST}` },
  { route: 'blob-upload', method: 'POST', action: 'push', path: (r) => `/v2/${r}/blobs/uploads/` },
  {
    route: 'blob-upload-chunk',
    method: 'GET',
    action: 'push',
    path: (r) => `/v2/${r}/blobs/uploads/${UPLOAD}`,
  },
  {
    route: 'blob-upload-chunk',
    method: 'PATCH',
    action: 'push',
    path: (r) => `/v2/${r}/blobs/uploads/${UPLOAD}`,
  },
  {
    route: 'blob-upload-chunk',
    method: 'PUT',
    action: 'push',
    path: (r) => `/v2/${r}/blobs/uploads/${UPLOAD}?digest=${DIGEST}`,
  },
  {
    route: 'blob-upload-chunk',
    method: 'DELETE',
    action: 'push',
    path: (r) => `/v2/${r}/blobs/uploads/${UPLOAD}`,
  },
  {
    route: 'referrers',
    method: 'GET',
    action: 'pull',
    path: (r) => `/v2/${r}/referrers/${DIGEST}`,
  },
];

/** Who: alice may do everything in team/**, bob may only pull there, robot ci only pushes to ci/**. */
function policy(mode: 'htpasswd' | 'token'): AuthConfig {
  return authConfig(mode)
    .user('alice', 'alice-pw')
    .user('bob', 'bob-pw')
    .user('robot$ci', 'ci-pw')
    .user('carol', 'carol-pw')
    .group('readers', ['carol'])
    .rule({ users: ['alice'], repositories: ['team/**'], actions: ['pull', 'push', 'delete'] })
    .rule({ users: ['bob'], repositories: ['team/**'], actions: ['pull'] })
    .rule({ groups: ['readers'], repositories: ['team/*'], actions: ['pull'] })
    .rule({ robots: ['ci'], repositories: ['ci/**'], actions: ['pull', 'push'] })
    .anonymous('public/**')
    .build();
}

interface Caller {
  label: string;
  user?: string;
  password?: string;
  may: (action: Action | 'login', repo: string) => boolean;
}

const CALLERS: Caller[] = [
  {
    label: 'alice (owner)',
    user: 'alice',
    password: 'alice-pw',
    may: (a, r) =>
      a === 'login' || r.startsWith('team/') || (a === 'pull' && r.startsWith('public/')),
  },
  {
    label: 'bob (reader)',
    user: 'bob',
    password: 'bob-pw',
    may: (a, r) =>
      a === 'login' || (a === 'pull' && (r.startsWith('team/') || r.startsWith('public/'))),
  },
  {
    label: 'carol (group reader)',
    user: 'carol',
    password: 'carol-pw',
    may: (a, r) => a === 'login' || (a === 'pull' && (r === 'team/app' || r.startsWith('public/'))),
  },
  {
    label: 'robot$ci',
    user: 'robot$ci',
    password: 'ci-pw',
    may: (a, r) =>
      a === 'login' ||
      ((a === 'pull' || a === 'push') && r.startsWith('ci/')) ||
      (a === 'pull' && r.startsWith('public/')),
  },
];
const REPOS = ['team/app', 'ci/build', 'public/base', 'secret/x'];

const bodyFor = (op: Op): RequestInit['body'] =>
  op.method === 'PUT' && op.route === 'manifest'
    ? JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json' })
    : op.method === 'PATCH' || op.method === 'PUT'
      ? ''
      : undefined;

async function call(reg: TestRegistry, op: Op, repo: string, auth?: string): Promise<Response> {
  const headers: Record<string, string> = {};
  if (auth) headers.authorization = auth;
  if (op.method === 'PUT' && op.route === 'manifest')
    headers['content-type'] = 'application/vnd.oci.image.manifest.v1+json';
  const r = await reg.fetch(op.path(repo), { method: op.method, headers, body: bodyFor(op) });
  const text = await r.text();
  return new Response(r.status === 204 || r.status === 304 || text === '' ? null : text, {
    status: r.status,
    headers: r.headers,
  });
}

async function errorCode(r: Response): Promise<string | undefined> {
  return ((await r.clone().json()) as { errors?: { code: string }[] }).errors?.[0]?.code;
}

describe('scope matrix: htpasswd', () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startTestRegistry({ config: { auth: policy('htpasswd') } });
  });
  afterAll(async () => reg.close());

  for (const op of OPS)
    for (const repo of REPOS) {
      it(`GIVEN no credentials WHEN ${op.method} ${op.route} on ${repo} THEN ${op.action === 'pull' && repo.startsWith('public/') ? 'allowed' : '401 with a Basic challenge'}`, async () => {
        const r = await call(reg, op, repo);
        if (op.action === 'pull' && repo.startsWith('public/')) {
          expect([401, 403]).not.toContain(r.status);
          expect(r.status).toBeLessThan(500);
        } else {
          expect(r.status).toBe(401);
          expect(r.headers.get('www-authenticate')).toBe('Basic realm="berth"');
        }
      });
      for (const c of CALLERS) {
        const allowed = c.may(op.action, repo);
        it(`GIVEN ${c.label} WHEN ${op.method} ${op.route} on ${repo} THEN ${allowed ? 'allowed' : '403 DENIED'}`, async () => {
          const r = await call(reg, op, repo, basic(c.user!, c.password!));
          if (allowed) {
            expect([401, 403]).not.toContain(r.status);
            expect(r.status).toBeLessThan(500);
          } else {
            expect(r.status).toBe(403);
          }
        });
      }
    }

  it('GIVEN a wrong password WHEN any request THEN 401 with the Basic challenge, never anonymous', async () => {
    const r = await call(reg, OPS[2]!, 'public/base', basic('alice', 'wrong'));
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toBe('Basic realm="berth"');
  });

  it('GIVEN a denied caller WHEN refused THEN the body is OCI error JSON with DENIED', async () => {
    const r = await reg.fetch('/v2/secret/x/tags/list', {
      headers: { authorization: basic('bob', 'bob-pw') },
    });
    expect(r.status).toBe(403);
    expect(await errorCode(r)).toBe('DENIED');
  });

  it('GIVEN repositories in several namespaces WHEN each caller lists the catalog THEN it sees only what it may pull', async () => {
    const as = (u: string, p: string) =>
      new Client((path, init) =>
        reg.fetch(path, {
          ...init,
          headers: { ...(init?.headers as Record<string, string>), authorization: basic(u, p) },
        }),
      );
    const img = image().layer(64).build();
    expect((await as('alice', 'alice-pw').push('team/app', 'v1', img)).status).toBe(201);
    expect((await as('robot$ci', 'ci-pw').push('ci/build', 'v1', img)).status).toBe(201);
    const list = async (auth?: string) =>
      (
        (await (
          await reg.fetch('/v2/_catalog', { headers: auth ? { authorization: auth } : {} })
        ).json()) as { repositories: string[] }
      ).repositories;
    expect(await list(basic('alice', 'alice-pw'))).toEqual(['team/app']);
    expect(await list(basic('robot$ci', 'ci-pw'))).toEqual(['ci/build']);
    expect(await list(basic('carol', 'carol-pw'))).toEqual(['team/app']);
    expect(await list()).toEqual([]);
  });

  it('GIVEN a blob in a repository the caller cannot pull WHEN mounting it with from THEN no mount happens (202 upload instead)', async () => {
    const b = blob(randomBytes(100));
    const alice = { authorization: basic('alice', 'alice-pw') };
    const ci = { authorization: basic('robot$ci', 'ci-pw') };
    await new Client((p, i) =>
      reg.fetch(p, { ...i, headers: { ...(i?.headers as Record<string, string>), ...alice } }),
    ).pushBlob('team/app', b);
    const r = await reg.fetch(`/v2/ci/build/blobs/uploads/?mount=${b.digest}&from=team/app`, {
      method: 'POST',
      headers: ci,
    });
    expect(r.status).toBe(202);
    const anon = await reg.fetch(`/v2/ci/build/blobs/uploads/?mount=${b.digest}`, {
      method: 'POST',
      headers: ci,
    });
    expect(anon.status).toBe(202);
    expect(
      (await reg.fetch(`/v2/ci/build/blobs/${b.digest}`, { method: 'HEAD', headers: ci })).status,
    ).toBe(404);
    const own = await reg.fetch(`/v2/team/app/blobs/uploads/?mount=${b.digest}&from=team/app`, {
      method: 'POST',
      headers: alice,
    });
    expect(own.status).toBe(201);
  });
});

describe('scope matrix: token', () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startTestRegistry({ config: { auth: policy('token') } });
  });
  afterAll(async () => reg.close());

  async function token(scope: string, user?: string, password?: string): Promise<string> {
    const q = new URLSearchParams({ service: 'berth', scope });
    const r = await reg.fetch(`/auth/token?${q.toString()}`, {
      headers: user ? { authorization: basic(user, password!) } : {},
    });
    expect(r.status).toBe(200);
    const body = (await r.json()) as { token: string; access_token: string; expires_in: number };
    expect(body.access_token).toBe(body.token);
    expect(body.expires_in).toBe(300);
    return body.token;
  }

  for (const op of OPS)
    for (const repo of REPOS) {
      const scope =
        op.action === 'login'
          ? ''
          : `repository:${repo}:${op.action === 'push' ? 'pull,push' : op.action}`;
      it(`GIVEN no token WHEN ${op.method} ${op.route} on ${repo} THEN ${op.action === 'pull' && repo.startsWith('public/') ? 'allowed' : '401 with a Bearer challenge naming the scope'}`, async () => {
        const r = await call(reg, op, repo);
        if (op.action === 'pull' && repo.startsWith('public/')) {
          expect([401, 403]).not.toContain(r.status);
          return;
        }
        expect(r.status).toBe(401);
        const c = r.headers.get('www-authenticate') ?? '';
        expect(c).toMatch(/^Bearer realm="http:\/\/127\.0\.0\.1:\d+\/auth\/token",service="berth"/);
        if (scope !== '') expect(c).toContain(`scope="${scope}"`);
      });
      for (const c of CALLERS) {
        const allowed = c.may(op.action, repo);
        it(`GIVEN a token for ${c.label} WHEN ${op.method} ${op.route} on ${repo} THEN ${allowed ? 'allowed' : 'refused'}`, async () => {
          const t = await token(scope || 'registry:catalog:*', c.user, c.password);
          const r = await call(reg, op, repo, `Bearer ${t}`);
          if (allowed) {
            expect([401, 403]).not.toContain(r.status);
            expect(r.status).toBeLessThan(500);
          } else {
            expect(r.status).toBe(403);
            if (op.method !== 'HEAD') expect(await errorCode(r)).toBe('DENIED');
          }
        });
      }
    }

  it('GIVEN a token for one repository WHEN used on another THEN 401 insufficient_scope naming the needed scope', async () => {
    const t = await token('repository:team/app:pull', 'alice', 'alice-pw');
    const r = await reg.fetch('/v2/team/other/tags/list', {
      headers: { authorization: `Bearer ${t}` },
    });
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
    expect(r.headers.get('www-authenticate')).toContain('scope="repository:team/other:pull"');
  });

  it('GIVEN wrong credentials WHEN asking for a token THEN 401 and no token', async () => {
    const r = await reg.fetch('/auth/token?service=berth&scope=repository:team/app:pull', {
      headers: { authorization: basic('alice', 'nope') },
    });
    expect(r.status).toBe(401);
    expect(await errorCode(r)).toBe('UNAUTHORIZED');
  });

  it('GIVEN a forged token WHEN used THEN 401 invalid_token', async () => {
    const t = await token('repository:team/app:pull', 'alice', 'alice-pw');
    const [h, , s] = t.split('.');
    const p = Buffer.from(
      JSON.stringify({
        iss: 'berth',
        sub: 'alice',
        aud: 'berth',
        exp: 9e9,
        access: [{ type: 'repository', name: 'secret/x', actions: ['pull'] }],
      }),
    ).toString('base64url');
    const r = await reg.fetch('/v2/secret/x/tags/list', {
      headers: { authorization: `Bearer ${h}.${p}.${s}` },
    });
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });
});
