import { describe, expect, it } from 'vitest';
import { CachingDriver } from '../../../server/storage/cache.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { Paths } from '../../../server/storage/paths.js';
import { cachedViews, directViews } from '../../../server/storage/views.js';

const LAYER = 'repositories/app/_layers/sha256/' + 'b'.repeat(64);

function cachedSetup() {
  const inner = new InMemoryDriver();
  const views = cachedViews(
    new CachingDriver(inner, {
      immutable: Paths.immutable,
      ttlMs: 60_000,
      listable: Paths.listCached,
      listTtlMs: 60_000,
      maxBytes: 1 << 20,
    }),
  );
  return { inner, views };
}

describe('storage views', () => {
  it('GIVEN a cached object changed behind the cache (another replica) WHEN read through each view THEN fresh answers from storage and cached from memory until invalidated', async () => {
    const { inner, views } = cachedSetup();
    await views.cached.put(LAYER, 'one');
    await views.cached.get(LAYER);
    await inner.put(LAYER, 'two');

    expect((await views.fresh.get(LAYER)).toString()).toBe('two');
    expect((await views.cached.get(LAYER)).toString()).toBe('one');
    views.invalidate(LAYER);
    expect((await views.cached.get(LAYER)).toString()).toBe('two');
  });

  it('GIVEN a cached object deleted behind the cache WHEN the fresh view stats it THEN not found, while the cached view still answers', async () => {
    const { inner, views } = cachedSetup();
    await views.cached.put(LAYER, 'one');
    await views.cached.get(LAYER);
    await inner.delete(LAYER);

    await expect(views.fresh.get(LAYER)).rejects.toMatchObject({ name: 'PathNotFoundError' });
    expect((await views.cached.get(LAYER)).toString()).toBe('one');
  });

  it('GIVEN a driver without a cache WHEN viewed THEN both views are the driver and invalidating does nothing', async () => {
    const driver = new InMemoryDriver();
    const views = directViews(driver);
    await views.cached.put(LAYER, 'one');

    views.invalidate(LAYER);

    expect(views.cached).toBe(driver);
    expect(views.fresh).toBe(driver);
    expect((await views.fresh.get(LAYER)).toString()).toBe('one');
  });
});
