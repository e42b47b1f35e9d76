import { Registry } from '../../server/registry/repository.js';
import { SearchIndex } from '../../server/search/index.js';
import { indexingRepository } from '../../server/search/repository.js';
import { listAll, type StorageDriver } from '../../server/storage/driver.js';
import { Paths } from '../../server/storage/paths.js';
import { directViews } from '../../server/storage/views.js';
import type { Fixture } from './tag-race.js';

/** indexed is a sparse registry whose repositories keep `search`, as createServices wires it. */
export function indexed(driver: StorageDriver): { registry: Registry; search: SearchIndex } {
  const search = new SearchIndex(directViews(driver), { ttlMillis: 0 });
  const registry = new Registry(directViews(driver), {
    allowSparse: true,
    pause: () => Promise.resolve(),
    decorate: (repo) => indexingRepository(repo, search),
  });
  return { registry, search };
}

/** storedDocument reads a repository's search document as stored. */
export async function storedDocument(
  driver: StorageDriver,
  repo: string,
): Promise<{ tags: Record<string, string>; manifests: Record<string, unknown> }> {
  return JSON.parse((await driver.get(Paths.searchDoc(repo))).toString('utf8')) as {
    tags: Record<string, string>;
    manifests: Record<string, unknown>;
  };
}

const sorted = (o: Record<string, string>) => JSON.stringify(o, Object.keys(o).sort());

/**
 * indexViolations lists where a race's repository's search document disagrees with the tags
 * and manifests stored.
 */
export async function indexViolations(driver: StorageDriver, f: Fixture): Promise<string[]> {
  const doc = await storedDocument(driver, f.repo);
  const tags: Record<string, string> = {};
  for (const tag of await listAll(driver, Paths.tagsRoot(f.repo))) {
    const v = (await driver.get(Paths.tag(f.repo, tag)).catch(() => Buffer.from(''))).toString();
    if (v !== '') tags[tag] = v;
  }
  const out: string[] = [];
  if (sorted(doc.tags) !== sorted(tags))
    out.push(`tags ${sorted(doc.tags)} ≠ stored ${sorted(tags)}`);
  for (const m of f.manifests) {
    const exists = await driver.stat(Paths.manifest(f.repo, m.digest)).then(
      () => true,
      () => false,
    );
    if (exists !== m.digest.value in doc.manifests)
      out.push(`manifest ${m.digest.value}: stored ${exists}, indexed ${!exists}`);
  }
  return out;
}
