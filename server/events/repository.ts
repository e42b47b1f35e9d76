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
  const resolved = new Map<string, string>();
  const pushed = new Map<string, { event: Event; tagged: boolean }>();
  const manifestUrl = (d: string) => em.url(name, 'manifests', d);
  const blobUrl = (d: string) => em.url(name, 'blobs', d);

  const blobs: BlobStore = {
    stat: (d) => repo.blobs.stat(d),
    async open(desc: BlobDescriptor, offset = 0, length = desc.size - offset): Promise<Readable> {
      const stream = await repo.blobs.open(desc, offset, length);
      if (em.isGet() && offset === 0 && length === desc.size) void em.emit(blobPull(desc));
      return stream;
    },
    async source(desc: BlobDescriptor, offset = 0, length = desc.size - offset) {
      const src = await repo.blobs.source(desc, offset, length);
      if (src && em.isGet() && offset === 0 && length === desc.size) void em.emit(blobPull(desc));
      return src;
    },
    async redirectURL(desc) {
      const url = await repo.blobs.redirectURL(desc);
      if (url !== undefined && em.isGet()) void em.emit(blobPull(desc));
      return url;
    },
    async delete(d) {
      await repo.blobs.delete(d);
      await em.emit(
        em.make('delete', { mediaType: BLOB_MEDIA_TYPE, digest: d.value, repository: name }),
      );
    },
    async link(desc, d, opts) {
      await repo.blobs.link(desc, d, opts);
      if (!opts?.again) await em.emit(em.make('push', blobTarget(desc, d.value)));
    },
    async mount(d, from) {
      const desc = await repo.blobs.mount(d, from);
      if (desc) {
        const target = blobTarget(desc, d.value);
        if (from !== undefined) target.fromRepository = from;
        await em.emit(em.make('mount', target));
      }
      return desc;
    },
  };

  function blobTarget(desc: BlobDescriptor, digest: string): Target {
    const t: Target = {
      mediaType: BLOB_MEDIA_TYPE,
      digest,
      size: desc.size,
      length: desc.size,
      repository: name,
    };
    const url = blobUrl(digest);
    if (url !== undefined) t.url = url;
    return t;
  }

  function blobPull(desc: BlobDescriptor): Event {
    return em.make('pull', blobTarget(desc, desc.digest));
  }

  function manifestTarget(m: { digest: string; mediaType: string; size: number }): Target {
    const t: Target = {
      mediaType: m.mediaType,
      digest: m.digest,
      size: m.size,
      length: m.size,
      repository: name,
    };
    const url = manifestUrl(m.digest);
    if (url !== undefined) t.url = url;
    return t;
  }

  const decorated = Object.create(repo) as Repository;
  Object.defineProperty(decorated, 'blobs', { value: blobs, enumerable: true });
  Object.assign(decorated, {
    async put(
      body: Buffer,
      contentType: string | undefined,
      expected?: Digest,
      tags?: readonly string[],
    ): Promise<PutResult> {
      const result = await repo.put(body, contentType, expected, tags);
      const parsed = parseManifest(body, contentType);
      const target = manifestTarget({
        digest: result.digest.value,
        mediaType: parsed.mediaType,
        size: body.length,
      });
      if (em.includeReferences) {
        target.references = [...parsed.blobs, ...parsed.manifests].map((d) => ({
          mediaType: d.mediaType,
          digest: d.digest,
          size: d.size,
        }));
      }
      const event = em.make('push', target);
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
      const m = p ? undefined : await repo.get(digest);
      const target = p
        ? { ...p.event.target, references: undefined }
        : manifestTarget({ digest: digest.value, mediaType: m!.mediaType, size: m!.body.length });
      delete target.references;
      await em.emit(em.make('push', { ...target, tag }));
    },
    async untag(tag: string, expected?: Digest): Promise<void> {
      await repo.untag(tag, expected);
      await em.emit(em.make('delete', { repository: name, tag }));
    },
    async delete(digest: Digest, opts?: DeleteOptions): Promise<void> {
      await repo.delete(digest, opts);
      await em.emit(em.make('delete', { digest: digest.value, repository: name }));
    },
    async resolve(tag: string): Promise<Digest> {
      const d = await repo.resolve(tag);
      resolved.set(d.value, tag);
      return d;
    },
    async get(digest: Digest): Promise<StoredManifest> {
      const m = await repo.get(digest);
      if (em.isGet()) {
        const target = manifestTarget({
          digest: m.digest.value,
          mediaType: m.mediaType,
          size: m.body.length,
        });
        const tag = resolved.get(m.digest.value);
        if (tag !== undefined) target.tag = tag;
        void em.emit(em.make('pull', target));
      }
      return m;
    },
  });
  return decorated;
}
