import { afterEach, describe, expect, it } from 'vitest';
import { FilesystemDriver } from '../../../server/storage/drivers/filesystem.js';
import { Paths } from '../../../server/storage/paths.js';
import { authConfig, basic } from '../../support/auth.js';
import { Client, image, type Built } from '../../support/image.js';
import { startTestRegistry, type TestRegistry } from '../../support/server.js';
import { scratchDir } from '../../support/scratch.js';

interface Body {
  results: { repository: string; tags: string[]; matched: string[]; title?: string }[];
}

const regs: TestRegistry[] = [];
afterEach(async () => {
  await Promise.all(regs.splice(0).map((r) => r.close()));
});

async function start(opts: Parameters<typeof startTestRegistry>[0] = {}): Promise<TestRegistry> {
  const reg = await startTestRegistry(opts);
  regs.push(reg);
  return reg;
}

const titled = (title: string, description = ''): Built =>
  image()
    .layer(8)
    .annotate({
      'org.opencontainers.image.title': title,
      ...(description && { 'org.opencontainers.image.description': description }),
    })
    .build();

function client(reg: TestRegistry, auth?: string): Client {
  const h: Record<string, string> = auth ? { authorization: auth } : {};
  return new Client((p, i) =>
    reg.fetch(p, { ...i, headers: { ...(i?.headers as Record<string, string>), ...h } }),
  );
}

async function search(reg: TestRegistry, qs: string, auth?: string) {
  const r = await reg.fetch(`/v2/_berth/search?${qs}`, {
    headers: auth ? { authorization: auth } : {},
  });
  return { status: r.status, link: r.headers.get('link'), body: (await r.json()) as Body };
}

describe('search API', () => {
  it('GIVEN pushed images WHEN searched by name, tag and annotation THEN each finds its repository with what matched', async () => {
    const reg = await start();
    const c = client(reg);
    expect((await c.push('shop/cart', 'v1.2', titled('Cart', 'Basket service'))).status).toBe(201);
    expect((await c.push('shop/db', 'nightly', titled('Postgres'))).status).toBe(201);

    const byName = await search(reg, 'q=CART');
    expect(byName.status).toBe(200);
    expect(byName.body.results).toEqual([
      {
        repository: 'shop/cart',
        tags: ['v1.2'],
        matched: ['name', 'annotation'],
        title: 'Cart',
        description: 'Basket service',
      },
    ]);
    const byTag = await search(reg, 'q=night');
    expect(byTag.body.results).toMatchObject([
      { repository: 'shop/db', tags: ['nightly'], matched: ['tag'] },
    ]);
    const byText = await search(reg, 'q=basket');
    expect(byText.body.results.map((r) => r.repository)).toEqual(['shop/cart']);
    const both = await search(reg, 'q=shop');
    expect(both.body.results.map((r) => r.repository)).toEqual(['shop/cart', 'shop/db']);
  });

  it('GIVEN five matching repositories WHEN searched two at a time THEN Link headers walk every page in name order', async () => {
    const reg = await start();
    const c = client(reg);
    for (const name of ['app/e', 'app/c', 'app/a', 'app/d', 'app/b']) {
      expect((await c.push(name, 'latest', titled(name))).status).toBe(201);
    }
    const seen: string[] = [];
    let path: string | null = '/v2/_berth/search?q=app&n=2';
    for (let i = 0; path && i < 10; i++) {
      const r: Response = await reg.fetch(path);
      seen.push(...((await r.json()) as Body).results.map((x) => x.repository));
      path = /^<([^>]+)>; rel="next"$/.exec(r.headers.get('link') ?? '')?.[1] ?? null;
    }
    expect(seen).toEqual(['app/a', 'app/b', 'app/c', 'app/d', 'app/e']);
  });

  it('GIVEN a user who may pull only team-a/* WHEN searching a term both teams match THEN team-b never appears, in the body or in a Link', async () => {
    const auth = authConfig('htpasswd')
      .user('admin', 'pw')
      .user('alice', 'pw')
      .rule({ users: ['admin'], repositories: ['**'], actions: ['pull', 'push'] })
      .rule({ users: ['alice'], repositories: ['team-a/*'], actions: ['pull'] })
      .build();
    const reg = await start({ config: { auth } });
    const admin = client(reg, basic('admin', 'pw'));
    for (const name of ['team-a/api', 'team-b/api', 'team-b/secret-api']) {
      expect((await admin.push(name, 'latest', titled('api of ' + name))).status).toBe(201);
    }

    const alice = basic('alice', 'pw');
    const all = await search(reg, 'q=api', alice);
    expect(all.body.results.map((r) => r.repository)).toEqual(['team-a/api']);
    const page = await search(reg, 'q=api&n=1', alice);
    expect(page.body.results.map((r) => r.repository)).toEqual(['team-a/api']);
    expect(page.link ?? '').not.toContain('team-b');
    expect(JSON.stringify((await search(reg, 'q=team-b', alice)).body)).not.toContain('team-b');
    const anonymous = await reg.fetch('/v2/_berth/search?q=api');
    expect(anonymous.status).toBe(401);
    const everything = await search(reg, 'q=api', basic('admin', 'pw'));
    expect(everything.body.results).toHaveLength(3);
  });

  it('GIVEN bad input WHEN searched THEN 400 with OCI error JSON and a clear message, never 5xx', async () => {
    const reg = await start();
    const cases = ['', 'q=', 'q=%20%20', `q=${'x'.repeat(257)}`, 'q=a&n=-1', 'q=a&n=0', 'q=a&n=x'];
    for (const qs of cases) {
      const r = await reg.fetch(`/v2/_berth/search?${qs}`);
      expect(r.status, qs).toBe(400);
      const body = (await r.json()) as { errors: { code: string; message: string }[] };
      expect(body.errors[0]?.message, qs).toMatch(/search term|invalid number|positive/);
    }
    expect((await reg.fetch(`/v2/_berth/search?q=${'x'.repeat(256)}`)).status).toBe(200);
  });

  it('GIVEN an immutable tag WHEN a push that would move it is refused THEN the index is unchanged', async () => {
    const auth = authConfig('htpasswd')
      .user('ci', 'pw')
      .rule({ users: ['ci'], repositories: ['**'], actions: ['pull', 'push', 'delete'] })
      .immutable(['prod/**'], ['latest'])
      .build();
    const reg = await start({ config: { auth } });
    const h = basic('ci', 'pw');
    const c = client(reg, h);
    expect((await c.push('prod/app', 'latest', titled('first'))).status).toBe(201);
    const before = await search(reg, 'q=prod', h);

    expect((await c.push('prod/app', 'latest', titled('second release'))).status).toBe(403);

    expect(await search(reg, 'q=prod', h)).toEqual(before);
    expect((await search(reg, 'q=second', h)).body.results).toEqual([]);
  });

  it('GIVEN the registry WHEN discover is asked THEN the search endpoint is advertised under _berth', async () => {
    const reg = await start();
    const d = (await (await reg.fetch('/v2/_oci/ext/discover')).json()) as {
      extensions: { name: string; endpoints: string[] }[];
    };
    expect(d.extensions).toContainEqual(
      expect.objectContaining({ name: '_berth', endpoints: ['_berth/search'] }),
    );
  });

  it('GIVEN two registries on one filesystem folder WHEN 60 tag pushes race through both THEN search on either lists every tag, each on the manifest its tag names', async () => {
    const root = scratchDir('berth-search-http-');
    const [a, b] = [
      await start({ driver: new FilesystemDriver(root) }),
      await start({ driver: new FilesystemDriver(root) }),
    ];
    const imgs = [titled('racer one'), titled('racer two')];
    for (const img of imgs)
      expect((await client(a).push('race/app', img.digest, img)).status).toBe(201);
    const tags = Array.from({ length: 60 }, (_, i) => `t${i % 20}`);

    const statuses = await Promise.all(
      tags.map((tag, i) =>
        client(i % 2 ? b : a).pushManifest('race/app', tag, imgs[i % 3 === 0 ? 0 : 1]!),
      ),
    );

    expect(statuses.map((r) => r.status).filter((s) => s !== 201)).toEqual([]);
    const stored = new FilesystemDriver(root);
    const want: Record<string, string> = {};
    for (const tag of new Set(tags)) {
      want[tag] = (await stored.get(Paths.tag('race/app', tag))).toString('utf8');
    }
    const doc = JSON.parse((await stored.get(Paths.searchDoc('race/app'))).toString('utf8')) as {
      tags: Record<string, string>;
    };
    expect(doc.tags).toEqual(want);
    const found = await search(b, 'q=t1');
    expect(found.body.results[0]?.tags).toEqual([
      't1',
      ...Array.from({ length: 10 }, (_, i) => `t1${i}`),
    ]);
  });
});
