import { afterEach, describe, expect, it } from 'vitest';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { Paths } from '../../../server/storage/paths.js';
import { authConfig, basic } from '../../support/auth.js';
import { startTestRegistry, type TestRegistry } from '../../support/server.js';

const alice = { authorization: basic('alice', 'pw') };

describe('catalog Link header', () => {
  const regs: TestRegistry[] = [];
  afterEach(async () => {
    await Promise.all(regs.splice(0).map((r) => r.close()));
  });

  it('GIVEN more hidden repositories than one scan looks at WHEN a caller pages the catalog THEN no Link names a repository it may not pull, and following the links lists exactly the ones it may', async () => {
    const driver = new InMemoryDriver();
    const hidden = Array.from(
      { length: 10_050 },
      (_, i) => `mid/hidden-${String(i).padStart(5, '0')}`,
    );
    for (const name of ['aaa/app', ...hidden, 'zzz/app'])
      await driver.put(Paths.catalogEntry(name), '');
    const reg = await startTestRegistry({
      driver,
      config: {
        auth: authConfig('htpasswd')
          .user('alice', 'pw')
          .rule({ users: ['alice'], repositories: ['aaa/**', 'zzz/**'], actions: ['pull'] })
          .build(),
      },
    });
    regs.push(reg);

    const seen: string[] = [];
    const links: string[] = [];
    let path: string | undefined = '/v2/_catalog?n=100';
    for (let i = 0; path !== undefined && i < 10; i++) {
      const r = await reg.fetch(path, { headers: alice });
      expect(r.status).toBe(200);
      seen.push(...((await r.json()) as { repositories: string[] }).repositories);
      const link = r.headers.get('link');
      if (link !== null) links.push(link);
      path = link === null ? undefined : /^<([^>]+)>/.exec(link)![1];
    }

    expect(links.length).toBeGreaterThan(0);
    for (const link of links) expect(decodeURIComponent(link)).not.toContain('mid/');
    expect(seen).toEqual(['aaa/app', 'zzz/app']);
  });

  it('GIVEN a tampered sealed cursor WHEN used as last THEN 400 PAGINATION_NUMBER_INVALID', async () => {
    const reg = await startTestRegistry();
    regs.push(reg);
    const r = await reg.fetch('/v2/_catalog?last=~AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
    expect(r.status).toBe(400);
    expect(((await r.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe(
      'PAGINATION_NUMBER_INVALID',
    );
  });
});
