import type { StoredManifest } from '../registry/repository.js';
import type { StorageDriver } from '../storage/driver.js';
import { Paths } from '../storage/paths.js';
import type { Logger } from '../util/log.js';
import type { RestoredItem } from './report.js';
import type { RetentionTarget } from './retention.js';
import { refsOfBody, type ManifestRefs, type RepoSnapshot } from './snapshot.js';
import type { UndoEntry } from './state.js';

/** DeletedManifests are the manifests retention deleted in a run, by repository and digest. */
export type DeletedManifests = Map<string, Map<string, StoredManifest>>;

/** Needed is what one repository needs back of a run's deletions. */
export interface Needed {
  /** links are the undo copies of deleted links a manifest now names. */
  links: UndoEntry[];
  /** manifests are deleted manifests an index now names, children before their index. */
  manifests: StoredManifest[];
}

/**
 * neededBy finds, purely, what `repo` as read now needs back: a deleted link whose blob a
 * manifest names (a push that checked the link just before it went) and a deleted manifest
 * an index names, with what that manifest names in turn. A link the repository has again is
 * not needed.
 */
export function neededBy(
  repo: RepoSnapshot,
  undo: readonly UndoEntry[],
  deleted: ReadonlyMap<string, StoredManifest> = new Map(),
): Needed {
  const blobs = new Set<string>();
  const manifests: StoredManifest[] = [];
  const visit = (refs: ManifestRefs | undefined) => {
    for (const b of refs?.blobs ?? []) blobs.add(b);
    for (const c of refs?.children ?? []) {
      const m = deleted.get(c);
      if (m && !repo.manifests.has(c) && !manifests.includes(m)) {
        manifests.push(m);
        visit(refsOfBody(m.body));
      }
    }
  };
  for (const refs of repo.manifests.values()) visit(refs);
  return {
    links: undo.filter(
      (u) => u.repo === repo.name && blobs.has(u.digest) && !repo.links.has(u.digest),
    ),
    // Children first: an index is accepted only once its children exist.
    manifests: manifests.reverse(),
  };
}

/** RestoreTarget is where a restore writes: links to storage, manifests through the registry. */
export interface RestoreTarget {
  driver: Pick<StorageDriver, 'put'>;
  registry: RetentionTarget;
  log: Logger;
}

/**
 * restoreNeeded puts back, repository by repository, what `neededBy` finds: links first,
 * then manifests through the registry (a manifest it cannot put back is logged and left).
 * Each restoration is told to `restored` once it is written.
 */
export async function restoreNeeded(
  repos: readonly RepoSnapshot[],
  undo: readonly UndoEntry[],
  deleted: DeletedManifests,
  target: RestoreTarget,
  restored: (item: RestoredItem) => void,
): Promise<void> {
  for (const repo of repos) {
    const need = neededBy(repo, undo, deleted.get(repo.name));
    for (const u of need.links) {
      await target.driver.put(u.key, u.data);
      restored({
        kind: 'link',
        key: u.key,
        bytes: u.data.length,
        repo: repo.name,
        digest: u.digest,
        reason: 'needed',
      });
    }
    for (const m of need.manifests) {
      try {
        await target.registry.repository(repo.name).put(m.body, m.mediaType);
        restored({
          kind: 'manifest',
          key: Paths.manifest(repo.name, m.digest),
          bytes: m.body.length,
          repo: repo.name,
          digest: m.digest.value,
          reason: 'needed',
        });
      } catch (err) {
        target.log.error(
          { repo: repo.name, digest: m.digest.value, err },
          'gc could not restore a manifest',
        );
      }
    }
  }
}
