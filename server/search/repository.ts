import { parseManifest } from '../registry/manifest-parse.js';
import type { Digest } from '../registry/reference.js';
import type { DeleteOptions, PutResult, Repository, TagOptions } from '../registry/repository.js';
import { imageText, type ImageText } from './document.js';
import type { IndexChange, SearchIndex } from './index.js';

/**
 * indexingRepository decorates a repository so that the search index follows each change it
 * makes (ADR 0023): a manifest put, a tag, an untag and a manifest delete update the
 * repository's search document after the operation succeeded; a refused or failed operation
 * updates nothing. An update that fails after its write marks the repository for repair
 * (SearchIndex.follow) rather than failing a write that was stored. Everything else is delegated to `repo` unchanged.
 */
export function indexingRepository(repo: Repository, index: SearchIndex): Repository {
  const decorated = Object.create(repo) as Repository;
  // A put with tags is followed by their tag calls (the manifest handler, import): the
  // first of them indexes the manifest with its tag, one document round for the push, not
  // two. Its parsed text waits here, on this per-request repository object.
  let untagged: { digest: Digest; text: ImageText } | undefined;
  Object.assign(decorated, {
    async put(
      body: Buffer,
      contentType: string | undefined,
      expected?: Digest,
      tags?: readonly string[],
    ): Promise<PutResult> {
      const result = await repo.put(body, contentType, expected, tags);
      const text = imageText(parseManifest(body, contentType).annotations);
      if (tags !== undefined && tags.length > 0) {
        untagged = { digest: result.digest, text };
        return result;
      }
      await index.follow(repo, putChange(result.digest, text));
      return result;
    },
    async tag(tag: string, digest: Digest, opts?: TagOptions): Promise<void> {
      const put = untagged?.digest.value === digest.value ? untagged : undefined;
      if (put) untagged = undefined;
      const manifest: IndexChange = put ? putChange(put.digest, put.text) : {};
      try {
        await repo.tag(tag, digest, opts);
      } catch (err) {
        if (put) await index.follow(repo, manifest);
        throw err;
      }
      await index.follow(repo, { ...manifest, tags: [tag] });
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

/**
 * putChange is what a manifest put changes: the manifest, with the text already parsed. It
 * reads no tag that points at it (a put moves none; each tag it sets is its own change).
 */
function putChange(digest: Digest, text: ImageText): IndexChange {
  return { digests: [digest], known: new Map([[digest.value, text]]), tagsOfDigests: false };
}
