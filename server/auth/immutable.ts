import { Errors } from '../errors.js';
import type { Digest } from '../registry/reference.js';
import type { PutResult, Repository, TagOptions, TagService } from '../registry/repository.js';
import type { AccessPolicy } from './policy.js';

const SCAN_PAGE = 1000;

function denied(tag: string, message: string) {
  return Errors.denied({ tag, reason: 'immutable tag' }, undefined, message);
}

/**
 * immutableTagsRepository decorates a repository with the immutable-tag policy, so that
 * every write path passes it before anything is written (decorators outside it, events
 * above all, see a refused call fail and record nothing):
 *
 * - a manifest put naming immutable tags reserves each of them with one compare-and-set
 *   (only if absent or already on this manifest) before the manifest is stored; of
 *   concurrent pushes to one immutable tag exactly one wins, the others get 403 DENIED and
 *   leave nothing behind (a reservation is taken back if the manifest write fails);
 * - `tag` of an immutable tag only creates it (DENIED if it names another manifest);
 * - `untag` of an immutable tag, and `delete` of a manifest an immutable tag names, are
 *   DENIED. Re-pushing the same digest is allowed, so retries stay idempotent.
 */
export function immutableTagsRepository(repo: Repository, policy: AccessPolicy): Repository {
  const name = repo.name;
  if (!policy.hasImmutableTags(name)) return repo;
  const immutable = (tag: string) => policy.immutableTag(name, tag);
  const decorated = Object.create(repo) as Repository;
  Object.assign(decorated, {
    async put(
      body: Buffer,
      contentType: string | undefined,
      expected?: Digest,
      tags: readonly string[] = [],
    ): Promise<PutResult> {
      const locked = [...new Set(tags)].filter(immutable);
      if (locked.length === 0) return repo.put(body, contentType, expected, tags);
      const { digest } = await repo.validate(body, contentType, expected);
      const reserved: string[] = [];
      try {
        for (const tag of locked) if (await repo.reserveTag(tag, digest)) reserved.push(tag);
        return await repo.put(body, contentType, expected, tags);
      } catch (err) {
        for (const tag of reserved) await repo.untag(tag, digest).catch(() => undefined);
        throw err;
      }
    },
    tag(tag: string, digest: Digest, opts?: TagOptions): Promise<void> {
      return repo.tag(tag, digest, immutable(tag) ? { ...opts, onlyIfAbsent: true } : opts);
    },
    async untag(tag: string, expected?: Digest): Promise<void> {
      if (immutable(tag)) throw denied(tag, `tag ${tag} is immutable`);
      return repo.untag(tag, expected);
    },
    async delete(digest: Digest): Promise<void> {
      await guardDelete(policy, name, repo, digest);
      return repo.delete(digest);
    },
  });
  return decorated;
}

/**
 * guardDelete refuses to delete a manifest an immutable tag points to (deleting it would
 * drop the tag too).
 */
async function guardDelete(
  policy: AccessPolicy,
  repoName: string,
  repo: Pick<TagService, 'resolve' | 'list'>,
  digest: Digest,
): Promise<void> {
  let last: string | undefined;
  for (;;) {
    const page = await repo.list(last, SCAN_PAGE);
    for (const tag of page.items) {
      if (!policy.immutableTag(repoName, tag)) continue;
      const d = await repo.resolve(tag).catch(() => undefined);
      if (d?.value === digest.value)
        throw denied(tag, `manifest is tagged by immutable tag ${tag}`);
    }
    if (page.next === undefined) return;
    last = page.next;
  }
}
