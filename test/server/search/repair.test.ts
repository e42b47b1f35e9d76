import { describe, expect, it } from 'vitest';
import { Registry } from '../../../server/registry/repository.js';
import { SearchIndex } from '../../../server/search/index.js';
import { repairStale } from '../../../server/search/reindex.js';
import { indexingRepository } from '../../../server/search/repository.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { Paths } from '../../../server/storage/paths.js';
import { directViews } from '../../../server/storage/views.js';
import { image } from '../../support/image.js';
import { storedDocument } from '../../support/search.js';

/** Contended loses every compare-and-set of a search document while `losing` is set. */
class Contended extends InMemoryDriver {
  losing = true;
  override putIfVersion(key: string, data: Buffer | string, expected: string | null) {
    if (this.losing && key.startsWith(Paths.searchRoot())) return Promise.resolve(false);
    return super.putIfVersion(key, data, expected);
  }
}

function setup() {
  const driver = new Contended();
  const seen: string[] = [];
  const search = new SearchIndex(directViews(driver), {
    ttlMillis: 0,
    observe: (what) => seen.push(what),
  });
  const registry = new Registry(directViews(driver), {
    allowSparse: true,
    pause: () => Promise.resolve(),
    decorate: (repo) => indexingRepository(repo, search),
  });
  return { driver, search, registry, seen };
}

describe('search index repair after a missed update (ADR 0023)', () => {
  it('GIVEN a search document that keeps changing WHEN a manifest is pushed and tagged THEN both writes succeed, are stored, and the repository is marked stale instead of the client seeing 503', async () => {
    const { driver, search, registry, seen } = setup();
    const img = image().layer(8).build();
    const repo = registry.repository('team/app');

    const { digest } = await repo.put(img.body, img.mediaType);
    await repo.tag('v1', digest);

    expect(digest.value).toBe(img.digest);
    expect((await driver.get(Paths.tag('team/app', 'v1'))).toString()).toBe(img.digest);
    expect(seen).toEqual(['missed', 'missed']);
    expect((await search.staleMarks()).map((m) => m.repository)).toEqual(['team/app']);
  });

  it('GIVEN a marked repository WHEN the contention ends and a repair pass runs THEN its document holds what is stored and the mark is cleared; a second pass rebuilds nothing', async () => {
    const { driver, search, registry, seen } = setup();
    const img = image().layer(8).build();
    const repo = registry.repository('team/app');
    await repo.tag('v1', (await repo.put(img.body, img.mediaType)).digest);

    driver.losing = false;
    expect(await repairStale(driver, registry, search)).toBe(1);

    expect((await storedDocument(driver, 'team/app')).tags).toEqual({ v1: img.digest });
    expect(await search.staleMarks()).toEqual([]);
    expect(seen.filter((w) => w === 'repaired')).toHaveLength(1);
    expect(await repairStale(driver, registry, search)).toBe(0);
  });

  it('GIVEN a mark read by a repair pass WHEN the repository is marked again before the pass clears it THEN the mark stays for the next pass', async () => {
    const { driver, search, registry } = setup();
    const img = image().layer(8).build();
    const repo = registry.repository('team/app');
    await repo.tag('v1', (await repo.put(img.body, img.mediaType)).digest);
    driver.losing = false;

    const [mark] = await search.staleMarks();
    await search.markStale('team/app');

    expect(await search.clearStale(mark!)).toBe(false);
    expect((await search.staleMarks()).map((m) => m.repository)).toEqual(['team/app']);
    expect(await repairStale(driver, registry, search)).toBe(1);
    expect(await search.staleMarks()).toEqual([]);
  });

  it('GIVEN a repair that fails WHEN the pass ends THEN the repository stays marked', async () => {
    const { driver, search, registry } = setup();
    const img = image().layer(8).build();
    const repo = registry.repository('team/app');
    await repo.tag('v1', (await repo.put(img.body, img.mediaType)).digest);

    await expect(repairStale(driver, registry, search)).rejects.toThrow(/changing too often/);
    expect((await search.staleMarks()).map((m) => m.repository)).toEqual(['team/app']);
  });
});
