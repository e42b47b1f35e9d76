import { decodeDescriptor } from '../registry/blobs.js';
import { parseDigest } from '../registry/reference.js';
import type { StorageDriver } from '../storage/driver.js';
import { Paths } from '../storage/paths.js';
import { readAges, readRepository, RefCache } from './snapshot.js';

/**
 * RepositoryUsage is the storage one repository uses: its tags, manifests and the blobs it
 * links, with their bytes. A blob shared with another repository is stored once but counted
 * in each repository that links it, so the sum over repositories can exceed the store.
 */
export interface RepositoryUsage {
  repository: string;
  tags: number;
  manifests: number;
  /** manifestBytes are the stored manifests' bytes. */
  manifestBytes: number;
  blobs: number;
  /** blobBytes are the bytes of every blob the repository links (config, layers, …). */
  blobBytes: number;
  /** bytes is manifestBytes + blobBytes. */
  bytes: number;
}

const CONCURRENCY = 16;

/** repositoryUsage reads one repository's tags, manifests and links and adds up their bytes. */
export async function repositoryUsage(
  driver: StorageDriver,
  name: string,
): Promise<RepositoryUsage> {
  const repo = await readRepository(driver, name, new RefCache(), CONCURRENCY);
  let blobBytes = 0;
  for (const link of repo.links.values()) {
    try {
      blobBytes += decodeDescriptor(Buffer.from(link.data, 'utf8')).size;
    } catch {
      // An unreadable link counts as a blob of unknown size (gc reports it, not this).
    }
  }
  const keys = [...repo.manifests.keys()].map((d) => Paths.manifest(name, parseDigest(d)));
  const ages = await readAges(driver, keys, CONCURRENCY);
  let manifestBytes = 0;
  for (const a of ages.values()) manifestBytes += a.size;
  return {
    repository: name,
    tags: repo.tags.size,
    manifests: repo.manifests.size,
    manifestBytes,
    blobs: repo.links.size,
    blobBytes,
    bytes: manifestBytes + blobBytes,
  };
}
