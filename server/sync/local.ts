import type { Readable } from 'node:stream';
import type { Destination } from '../copy/transport.js';
import type { Descriptor, Manifest } from '../copy/spec.js';
import { parseDigest, type Digest } from '../registry/reference.js';
import type { Repository } from '../registry/repository.js';
import type { Uploads } from '../registry/uploads.js';

/** LocalRepository is what a sync writes through: a repository as a push sees it. */
export type LocalRepository = Pick<
  Repository,
  'name' | 'blobs' | 'has' | 'put' | 'tag' | 'resolve'
>;

/** LocalWrites counts what a LocalDestination wrote and what it found already there. */
export interface LocalWrites {
  manifestsCopied: number;
  manifestsSkipped: number;
}

const hasCode = (err: unknown, code: string): boolean =>
  (err as { code?: unknown } | null)?.code === code;

/**
 * resolveLocal is the digest a tag names in `repo`, or undefined when it names none. It reads
 * storage only (the repository must not be the pull-through view, which would ask upstream).
 */
export async function resolveLocal(
  repo: LocalRepository,
  tag: string,
): Promise<Digest | undefined> {
  try {
    return await repo.resolve(tag);
  } catch (err) {
    if (hasCode(err, 'MANIFEST_UNKNOWN')) return undefined;
    throw err;
  }
}

/**
 * LocalDestination is a copy destination that is this registry's own repository, written
 * through the domain as a push is (so the decorators record events, index the repository for
 * search and keep the tag indexes). Blobs go in as one-shot uploads (digest and size verified,
 * bytes written once); a blob already stored anywhere in the registry is linked, never copied
 * again; a manifest already stored is not written; the tag, if any, is written last and only
 * when it moves. `tag` undefined: the copy names nothing (a referrer).
 */
export class LocalDestination implements Destination {
  readonly writes: LocalWrites = { manifestsCopied: 0, manifestsSkipped: 0 };

  constructor(
    private readonly repo: LocalRepository,
    private readonly uploads: Pick<Uploads, 'oneShot' | 'complete'>,
    private readonly tag: string | undefined,
  ) {}

  get describe(): string {
    return this.tag === undefined ? this.repo.name : `${this.repo.name}:${this.tag}`;
  }

  async hasBlob(d: Descriptor): Promise<boolean> {
    const digest = parseDigest(d.digest);
    try {
      await this.repo.blobs.stat(digest);
      return true;
    } catch (err) {
      if (!hasCode(err, 'BLOB_UNKNOWN')) throw err;
    }
    return (await this.repo.blobs.mount(digest)) !== undefined;
  }

  async putBlob(d: Descriptor, body: Readable): Promise<void> {
    const digest = parseDigest(d.digest);
    const session = this.uploads.oneShot(this.repo.name, digest.algorithm);
    await this.uploads.complete(session, digest, this.repo.blobs, {
      body,
      contentLength: d.size,
    });
  }

  async putManifest(m: Manifest): Promise<void> {
    const digest = parseDigest(m.digest);
    if (await this.repo.has(digest)) {
      this.writes.manifestsSkipped++;
      return;
    }
    await this.repo.put(m.body, m.mediaType, digest);
    this.writes.manifestsCopied++;
  }

  async finish(root: Manifest): Promise<void> {
    if (this.tag === undefined) return;
    const digest = parseDigest(root.digest);
    const now = await resolveLocal(this.repo, this.tag);
    if (now?.value !== digest.value) await this.repo.tag(this.tag, digest);
  }
}
