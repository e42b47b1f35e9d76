import { describe, expect, it } from 'vitest';
import { MeteredDriver } from '../../../server/metrics/driver.js';
import { parseDigest } from '../../../server/registry/reference.js';
import { Registry } from '../../../server/registry/repository.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { image } from '../../support/image.js';
import { directViews } from '../../../server/storage/views.js';

/** setup is a sparse registry (no blobs needed) whose storage calls are recorded. */
function setup() {
  const inner = new InMemoryDriver();
  const actions: string[] = [];
  const driver = new MeteredDriver(inner, (_d, action) => actions.push(action));
  const registry = new Registry(directViews(driver), { allowSparse: true });
  return { inner, registry, actions };
}

async function pushed(registry: Registry, repo: string) {
  const img = image().layer(10).build();
  await registry.repository(repo).put(img.body, img.mediaType);
  return parseDigest(img.digest);
}

describe('tags', () => {
  it('GIVEN a new tag WHEN set THEN the reverse index entry, a compare-and-set from absent, the entry settled against the tag, the manifest checked, and no delete fence found', async () => {
    const { registry, inner, actions } = setup();
    const d = await pushed(registry, 'r');
    actions.length = 0;

    await registry.repository('r').tag('v1', d);

    expect(actions).toEqual([
      'PutContent',
      'PutContentIfVersion',
      'GetContentVersioned',
      'PutContent',
      'GetContentVersioned',
      'Stat',
      'GetContent',
    ]);
    expect((await registry.repository('r').resolve('v1')).value).toBe(d.value);
    expect(Object.keys(inner.snapshot()).filter((k) => k.includes('/_tagsof/'))).toEqual([
      `repositories/r/_tagsof/sha256-${d.hex}/v1`,
    ]);
  });

  it('GIVEN a tag that moves WHEN set again THEN it names the new manifest, the old one is unindexed, and deleting the old manifest keeps the tag', async () => {
    const { registry, inner } = setup();
    const repo = registry.repository('r');
    const first = await pushed(registry, 'r');
    const second = await pushed(registry, 'r');
    await repo.tag('latest', first);

    await repo.tag('latest', second);

    expect((await repo.resolve('latest')).value).toBe(second.value);
    expect(Object.keys(inner.snapshot()).filter((k) => k.includes('/_tagsof/'))).toEqual([
      `repositories/r/_tagsof/sha256-${second.hex}/latest`,
    ]);
    await repo.delete(first);
    expect((await repo.resolve('latest')).value).toBe(second.value);
  });

  it('GIVEN a tag set again to the manifest it names WHEN set THEN nothing changes', async () => {
    const { registry, inner } = setup();
    const repo = registry.repository('r');
    const d = await pushed(registry, 'r');
    await repo.tag('v1', d);
    const before = inner.snapshot();

    await repo.tag('v1', d);

    expect(inner.snapshot()).toEqual(before);
    expect((await repo.resolve('v1')).value).toBe(d.value);
  });
});
