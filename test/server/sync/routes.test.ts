import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { authConfig, basic } from '../../support/auth.js';
import { Client, image } from '../../support/image.js';
import { startTestRegistry, type TestRegistry } from '../../support/server.js';

let upstream: TestRegistry;
let reg: TestRegistry;
let readOnly: TestRegistry;

function auth() {
  const a = authConfig('htpasswd')
    .user('alice', 'pw')
    .user('bob', 'pw')
    .rule({ users: ['alice', 'bob'], repositories: ['**'], actions: ['pull', 'push', 'delete'] })
    .build();
  a.admins.users.push('alice');
  return a;
}

const mirrors = () => ({
  upstreams: [{ name: 'up', url: upstream.url, prefix: 'up' }],
  sync: [{ name: 'app', upstream: 'up', repositories: ['team/app'], intervalSeconds: 0 }],
});

const call = (r: TestRegistry, path: string, user?: string, method = 'GET') =>
  r.fetch(path, { method, headers: user ? { authorization: basic(user, 'pw') } : {} });

const code = async (res: Response) =>
  ((await res.json()) as { errors: { code: string }[] }).errors[0]!.code;

beforeAll(async () => {
  upstream = await startTestRegistry();
  const m = image().layer(2000).build();
  expect((await new Client((p, i) => upstream.fetch(p, i)).push('team/app', 'v1', m)).status).toBe(
    201,
  );
  reg = await startTestRegistry({ config: { auth: auth(), mirrors: mirrors() } });
  readOnly = await startTestRegistry({ config: { readOnly: true, mirrors: mirrors() } });
});

afterAll(async () => {
  await readOnly?.close();
  await reg?.close();
  await upstream?.close();
});

describe('the sync routes', () => {
  it('GIVEN a server with sync jobs and one without WHEN discover is asked THEN only the first advertises _berth/sync', async () => {
    const endpoints = async (r: TestRegistry, user?: string) => {
      const d = (await (await call(r, '/v2/_oci/ext/discover', user)).json()) as {
        extensions: { endpoints: string[] }[];
      };
      return d.extensions.flatMap((e) => e.endpoints);
    };

    expect(await endpoints(reg, 'bob')).toContain('_berth/sync');
    expect(await endpoints(upstream)).not.toContain('_berth/sync');
  });

  it('GIVEN an admin WHEN POST /v2/_berth/sync/<job> THEN 202 answers a run id, and GET then shows that run finished with its summary', async () => {
    const res = await call(reg, '/v2/_berth/sync/app', 'alice', 'POST');
    expect(res.status).toBe(202);
    expect(res.headers.get('location')).toBe('/v2/_berth/sync/app');
    const { runId } = (await res.json()) as { runId: string };
    expect(runId).toMatch(/^\d{4}-\d{2}-\d{2}T\d{9}Z-[0-9a-f]{6}$/);
    type Status = {
      job: { name: string; upstream: string };
      last?: { runId: string; state: string; trigger: string; summary?: { tagsCopied: number } };
    };
    const status = await vi.waitFor(
      async () => {
        const s = (await (await call(reg, '/v2/_berth/sync/app', 'alice')).json()) as Status;
        if (s.last?.runId !== runId || s.last.state === 'running') throw new Error('still running');
        return s;
      },
      { timeout: 10_000, interval: 20 },
    );
    expect(status.job).toMatchObject({ name: 'app', upstream: 'up' });
    expect(status.last).toMatchObject({
      runId,
      state: 'success',
      trigger: 'demand',
      summary: { tagsCopied: 1 },
    });
    const list = (await (await call(reg, '/v2/_berth/sync', 'alice')).json()) as {
      jobs: unknown[];
    };
    expect(list.jobs).toHaveLength(1);
  });

  it('GIVEN a signed-in user who is not an admin, or nobody WHEN calling the sync routes THEN 403 DENIED, or 401', async () => {
    const post = await call(reg, '/v2/_berth/sync/app', 'bob', 'POST');
    expect(post.status).toBe(403);
    expect(await code(post)).toBe('DENIED');
    expect((await call(reg, '/v2/_berth/sync', 'bob')).status).toBe(403);
    expect((await call(reg, '/v2/_berth/sync/app', undefined, 'POST')).status).toBe(401);
  });

  it('GIVEN an admin WHEN asking for a job that is not configured THEN 404 NOT_FOUND', async () => {
    const res = await call(reg, '/v2/_berth/sync/nope', 'alice', 'POST');
    expect(res.status).toBe(404);
    expect(await code(res)).toBe('NOT_FOUND');
  });

  it('GIVEN a read-only registry WHEN POST /v2/_berth/sync/<job> THEN 405 UNSUPPORTED while GET still answers', async () => {
    const res = await call(readOnly, '/v2/_berth/sync/app', undefined, 'POST');
    expect(res.status).toBe(405);
    expect(await code(res)).toBe('UNSUPPORTED');
    expect((await call(readOnly, '/v2/_berth/sync/app')).status).toBe(200);
  });
});

describe('a job with onStart', () => {
  it('GIVEN a job with onStart and no interval WHEN the server starts THEN it runs once by itself and its record says so', async () => {
    const started = await startTestRegistry({
      config: {
        mirrors: {
          upstreams: [{ name: 'up', url: upstream.url, prefix: 'up' }],
          sync: [
            {
              name: 'boot',
              upstream: 'up',
              repositories: ['team/app'],
              onStart: true,
              intervalSeconds: 0,
            },
          ],
        },
      },
    });
    try {
      const last = await vi.waitFor(
        async () => {
          const s = (await (await started.fetch('/v2/_berth/sync/boot')).json()) as {
            last?: { state: string; trigger: string; summary?: { tagsCopied: number } };
          };
          if (s.last === undefined || s.last.state === 'running') throw new Error('not yet');
          return s.last;
        },
        { timeout: 10_000, interval: 20 },
      );
      expect(last).toMatchObject({
        state: 'success',
        trigger: 'start',
        summary: { tagsCopied: 1 },
      });
      const tags = (await (await started.fetch('/v2/up/team/app/tags/list')).json()) as {
        tags: string[];
      };
      expect(tags.tags).toEqual(['v1']);
    } finally {
      await started.close();
    }
  });
});
