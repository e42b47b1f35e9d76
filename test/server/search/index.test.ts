import { describe, expect, it } from 'vitest';
import { parseDigest } from '../../../server/registry/reference.js';
import { listAll } from '../../../server/storage/driver.js';
import { FilesystemDriver } from '../../../server/storage/drivers/filesystem.js';
import { Paths } from '../../../server/storage/paths.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { image, index as imageIndex } from '../../support/image.js';
import { indexed, indexViolations, storedDocument } from '../../support/search.js';
import { fixture, mulberry32, race, randomOps } from '../../support/tag-race.js';
import { scratchDir } from '../../support/scratch.js';

const titled = (title: string) =>
  image()
    .layer(8)
    .annotate({ 'org.opencontainers.image.title': title, 'org.opencontainers.image.version': '1' })
    .build();

describe('search index kept on write', () => {
  it('GIVEN an annotated image WHEN pushed and tagged THEN the document holds the tag and the title, and a search by title finds it', async () => {
    const driver = new InMemoryDriver();
    const { registry, search } = indexed(driver);
    const img = titled('Payments API');
    const repo = registry.repository('team-a/pay');
    const { digest } = await repo.put(img.body, img.mediaType);
    await repo.tag('v1', digest);

    expect(await storedDocument(driver, 'team-a/pay')).toMatchObject({
      repository: 'team-a/pay',
      tags: { v1: img.digest },
      manifests: { [img.digest]: { title: 'Payments API' } },
    });
    const page = await search.search({ term: 'payments', n: 10 });
    expect(page.results).toEqual([
      { repository: 'team-a/pay', tags: ['v1'], matched: ['annotation'], title: 'Payments API' },
    ]);
  });

  it('GIVEN an index with its own annotations WHEN pushed THEN its text is indexed, not its children’s', async () => {
    const driver = new InMemoryDriver();
    const { registry } = indexed(driver);
    const child = titled('child');
    const idx = imageIndex([child], {
      annotations: { 'org.opencontainers.image.description': 'multi-arch thing' },
    });
    const repo = registry.repository('multi');
    await repo.put(child.body, child.mediaType);
    await repo.tag('latest', (await repo.put(idx.body, idx.mediaType)).digest);

    const doc = await storedDocument(driver, 'multi');
    expect(doc.manifests[idx.digest]).toEqual({ description: 'multi-arch thing' });
    expect(doc.tags).toEqual({ latest: idx.digest });
  });

  it('GIVEN a tagged manifest WHEN its tag is removed, then the manifest deleted THEN the tag leaves the document, then the document is empty and matches nothing', async () => {
    const driver = new InMemoryDriver();
    const { registry, search } = indexed(driver);
    const img = titled('gone soon');
    const repo = registry.repository('tmp/app');
    const { digest } = await repo.put(img.body, img.mediaType);
    await repo.tag('a', digest);
    await repo.tag('b', digest);

    await repo.untag('a');
    expect((await storedDocument(driver, 'tmp/app')).tags).toEqual({ b: img.digest });
    await repo.delete(digest);
    expect(await storedDocument(driver, 'tmp/app')).toMatchObject({ tags: {}, manifests: {} });
    expect((await search.search({ term: 'app', n: 10 })).results).toEqual([]);
  });

  it('GIVEN a manifest that many tags point at WHEN it is pushed again THEN the index reads none of those tags, and keeps them all', async () => {
    class Counting extends InMemoryDriver {
      tagReads = 0;
      override get(key: string): Promise<Buffer> {
        if (Paths.isTag(key)) this.tagReads++;
        return super.get(key);
      }
    }
    const driver = new Counting();
    const { registry } = indexed(driver);
    const img = titled('Shared');
    const repo = registry.repository('team-a/shared');
    const { digest } = await repo.put(img.body, img.mediaType);
    for (let i = 0; i < 40; i++) await repo.tag(`t${i}`, digest);
    driver.tagReads = 0;

    await repo.put(img.body, img.mediaType);

    expect(driver.tagReads).toBe(0);
    const doc = (await storedDocument(driver, 'team-a/shared')) as { tags: object };
    expect(Object.keys(doc.tags)).toHaveLength(40);
  });

  it('GIVEN a push by tag (a put naming its tags, then the tag) WHEN indexed THEN the document is written once, with the tag and the text; a tag write that is refused still indexes the manifest', async () => {
    class Counting extends InMemoryDriver {
      docWrites = 0;
      override putIfVersion(key: string, data: Buffer | string, expected: string | null) {
        if (key.startsWith(Paths.searchRoot())) this.docWrites++;
        return super.putIfVersion(key, data, expected);
      }
    }
    const driver = new Counting();
    const { registry } = indexed(driver);
    const img = titled('Pushed by tag');
    const repo = registry.repository('team-a/bytag');

    const { digest } = await repo.put(img.body, img.mediaType, undefined, ['v1']);
    await repo.tag('v1', digest);

    expect(driver.docWrites).toBe(1);
    expect(await storedDocument(driver, 'team-a/bytag')).toMatchObject({
      tags: { v1: img.digest },
      manifests: { [img.digest]: { title: 'Pushed by tag' } },
    });
    const other = titled('Refused tag');
    const again = registry.repository('team-a/bytag');
    const put = await again.put(other.body, other.mediaType, undefined, ['bad tag']);
    await expect(again.tag('bad tag', put.digest)).rejects.toThrow();
    expect((await storedDocument(driver, 'team-a/bytag')).manifests).toMatchObject({
      [other.digest]: { title: 'Refused tag' },
    });
  });

  it('GIVEN a tag moved to another manifest WHEN indexed THEN the tag names the new digest', async () => {
    const driver = new InMemoryDriver();
    const { registry } = indexed(driver);
    const [one, two] = [titled('one'), titled('two')];
    const repo = registry.repository('mover');
    await repo.tag('latest', (await repo.put(one.body, one.mediaType)).digest);
    await repo.tag('latest', (await repo.put(two.body, two.mediaType)).digest);

    expect((await storedDocument(driver, 'mover')).tags).toEqual({ latest: two.digest });
  });

  it('GIVEN many repositories WHEN searched page by page THEN pages follow in name order and only visible repositories appear', async () => {
    const driver = new InMemoryDriver();
    const { registry, search } = indexed(driver);
    const names = ['svc/a', 'svc/b', 'svc/c', 'svc/d', 'svc-hidden', 'svc/e'];
    for (const name of names) {
      const img = titled(name);
      await registry.repository(name).put(img.body, img.mediaType);
    }
    const visible = (n: string) => n !== 'svc-hidden';

    const seen: string[] = [];
    let last: string | undefined;
    for (let i = 0; i < 10; i++) {
      const page = await search.search({ term: 'SVC', n: 2, last, visible });
      seen.push(...page.results.map((r) => r.repository));
      if (page.next === undefined) break;
      last = page.next;
    }
    expect(seen).toEqual(['svc/a', 'svc/b', 'svc/c', 'svc/d', 'svc/e']);
  });
});

describe('search index races', () => {
  it('GIVEN two replicas on one filesystem folder WHEN hundreds of racing tag moves, untags, manifest deletes and pushes run THEN no request fails and the document ends equal to the tags and manifests stored', async () => {
    const root = scratchDir('berth-searchrace-');
    const both = [0, 1].map(() => indexed(new FilesystemDriver(root)));
    const replicas = both.map((r) => r.registry);
    const f = fixture('race/search', 4, 5);
    for (const m of f.manifests) await replicas[0]!.repository(f.repo).put(m.body, m.mediaType);

    const failures = await race(replicas, f, randomOps(f, 400, mulberry32(23)), 16);
    await Promise.all(both.map((r) => r.search.settled()));

    expect(failures).toEqual([]);
    expect(await listAll(new FilesystemDriver(root), Paths.searchPendingRoot())).toEqual([]);
    expect(await indexViolations(new FilesystemDriver(root), f)).toEqual([]);
  });

  it('GIVEN two replicas WHEN each moves many distinct tags at once THEN no entry is lost', async () => {
    const root = scratchDir('berth-searchrace-');
    const both = [0, 1].map(() => indexed(new FilesystemDriver(root)));
    const replicas = both.map((r) => r.registry);
    const f = fixture('race/many', 2, 40);
    for (const m of f.manifests) await replicas[0]!.repository(f.repo).put(m.body, m.mediaType);

    await Promise.all(
      f.tags.map((tag, i) =>
        replicas[i % 2]!.repository(f.repo).tag(tag, f.manifests[i % 2]!.digest),
      ),
    );
    await Promise.all(both.map((r) => r.search.settled()));

    const doc = await storedDocument(new FilesystemDriver(root), f.repo);
    expect(Object.keys(doc.tags).sort()).toEqual([...f.tags].sort());
    expect(doc.tags[f.tags[1]!]).toBe(f.manifests[1]!.digest.value);
    expect(await indexViolations(new FilesystemDriver(root), f)).toEqual([]);
    expect(parseDigest(doc.tags[f.tags[0]!]!).value).toBe(f.manifests[0]!.digest.value);
  });
});
