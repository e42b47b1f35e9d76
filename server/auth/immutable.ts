import { Errors } from '../errors.js';
import type { Digest } from '../registry/reference.js';
import type { DeleteOptions, PutResult, Repository, TagOptions } from '../registry/repository.js';
import type { AccessPolicy } from './policy.js';

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
    delete(digest: Digest, opts?: DeleteOptions): Promise<void> {
      // Fenced against a concurrent push reserving an immutable tag (ADR 0016).
      return repo.delete(digest, {
        ...opts,
        protect: (tag) =>
          immutable(tag)
            ? denied(tag, `manifest is tagged by immutable tag ${tag}`)
            : opts?.protect?.(tag),
      });
    },
  });
  return decorated;
}
