import { Errors } from '../errors.js';
import type { Digest } from '../registry/reference.js';
import type { TagService } from '../registry/repository.js';
import type { AccessPolicy } from './policy.js';

const SCAN_PAGE = 1000;

/**
 * guardTagWrites refuses (403 DENIED) to move an immutable tag that already points elsewhere.
 * Re-pushing the same digest is allowed, so retries stay idempotent.
 */
export async function guardTagWrites(
  policy: AccessPolicy,
  repoName: string,
  repo: Pick<TagService, 'resolve'>,
  tags: Iterable<string>,
  digest: Digest,
): Promise<void> {
  for (const tag of tags) {
    if (!policy.immutableTag(repoName, tag)) continue;
    const current = await repo.resolve(tag).catch(() => undefined);
    if (current !== undefined && current.value !== digest.value)
      throw Errors.denied({ tag, reason: 'immutable tag' }, undefined, `tag ${tag} is immutable`);
  }
}

/**
 * guardDelete refuses to delete an immutable tag, or a manifest an immutable tag points to
 * (deleting it would drop the tag too).
 */
export async function guardDelete(
  policy: AccessPolicy,
  repoName: string,
  repo: Pick<TagService, 'resolve' | 'list'>,
  ref: { kind: 'tag'; tag: string } | { kind: 'digest'; digest: Digest },
): Promise<void> {
  if (ref.kind === 'tag') {
    if (policy.immutableTag(repoName, ref.tag))
      throw Errors.denied(
        { tag: ref.tag, reason: 'immutable tag' },
        undefined,
        `tag ${ref.tag} is immutable`,
      );
    return;
  }
  if (!policy.hasImmutableTags(repoName)) return;
  let last: string | undefined;
  for (;;) {
    const page = await repo.list(last, SCAN_PAGE);
    for (const tag of page.items) {
      if (!policy.immutableTag(repoName, tag)) continue;
      const d = await repo.resolve(tag).catch(() => undefined);
      if (d?.value === ref.digest.value)
        throw Errors.denied(
          { tag, reason: 'immutable tag' },
          undefined,
          `manifest is tagged by immutable tag ${tag}`,
        );
    }
    if (page.next === undefined) return;
    last = page.next;
  }
}
