import type { Readable } from 'node:stream';
import type { BlobDescriptor, BlobStore } from '../registry/blobs.js';
import { parseManifest } from '../registry/manifest-parse.js';
import type { Digest } from '../registry/reference.js';
import type {
  DeleteOptions,
  PutResult,
  Repository,
  StoredManifest,
  TagOptions,
} from '../registry/repository.js';
import type { Emitter } from './emitter.js';
import type { Event, Target } from './event.js';

const BLOB_MEDIA_TYPE = 'application/octet-stream';

/**
 * eventingRepository decorates a repository so that every change it makes, and every pull it
 * serves, becomes an event (see {@link Emitter} for where each is recorded). The result
 * delegates everything to `repo` and adds only the emission, after the operation succeeded.
 *
 * Events: manifest put → push; tag → push with `tag` (the first tag of a manifest put in
 * the same request is folded into its push event, as distribution sends it); manifest
 * delete → delete (digest); untag → delete (tag); blob link (upload commit) → push; mount →
 * mount (`fromRepository`); blob delete → delete; manifest GET and whole-blob GET → pull.
 */
export function eventingRepository(repo: Repository, em: Emitter): Repository {
  const name = repo.name;
  const targets = new Targets(name, em);
  const decorated = Object.create(repo) as Repository;
  Object.defineProperty(decorated, 'blobs', {
    value: eventingBlobs(repo.blobs, em, targets),
    enumerable: true,
  });
  Object.assign(decorated, pushing(repo, em, targets), pulling(repo, em, targets), {
    async untag(tag: string, expected?: Digest): Promise<void> {
      await repo.untag(tag, expected);
      await em.emit(em.make('delete', { repository: name, tag }));
    },
    async delete(digest: Digest, opts?: DeleteOptions): Promise<void> {
      await repo.delete(digest, opts);
      await em.emit(em.make('delete', { digest: digest.value, repository: name }));
    },
  });
  return decorated;
}

/**
 * pushing decorates `put` and `tag`: a put is a push, and so is a tag, except that the first
 * tag of a manifest put through the same decorator is folded into the put's push event.
 */
function pushing(repo: Repository, em: Emitter, targets: Targets): Pick<Repository, 'put' | 'tag'> {
  const pushed = new Map<string, { event: Event; tagged: boolean }>();
  return {
    async put(
      body: Buffer,
      contentType: string | undefined,
      expected?: Digest,
      tags?: readonly string[],
    ): Promise<PutResult> {
      const result = await repo.put(body, contentType, expected, tags);
      const event = manifestPushEvent(em, targets, body, contentType, result.digest);
      pushed.set(result.digest.value, { event, tagged: false });
      await em.emit(event);
      return result;
    },
    async tag(tag: string, digest: Digest, opts?: TagOptions): Promise<void> {
      await repo.tag(tag, digest, opts);
      const p = pushed.get(digest.value);
      if (p && !p.tagged) {
        p.tagged = true;
        p.event.target.tag = tag;
        return;
      }
      const target = p
        ? { ...p.event.target, references: undefined }
        : targets.manifest(digest.value, await repo.get(digest));
      delete target.references;
      await em.emit(em.make('push', { ...target, tag }));
    },
  };
}

/**
 * pulling decorates `resolve` and `get`: a manifest GET is a pull, with the tag it was
 * resolved from through the same decorator, if any.
 */
function pulling(
  repo: Repository,
  em: Emitter,
  targets: Targets,
): Pick<Repository, 'resolve' | 'get'> {
  const resolved = new Map<string, string>();
  return {
    async resolve(tag: string): Promise<Digest> {
      const d = await repo.resolve(tag);
      resolved.set(d.value, tag);
      return d;
    },
    async get(digest: Digest): Promise<StoredManifest> {
      const m = await repo.get(digest);
      if (em.isGet()) {
        const target = targets.manifest(m.digest.value, m);
        const tag = resolved.get(m.digest.value);
        if (tag !== undefined) target.tag = tag;
        void em.emit(em.make('pull', target));
      }
      return m;
    },
  };
}

/** Targets builds the event targets of one repository's blobs and manifests. */
class Targets {
  constructor(
    readonly repository: string,
    private readonly em: Emitter,
  ) {}

  blob(desc: BlobDescriptor, digest: string): Target {
    const t: Target = {
      mediaType: BLOB_MEDIA_TYPE,
      digest,
      size: desc.size,
      length: desc.size,
      repository: this.repository,
    };
    const url = this.em.url(this.repository, 'blobs', digest);
    if (url !== undefined) t.url = url;
    return t;
  }

  manifest(digest: string, m: { mediaType: string; body: Buffer }): Target {
    const t: Target = {
      mediaType: m.mediaType,
      digest,
      size: m.body.length,
      length: m.body.length,
      repository: this.repository,
    };
    const url = this.em.url(this.repository, 'manifests', digest);
    if (url !== undefined) t.url = url;
    return t;
  }
}

/** manifestPushEvent is the push event of a manifest put, with its references if asked for. */
function manifestPushEvent(
  em: Emitter,
  targets: Targets,
  body: Buffer,
  contentType: string | undefined,
  digest: Digest,
): Event {
  const parsed = parseManifest(body, contentType);
  const target = targets.manifest(digest.value, { mediaType: parsed.mediaType, body });
  if (em.includeReferences) {
    target.references = [...parsed.blobs, ...parsed.manifests].map((d) => ({
      mediaType: d.mediaType,
      digest: d.digest,
      size: d.size,
    }));
  }
  return em.make('push', target);
}

/** eventingBlobs decorates a repository's blob store: pulls of whole blobs, links, mounts and deletes become events. */
function eventingBlobs(inner: BlobStore, em: Emitter, targets: Targets): BlobStore {
  const blobPull = (desc: BlobDescriptor): Event =>
    em.make('pull', targets.blob(desc, desc.digest));
  return {
    stat: (d) => inner.stat(d),
    async open(desc: BlobDescriptor, offset = 0, length = desc.size - offset): Promise<Readable> {
      const stream = await inner.open(desc, offset, length);
      if (em.isGet() && offset === 0 && length === desc.size) void em.emit(blobPull(desc));
      return stream;
    },
    async source(desc: BlobDescriptor, offset = 0, length = desc.size - offset) {
      const src = await inner.source(desc, offset, length);
      if (src && em.isGet() && offset === 0 && length === desc.size) void em.emit(blobPull(desc));
      return src;
    },
    async redirectURL(desc) {
      const url = await inner.redirectURL(desc);
      if (url !== undefined && em.isGet()) void em.emit(blobPull(desc));
      return url;
    },
    async delete(d) {
      await inner.delete(d);
      await em.emit(
        em.make('delete', {
          mediaType: BLOB_MEDIA_TYPE,
          digest: d.value,
          repository: targets.repository,
        }),
      );
    },
    async link(desc, d, opts) {
      await inner.link(desc, d, opts);
      if (!opts?.again) await em.emit(em.make('push', targets.blob(desc, d.value)));
    },
    async mount(d, from) {
      const desc = await inner.mount(d, from);
      if (desc) {
        const target = targets.blob(desc, d.value);
        if (from !== undefined) target.fromRepository = from;
        await em.emit(em.make('mount', target));
      }
      return desc;
    },
  };
}
