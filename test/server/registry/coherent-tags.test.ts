import { describe, expect, it } from 'vitest';
import { parseDigest, type Digest } from '../../../server/registry/reference.js';
import { Registry } from '../../../server/registry/repository.js';
import { CachingDriver } from '../../../server/storage/cache.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { Paths } from '../../../server/storage/paths.js';
import { cachedViews } from '../../../server/storage/views.js';
import { sha256 } from '../../support/image.js';

/**
 * cluster is replicas on one storage that keep tags for one never-ending period, told of each
 * other's tag changes in process (what `Coherence` does over HTTP, ADR 0025): it tests what
 * the registry announces, not the transport.
 */
function cluster(n: number) {
  const shared = new InMemoryDriver();
  const caches: CachingDriver[] = [];
  const told: string[] = [];
  const replicas = Array.from({ length: n }, (_, i) => {
    const cache = new CachingDriver(shared, {
      immutable: Paths.immutable,
      ttlMs: 3_600_000,
      mutable: Paths.isTag,
      mutableTtlMs: 0,
      alone: () => 1,
      announce: (key) => {
        told.push(key);
        caches.forEach((c, j) => j !== i && c.invalidate(key));
        return Promise.resolve();
      },
      announced: (key) => Paths.isTag(key) || Paths.isCatalogEntry(key),
      listable: Paths.listCached,
      // Tag lists are kept for the period, never expired: only announcements refresh them.
      listTtlMs: 3_600_000,
      listKept: (prefix) => prefix === Paths.catalogRoot() || Paths.isTagsRoot(prefix),
      maxBytes: 1 << 20,
    });
    caches.push(cache);
    return new Registry(cachedViews(cache), { allowSparse: true });
  });
  return { shared, replicas, told };
}

async function pushManifest(r: Registry, repo: string, n: number): Promise<Digest> {
  const body = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: sha256(`c${n}`),
        size: 2,
      },
      layers: [],
    }),
  );
  const { digest } = await r
    .repository(repo)
    .put(body, 'application/vnd.oci.image.manifest.v1+json');
  return digest;
}

describe('tags kept on every replica (ADR 0025)', () => {
  it('GIVEN two replicas that keep the catalog WHEN a repository is first pushed through one THEN the other lists it at once', async () => {
    const {
      replicas: [a, b],
    } = cluster(2);
    await pushManifest(a!, 'app', 1);
    expect((await b!.catalog(undefined, 100)).items).toEqual(['app']);
    await pushManifest(a!, 'team/web', 2);
    expect((await b!.catalog(undefined, 100)).items).toEqual(['app', 'team/web']);
  });

  it('GIVEN two replicas that keep the tag list of a repository WHEN one adds, deletes and re-adds tags and deletes the manifest they point at THEN the other lists each change at once', async () => {
    const {
      replicas: [a, b],
    } = cluster(2);
    const d1 = await pushManifest(a!, 'app', 1);
    await a!.repository('app').tag('v1', d1);
    const list = async () => (await b!.repository('app').list(undefined, 100)).items;
    expect(await list()).toEqual(['v1']);
    await a!.repository('app').tag('v2', d1);
    expect(await list()).toEqual(['v1', 'v2']);
    await a!.repository('app').untag('v1');
    expect(await list()).toEqual(['v2']);
    await a!.repository('app').tag('v1', d1);
    expect(await list()).toEqual(['v1', 'v2']);
    expect((await b!.repository('app').list(undefined, 1)).items).toEqual(['v1']);
    await a!.repository('app').delete(d1);
    expect(await list()).toEqual([]);
  });

  it('GIVEN two replicas that keep tag v1 WHEN one moves it THEN the other resolves the new digest at once', async () => {
    const {
      replicas: [a, b],
    } = cluster(2);
    const d1 = await pushManifest(a!, 'app', 1);
    const d2 = await pushManifest(a!, 'app', 2);
    await a!.repository('app').tag('v1', d1);
    expect((await b!.repository('app').resolve('v1')).value).toBe(d1.value);
    await a!.repository('app').tag('v1', d2);
    expect((await b!.repository('app').resolve('v1')).value).toBe(d2.value);
  });

  it('GIVEN a tag moved in storage by a writer killed before it told anyone, kept old by B WHEN the push is retried through A (the tag is already there) THEN A tells B before answering (its first compare-and-set, which fails, is announced too)', async () => {
    const {
      shared,
      replicas: [a, b],
      told,
    } = cluster(2);
    const d1 = await pushManifest(a!, 'app', 1);
    const d2 = await pushManifest(a!, 'app', 2);
    await a!.repository('app').tag('v1', d1);
    expect((await b!.repository('app').resolve('v1')).value).toBe(d1.value);
    // The killed writer's compare-and-set landed; its announcement never went out.
    await shared.put(Paths.tag('app', 'v1'), d2.value);
    expect((await b!.repository('app').resolve('v1')).value).toBe(d1.value);
    told.length = 0;
    await a!.repository('app').tag('v1', d2);
    expect(told).toContain(Paths.tag('app', 'v1'));
    expect((await b!.repository('app').resolve('v1')).value).toBe(d2.value);
    expect(parseDigest((await shared.get(Paths.tag('app', 'v1'))).toString()).value).toBe(d2.value);
  });
});
