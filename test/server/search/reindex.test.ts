import { describe, expect, it } from 'vitest';
import { Registry } from '../../../server/registry/repository.js';
import { reindex } from '../../../server/search/reindex.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { directViews } from '../../../server/storage/views.js';
import { image } from '../../support/image.js';
import { indexed, storedDocument } from '../../support/search.js';

const titled = (title: string) =>
  image().layer(8).annotate({ 'org.opencontainers.image.title': title }).build();

describe('search reindex', () => {
  it('GIVEN repositories pushed before the index existed WHEN reindexed THEN their tags, untagged manifests and titles are found, and a second run changes nothing but the revision', async () => {
    const driver = new InMemoryDriver();
    const old = new Registry(directViews(driver), { allowSparse: true });
    const [tagged, loose] = [titled('Old Tagged'), titled('Old Loose')];
    const repo = old.repository('legacy/app');
    await repo.tag('v1', (await repo.put(tagged.body, tagged.mediaType)).digest);
    await repo.put(loose.body, loose.mediaType);
    const { registry, search } = indexed(driver);
    expect((await search.search({ term: 'old', n: 10 })).results).toEqual([]);

    const report = await reindex(driver, registry, search);

    expect(report).toEqual({ repositories: 1, tags: 1, manifests: 2 });
    const doc = await storedDocument(driver, 'legacy/app');
    expect(doc.tags).toEqual({ v1: tagged.digest });
    expect(Object.keys(doc.manifests).sort()).toEqual([tagged.digest, loose.digest].sort());
    expect((await search.search({ term: 'old loose', n: 10 })).results).toMatchObject([
      { repository: 'legacy/app', tags: ['v1'], matched: ['annotation'], title: 'Old Loose' },
    ]);
    expect(await reindex(driver, registry, search)).toEqual(report);
    expect((await storedDocument(driver, 'legacy/app')).tags).toEqual(doc.tags);
  });

  it('GIVEN a document naming a tag removed behind its back WHEN reindexed THEN the stale tag leaves it', async () => {
    const driver = new InMemoryDriver();
    const { registry, search } = indexed(driver);
    const img = titled('x');
    const repo = registry.repository('drift');
    await repo.tag('gone', (await repo.put(img.body, img.mediaType)).digest);
    await new Registry(directViews(driver), { allowSparse: true })
      .repository('drift')
      .untag('gone');
    expect((await storedDocument(driver, 'drift')).tags).toEqual({ gone: img.digest });

    await reindex(driver, registry, search);

    expect((await storedDocument(driver, 'drift')).tags).toEqual({});
  });
});
