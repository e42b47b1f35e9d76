import { parseDigest, type Digest } from '../registry/reference.js';
import type { Registry } from '../registry/repository.js';
import { listAll, type StorageDriver } from '../storage/driver.js';
import { Paths } from '../storage/paths.js';
import type { SearchIndex } from './index.js';

/** CHUNK is how many tags or manifests one document update names. */
const CHUNK = 100;
const ALGORITHMS = ['sha256', 'sha512'] as const;

/** ReindexReport counts what a reindex looked at. */
export interface ReindexReport {
  repositories: number;
  tags: number;
  manifests: number;
}

/**
 * reindex rebuilds the search document of every repository in the catalog from what is
 * stored (ADR 0023): its tags, its manifests, and what its document named before, each read
 * again by {@link SearchIndex.update} as after any write, so it is safe beside serving
 * replicas and may be run again. It lists each repository's tags and manifests: an explicit
 * admin command, not a request path.
 */
export async function reindex(
  driver: StorageDriver,
  registry: Registry,
  index: SearchIndex,
): Promise<ReindexReport> {
  const report: ReindexReport = { repositories: 0, tags: 0, manifests: 0 };
  for (const entry of await listAll(driver, Paths.catalogRoot())) {
    const counted = await reindexRepository(driver, registry, index, Paths.catalogName(entry));
    report.repositories++;
    report.tags += counted.tags;
    report.manifests += counted.manifests;
  }
  return report;
}

/**
 * reindexRepository rebuilds one repository's search document: every tag and manifest it
 * stores, and every one its document named before (gone ones drop out).
 */
export async function reindexRepository(
  driver: StorageDriver,
  registry: Registry,
  index: SearchIndex,
  name: string,
): Promise<{ tags: number; manifests: number }> {
  const before = await index.document(name);
  const tags = new Set([
    ...(await listAll(driver, Paths.tagsRoot(name))),
    ...Object.keys(before.tags),
  ]);
  const digests = new Map<string, Digest>();
  for (const alg of ALGORITHMS) {
    for (const hex of await listAll(driver, Paths.manifestsRoot(name, alg))) {
      const d = parseDigest(`${alg}:${hex}`);
      digests.set(d.value, d);
    }
  }
  for (const d of Object.keys(before.manifests)) digests.set(d, parseDigest(d));
  const repo = registry.repository(name);
  const tagList = [...tags];
  const digestList = [...digests.values()];
  for (let i = 0; i < Math.max(tagList.length, digestList.length, 1); i += CHUNK) {
    await index.update(repo, {
      tags: tagList.slice(i, i + CHUNK),
      digests: digestList.slice(i, i + CHUNK),
    });
  }
  return { tags: tagList.length, manifests: digestList.length };
}

/**
 * repairStale rebuilds the document of every repository marked after a missed update
 * (SearchIndex.follow), or marked pending by a process that has not written its mark for
 * a while (it died with queued updates, or one failed), and clears each mark that was not
 * set again meanwhile. A repository whose rebuild fails stays marked for the next pass.
 * Resolves with the repositories rebuilt. Safe on every replica at once: rebuilds are
 * compare-and-set like any update.
 */
export async function repairStale(
  driver: StorageDriver,
  registry: Registry,
  index: SearchIndex,
): Promise<number> {
  let repaired = 0;
  for (const mark of await index.staleMarks()) {
    await reindexRepository(driver, registry, index, mark.repository);
    if (await index.clearStale(mark)) repaired++;
  }
  for (const mark of await index.orphanedPending()) {
    await reindexRepository(driver, registry, index, mark.repository);
    if (await index.clearPending(mark)) repaired++;
  }
  return repaired;
}
