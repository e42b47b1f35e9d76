/**
 * One regression test per advisory class of docs/security.md (from the distribution, zot and
 * Harbor advisories): each names the advisory whose root cause it pins down.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { Htpasswd } from '../../../server/auth/htpasswd.js';
import { thumbprint } from '../../../server/auth/jwt.js';
import { authConfig, basic } from '../../support/auth.js';
import { ManualClock } from '../../support/clock.js';
import { Client, blob, image, index } from '../../support/image.js';
import { startTestRegistry, type TestRegistry } from '../../support/server.js';
import { scratchDir } from '../../support/scratch.js';

async function errorCode(r: Response): Promise<string | undefined> {
  return ((await r.json()) as { errors?: { code: string }[] }).errors?.[0]?.code;
}

/** jws signs a token with any header, as an attacker would. */
function jws(header: object, claims: object, key: KeyObject): string {
  const h = Buffer.from(JSON.stringify(header)).toString('base64url');
  const p = Buffer.from(JSON.stringify(claims)).toString('base64url');
  const s = sign('sha256', Buffer.from(`${h}.${p}`), { key, dsaEncoding: 'ieee-p1363' });
  return `${h}.${p}.${s.toString('base64url')}`;
}

const claims = (name: string) => ({
  iss: 'idp',
  sub: 'mallory',
  aud: 'berth',
  exp: Math.floor(Date.now() / 1000) + 300,
  access: [{ type: 'repository', name, actions: ['pull', 'push'] }],
});

describe('advisory regressions', () => {
  const regs: TestRegistry[] = [];
  const start = async (...a: Parameters<typeof startTestRegistry>) => {
    const r = await startTestRegistry(...a);
    regs.push(r);
    return r;
  };
  afterEach(async () => {
    await Promise.all(regs.splice(0).map((r) => r.close()));
  });

  it('CVE-2023-2253 GIVEN n=10^12-1 on the catalog and tag list WHEN listing THEN n is clamped to maxListEntries', async () => {
    const reg = await start({ config: { limits: { maxListEntries: 2, defaultListEntries: 1 } } });
    const c = new Client((p, i) => reg.fetch(p, i));
    for (const r of ['a/one', 'a/two', 'a/three']) await c.push(r, 'v1', image().layer(8).build());
    const cat = await reg.fetch('/v2/_catalog?n=999999999999');
    expect(((await cat.json()) as { repositories: string[] }).repositories).toHaveLength(2);
    expect(cat.headers.get('link')).toContain('n=2');
    expect((await reg.fetch('/v2/_catalog?n=-1')).status).toBe(400);
    const tags = await reg.fetch('/v2/a/one/tags/list?n=999999999999');
    expect(tags.status).toBe(200);
    expect(tags.headers.get('link')).toBeNull(); // one tag, within the clamp
  });

  it('CVE-2017-11468 GIVEN a manifest over the limit, declared or chunked WHEN pushed THEN 413 and nothing stored', async () => {
    const reg = await start({ config: { limits: { manifestBytes: 1024 } } });
    const big = Buffer.alloc(4096, 0x20);
    const declared = await reg.fetch('/v2/big/manifests/v1', {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: big,
    });
    expect(declared.status).toBe(413);
    const chunked = await reg.fetch('/v2/big/manifests/v1', {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: new ReadableStream({
        start(ctl) {
          ctl.enqueue(big);
          ctl.close();
        },
      }),
      duplex: 'half',
    });
    expect(chunked.status).toBe(413);
    expect((await reg.fetch('/v2/big/manifests/v1')).status).toBe(404);
  });

  it('GHSA-qq97-vm5h-rrhg GIVEN an index body sent as an image manifest WHEN pushed THEN MANIFEST_INVALID', async () => {
    const reg = await start();
    const c = new Client((p, i) => reg.fetch(p, i));
    const child = image().layer(8).build();
    await c.push('conf/x', 'child', child);
    const idx = index([child]);
    const r = await reg.fetch('/v2/conf/x/manifests/v1', {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: idx.body,
    });
    expect(r.status).toBe(400);
    expect(await errorCode(r)).toBe('MANIFEST_INVALID');
  });

  describe('CVE-2025-24976: a token key is matched by kid AND key material', () => {
    let reg: TestRegistry;
    let trusted: KeyObject;
    let kid: string;
    beforeAll(async () => {
      const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      trusted = pair.privateKey;
      kid = thumbprint(pair.publicKey);
      const dir = scratchDir('berth-jwks-');
      writeFileSync(
        join(dir, 'jwks.json'),
        JSON.stringify({ keys: [{ ...pair.publicKey.export({ format: 'jwk' }), kid }] }),
      );
      reg = await startTestRegistry({
        config: {
          auth: authConfig('token')
            .token({
              external: true,
              issuer: 'idp',
              realm: 'https://idp.example/token',
              jwksFile: join(dir, 'jwks.json'),
            })
            .build(),
        },
      });
    });
    afterAll(async () => reg.close());
    const get = (token: string) =>
      reg.fetch('/v2/team/app/tags/list', { headers: { authorization: `Bearer ${token}` } });

    it('GIVEN a token from the trusted key WHEN used THEN accepted', async () => {
      const r = await get(jws({ alg: 'ES256', kid }, claims('team/app'), trusted));
      expect(r.status).toBe(404); // authorized; the repository is unknown
    });

    it('GIVEN an attacker key embedded as jwk under the trusted kid WHEN used THEN 401 invalid_token', async () => {
      const evil = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const header = { alg: 'ES256', kid, jwk: evil.publicKey.export({ format: 'jwk' }) };
      const r = await get(jws(header, claims('team/app'), evil.privateKey));
      expect(r.status).toBe(401);
      expect(r.headers.get('www-authenticate')).toContain('error="invalid_token"');
    });

    it('GIVEN alg none, HS256 or an unknown kid WHEN used THEN 401', async () => {
      const p = Buffer.from(JSON.stringify(claims('team/app'))).toString('base64url');
      const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${p}.`;
      expect((await get(none)).status).toBe(401);
      const hs = `${Buffer.from(JSON.stringify({ alg: 'HS256', kid })).toString('base64url')}.${p}.AAAA`;
      expect((await get(hs)).status).toBe(401);
      const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      expect(
        (await get(jws({ alg: 'ES256', kid: 'nope' }, claims('team/app'), other))).status,
      ).toBe(401);
    });
  });

  it('CVE-2026-33540 (realm spoofing) GIVEN a configured realm WHEN a request carries X-Forwarded-Host THEN the challenge names the configured realm only', async () => {
    const reg = await start({
      config: { auth: authConfig('token').token({ realm: 'https://auth.example/token' }).build() },
    });
    const r = await reg.fetch('/v2/team/app/tags/list', {
      headers: { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' },
    });
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toBe(
      'Bearer realm="https://auth.example/token",service="berth",scope="repository:team/app:pull"',
    );
    const unset = await start({ config: { auth: authConfig('token').build() } });
    const u = await unset.fetch('/v2/', { headers: { 'x-forwarded-host': 'evil.example' } });
    expect(u.headers.get('www-authenticate')).not.toContain('evil.example');
  });

  it('CVE-2026-41888 GIVEN deletes disabled WHEN deleting a tag, a digest or a blob THEN 405 and the tag stays', async () => {
    const reg = await start({ config: { delete: { enabled: false } } });
    const c = new Client((p, i) => reg.fetch(p, i));
    const img = image().layer(8).build();
    await c.push('d/x', 'v1', img);
    for (const path of [
      '/v2/d/x/manifests/v1',
      `/v2/d/x/manifests/${img.digest}`,
      `/v2/d/x/blobs/${img.blobs[0]!.digest}`,
    ])
      expect((await reg.fetch(path, { method: 'DELETE' })).status).toBe(405);
    expect((await reg.fetch('/v2/d/x/manifests/v1')).status).toBe(200);
  });

  it('CVE-2026-31801 GIVEN an immutable tag pattern WHEN a pusher moves or deletes a matching tag THEN 403 DENIED, and re-pushing the same digest works', async () => {
    const reg = await start({
      config: {
        auth: authConfig('htpasswd')
          .user('ci', 'pw')
          .rule({ users: ['ci'], repositories: ['**'], actions: ['pull', 'push', 'delete'] })
          .immutable(['prod/**'], ['v*', 'latest'])
          .build(),
      },
    });
    const h = { authorization: basic('ci', 'pw') };
    const c = new Client((p, i) =>
      reg.fetch(p, { ...i, headers: { ...(i?.headers as Record<string, string>), ...h } }),
    );
    const one = image().layer(8).build();
    const two = image().layer(8).build();
    expect((await c.push('prod/app', 'latest', one)).status).toBe(201);
    expect((await c.push('prod/app', 'latest', one)).status).toBe(201);
    const moved = await c.push('prod/app', 'latest', two);
    expect(moved.status).toBe(403);
    expect(await errorCode(moved)).toBe('DENIED');
    const viaTagParam = await c.pushManifest('prod/app', `${two.digest}?tag=latest`, two);
    expect(viaTagParam.status).toBe(403);
    expect(
      (await reg.fetch('/v2/prod/app/manifests/latest', { method: 'DELETE', headers: h })).status,
    ).toBe(403);
    expect(
      (await reg.fetch(`/v2/prod/app/manifests/${one.digest}`, { method: 'DELETE', headers: h }))
        .status,
    ).toBe(403);
    const got = await reg.fetch('/v2/prod/app/manifests/latest', { headers: h });
    expect(got.headers.get('docker-content-digest')).toBe(one.digest);
    expect((await c.push('dev/app', 'latest', one)).status).toBe(201);
    expect((await c.push('dev/app', 'latest', two)).status).toBe(201);
  });

  it('CVE-2024-39897 GIVEN a blob only in a private repository WHEN a pusher elsewhere mounts it with or without from THEN it is not linked', async () => {
    const reg = await start({
      config: {
        auth: authConfig('htpasswd')
          .user('owner', 'pw')
          .user('thief', 'pw')
          .rule({ users: ['owner'], repositories: ['private/**'], actions: ['pull', 'push'] })
          .rule({ users: ['thief'], repositories: ['thief/**'], actions: ['pull', 'push'] })
          .build(),
      },
    });
    const b = blob(randomBytes(64));
    const owner = new Client((p, i) =>
      reg.fetch(p, {
        ...i,
        headers: { ...(i?.headers as Record<string, string>), authorization: basic('owner', 'pw') },
      }),
    );
    expect((await owner.pushBlob('private/x', b)).status).toBe(201);
    const t = { authorization: basic('thief', 'pw') };
    for (const q of [`mount=${b.digest}&from=private/x`, `mount=${b.digest}`]) {
      const r = await reg.fetch(`/v2/thief/loot/blobs/uploads/?${q}`, {
        method: 'POST',
        headers: t,
      });
      expect(r.status).toBe(202);
    }
    expect((await reg.fetch(`/v2/thief/loot/blobs/${b.digest}`, { headers: t })).status).toBe(404);
  });

  it('CVE-2014-9358 GIVEN path tricks in names and digests WHEN requested THEN 4xx, never 5xx, and storage is untouched', async () => {
    const reg = await start();
    const before = JSON.stringify(await reg.driver.list('', { limit: 1000 }).catch(() => ({})));
    const paths = [
      '/v2/../../etc/passwd/manifests/latest',
      '/v2/a/%2e%2e/%2e%2e/b/manifests/latest',
      '/v2/a%2F..%2Fb/tags/list',
      '/v2/A/tags/list',
      '/v2/a//b/tags/list',
      '/v2/a/./b/tags/list',
      '/v2/a/blobs/sha256:..%2F..%2Fetc',
      `/v2/a/blobs/sha256:${'A'.repeat(64)}`,
      '/v2/a/manifests/..',
      '/v2/a%00b/tags/list',
      '/v2/%ff/tags/list',
    ];
    for (const p of paths) {
      for (const method of ['GET', 'PUT', 'DELETE']) {
        const r = await reg.fetch(p, { method, body: method === 'PUT' ? '{}' : undefined });
        expect(r.status, `${method} ${p}`).toBeGreaterThanOrEqual(400);
        expect(r.status, `${method} ${p}`).toBeLessThan(500);
      }
    }
    expect(JSON.stringify(await reg.driver.list('', { limit: 1000 }).catch(() => ({})))).toBe(
      before,
    );
  });

  it('hardening 7ed654e0a GIVEN an htpasswd file of cost-10 hashes WHEN checking an unknown user THEN the dummy hash has the same cost and one compare runs', async () => {
    const dir = scratchDir('berth-htpasswd-');
    const file = join(dir, 'htpasswd');
    writeFileSync(file, `alice:${bcrypt.hashSync('right', 10)}\n`);
    const h = Htpasswd.open(file, { clock: new ManualClock({ start: 1_700_000_000_000 }) });
    expect(h.dummyCost).toBe(10);
    const time = async (user: string) => {
      const t0 = process.hrtime.bigint();
      expect(await h.verify(user, 'wrong')).toBe(false);
      return Number(process.hrtime.bigint() - t0) / 1e6;
    };
    const known: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < 3; i++) {
      known.push(await time('alice'));
      unknown.push(await time(`nobody${i}`));
    }
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[1]!;
    const ratio = median(unknown) / median(known);
    expect(ratio).toBeGreaterThan(0.5);
    expect(ratio).toBeLessThan(2);
  });

  it('GHSA-j7jh-fmcm-xxwv GIVEN two servers without a configured signing key WHEN one’s token is shown to the other THEN it is refused', async () => {
    const auth = authConfig('token')
      .user('alice', 'pw')
      .rule({ users: ['alice'], repositories: ['**'], actions: ['pull'] })
      .build();
    const a = await start({ config: { auth } });
    const b = await start({ config: { auth } });
    const tok = (await (
      await a.fetch('/auth/token?service=berth&scope=repository:x/y:pull', {
        headers: { authorization: basic('alice', 'pw') },
      })
    ).json()) as { token: string };
    expect(
      (await a.fetch('/v2/x/y/tags/list', { headers: { authorization: `Bearer ${tok.token}` } }))
        .status,
    ).toBe(404);
    expect(
      (await b.fetch('/v2/x/y/tags/list', { headers: { authorization: `Bearer ${tok.token}` } }))
        .status,
    ).toBe(401);
  });

  it('GO-2022-0785 / CVE-2019-19030 GIVEN no credentials WHEN listing the catalog or probing repositories THEN 401 alike for existing and missing ones', async () => {
    const reg = await start({
      config: {
        auth: authConfig('htpasswd')
          .user('u', 'pw')
          .rule({ users: ['u'], repositories: ['**'], actions: ['pull', 'push'] })
          .build(),
      },
    });
    const c = new Client((p, i) =>
      reg.fetch(p, {
        ...i,
        headers: { ...(i?.headers as Record<string, string>), authorization: basic('u', 'pw') },
      }),
    );
    await c.push('exists/app', 'v1', image().layer(8).build());
    expect((await reg.fetch('/v2/_catalog')).status).toBe(401);
    const a = await reg.fetch('/v2/exists/app/manifests/v1');
    const b = await reg.fetch('/v2/missing/app/manifests/v1');
    expect([a.status, b.status]).toEqual([401, 401]);
    expect(a.headers.get('www-authenticate')).toBe(b.headers.get('www-authenticate'));
    expect(await errorCode(a)).toBe(await errorCode(b));
  });

  it('rate limit GIVEN 2 requests per second, burst 3 WHEN a client sends 4 at once THEN the 4th is 429 TOOMANYREQUESTS with Retry-After, and allowed again a second later', async () => {
    const clock = new ManualClock({ start: 1_700_000_000_000 });
    const reg = await start({
      config: { limits: { rate: { requestsPerSecond: 2, burst: 3 } } },
      clock,
    });
    for (let i = 0; i < 3; i++) expect((await reg.fetch('/v2/')).status).toBe(200);
    const r = await reg.fetch('/v2/');
    expect(r.status).toBe(429);
    expect(r.headers.get('retry-after')).toBe('1');
    expect(await errorCode(r)).toBe('TOOMANYREQUESTS');
    clock.advance(1000);
    expect((await reg.fetch('/v2/')).status).toBe(200);
  });

  it('upload sessions GIVEN a cap of 2 per client WHEN a third is opened THEN 429, and after one is cancelled a new one opens', async () => {
    const reg = await start({ config: { limits: { uploadSessionsPerClient: 2 } } });
    const open = () => reg.fetch('/v2/u/x/blobs/uploads/', { method: 'POST' });
    const first = await open();
    expect(first.status).toBe(202);
    expect((await open()).status).toBe(202);
    expect((await open()).status).toBe(429);
    expect((await reg.fetch(first.headers.get('location')!, { method: 'DELETE' })).status).toBe(
      204,
    );
    expect((await open()).status).toBe(202);
  });

  it('header size GIVEN headerBytes 2048 WHEN a request carries 4 KiB of headers THEN 431 before any handler runs', async () => {
    const reg = await start({ config: { limits: { headerBytes: 2048 } } });
    const url = new URL(reg.url);
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          path: '/v2/',
          headers: { 'x-big': 'a'.repeat(4096) },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(431);
  });
});
