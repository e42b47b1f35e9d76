import { parseManifest } from '../registry/manifest-parse.js';
import type { Digest } from '../registry/reference.js';
import type { DeleteOptions, PutResult, Repository, TagOptions } from '../registry/repository.js';
import { imageText } from './document.js';
import type { SearchIndex } from './index.js';

/**
 * indexingRepository decorates a repository so that the search index follows each change it
 * makes (ADR 0023): a manifest put, a tag, an untag and a manifest delete update the
 * repository's search document after the operation succeeded; a refused or failed operation
 * updates nothing. An update that fails after its write marks the repository for repair
 * (SearchIndex.follow) rather than failing a write that was stored. Everything else is delegated to `repo` unchanged.
 */
export function indexingRepository(repo: Repository, index: SearchIndex): Repository {
  const decorated = Object.create(repo) as Repository;
  Object.assign(decorated, {
    async put(
      body: Buffer,
      contentType: string | undefined,
      expected?: Digest,
      tags?: readonly string[],
    ): Promise<PutResult> {
      const result = await repo.put(body, contentType, expected, tags);
      const text = imageText(parseManifest(body, contentType).annotations);
      await index.follow(repo, {
        digests: [result.digest],
        known: new Map([[result.digest.value, text]]),
        tagsOfDigests: false,
      });
      return result;
    },
    async tag(tag: string, digest: Digest, opts?: TagOptions): Promise<void> {
      await repo.tag(tag, digest, opts);
      await index.follow(repo, { tags: [tag] });
    },
    async untag(tag: string, expected?: Digest): Promise<void> {
      await repo.untag(tag, expected);
      await index.follow(repo, { tags: [tag] });
    },
    async delete(digest: Digest, opts?: DeleteOptions): Promise<void> {
      await repo.delete(digest, opts);
      await index.follow(repo, { digests: [digest] });
    },
  });
  return decorated;
}
