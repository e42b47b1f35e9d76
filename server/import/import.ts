import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { mediaTypeOf, type ManifestDoc } from '../copy/spec.js';
import { Errors, isRegistryError } from '../errors.js';
import type { BlobDescriptor } from '../registry/blobs.js';
import { parseDigest, type Algorithm, type Digest } from '../registry/reference.js';
import type { Registry } from '../registry/repository.js';
import type { Uploads } from '../registry/uploads.js';
import type { Logger } from '../util/log.js';
import {
  isMetadata,
  planImport,
  type Contents,
  type ImageWrite,
  type ImportPlan,
  type ImportTarget,
  type RepositoryWrite,
} from './plan.js';
import { ArchiveError, readTar, type TarEntry } from './tar-stream.js';

/** ImportDeps are the domain services an import writes through, as a push does. */
export interface ImportDeps {
  registry: Pick<Registry, 'repository'>;
  uploads: Pick<Uploads, 'ingest' | 'indexed'>;
  log: Logger;
}

export interface ImportOptions extends ImportTarget {
  /** maxBytes bounds the request body and the tar inside it (SIZE_INVALID 413 above it). */
  maxBytes: number;
  /** manifestBytes is the largest member read as a manifest or metadata file. */
  manifestBytes: number;
  /** authorize throws (401/403) unless the caller may push to every repository named. */
  authorize(repositories: string[]): void;
  /** immutable: the tag may only be created, never moved (`auth.immutableTags`). */
  immutable(repository: string, tag: string): boolean;
}

/** ImportResult is the JSON summary an import answers. */
export interface ImportResult {
  images: ImageWrite[];
  manifests: number;
  blobsWritten: number;
  blobsSkipped: number;
  bytes: number;
}

/** MANIFEST_BUDGET bounds the manifest bytes one import keeps in memory while it plans. */
const MANIFEST_BUDGET = 64 << 20;
/** SKIPPED are members no import needs (layout marker, legacy per-layer metadata). */
const SKIPPED = new Set(['oci-layout', 'repositories', 'json', 'VERSION']);
const BLOB_PATH = /(?:^|\/)blobs\/(sha256|sha512)\/([0-9a-f]+)$/;

/** Read is what streaming the archive stored and kept. */
interface Read {
  contents: Contents;
  /** blobs are the descriptors of every blob the archive holds, stored or already there. */
  blobs: Map<string, BlobDescriptor>;
  result: ImportResult;
  manifestBytes: number;
}

/**
 * importArchive imports the images of an oci-archive, a docker-archive or a tar of an OCI
 * layout (gzip optional) streamed in `body`. Every blob member is stored once while it
 * streams, through the digest check of an upload (a blob the registry already holds is not
 * written again); then the import is planned (`planImport`), authorized for every target
 * repository and checked (every blob present, no immutable tag moved) before anything is
 * visible; only then are blobs linked, manifests put and tags set through the repositories
 * a push uses (events, search index, metrics). A refused or invalid import leaves no link,
 * manifest, tag or event; blobs it stored stay unreferenced until garbage collection.
 */
export async function importArchive(
  body: AsyncIterable<Buffer>,
  o: ImportOptions,
  deps: ImportDeps,
): Promise<ImportResult> {
  let read: Read;
  let plan: ImportPlan;
  try {
    read = await readArchive(limited(unpacked(limited(body, o.maxBytes)), o.maxBytes), o, deps);
    plan = planImport(read.contents, o);
  } catch (err) {
    throw asRegistryError(err);
  }
  o.authorize([...plan.repositories.keys()].sort());
  const writes = [...plan.repositories.values()];
  await stillStored(read, deps);
  for (const w of writes) await check(w, read, o, deps);
  for (const w of writes) read.result.manifests += await write(w, read, deps);
  read.result.images = plan.images;
  deps.log.info(
    {
      images: plan.images.length,
      manifests: read.result.manifests,
      blobsWritten: read.result.blobsWritten,
      blobsSkipped: read.result.blobsSkipped,
      bytes: read.result.bytes,
    },
    'archive imported',
  );
  return read.result;
}

function asRegistryError(err: unknown): unknown {
  if (err instanceof ArchiveError) return Errors.archiveInvalid({}, undefined, err.message);
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.startsWith('Z_'))
    return Errors.archiveInvalid({}, undefined, 'the gzip stream is corrupt or truncated');
  return err;
}

async function readArchive(src: AsyncIterable<Buffer>, o: ImportOptions, deps: ImportDeps) {
  const read: Read = {
    contents: { files: new Map(), members: new Map(), links: new Map(), manifests: new Map() },
    blobs: new Map(),
    result: { images: [], manifests: 0, blobsWritten: 0, blobsSkipped: 0, bytes: 0 },
    manifestBytes: 0,
  };
  for await (const e of readTar(src)) {
    if (e.kind === 'link') read.contents.links.set(e.path, e.target);
    if (e.kind !== 'file') continue;
    if (isMetadata(e.path)) {
      const tap = new Tap(e.body, o.manifestBytes);
      await tap.drain();
      if (tap.kept === undefined || tap.size !== e.size)
        throw new ArchiveError(`${e.path} is larger than ${o.manifestBytes} bytes`);
      read.contents.files.set(e.path, tap.kept);
    } else if (!SKIPPED.has(posix.basename(e.path))) {
      await storeMember(e, read, o, deps);
    }
  }
  return read;
}

/**
 * storeMember stores a file member as a blob: one named `blobs/<alg>/<hex>` is checked
 * against that digest (and skipped when the registry holds it already), any other is stored
 * under the digest its bytes have. A small member that is a manifest is kept for the plan.
 */
async function storeMember(
  e: TarEntry & { kind: 'file' },
  read: Read,
  o: ImportOptions,
  deps: ImportDeps,
): Promise<void> {
  const named = BLOB_PATH.exec(e.path);
  const expected = named ? blobDigest(named[1]!, named[2]!, e.path) : undefined;
  const tap = new Tap(e.body, e.size <= o.manifestBytes ? o.manifestBytes : 0);
  let desc = expected && (await deps.uploads.indexed(expected));
  if (desc) {
    // Not written again, and still checked: a corrupt archive is refused whatever it holds.
    await verified(tap, expected!, desc.size);
    read.result.blobsSkipped++;
  } else {
    const algorithm: Algorithm = expected?.algorithm ?? 'sha256';
    desc = await deps.uploads.ingest(Readable.from(tap.chunks()), algorithm, expected);
    read.result.blobsWritten++;
    read.result.bytes += desc.size;
  }
  read.blobs.set(desc.digest, desc);
  read.contents.members.set(e.path, { digest: desc.digest, size: desc.size, gzip: tap.gzip });
  if (tap.kept !== undefined) keepManifest(read, desc.digest, tap.kept);
}

/** verified reads a member through, throwing DIGEST_INVALID unless it is `digest` and `size` long. */
async function verified(tap: Tap, digest: Digest, size: number): Promise<void> {
  const hash = createHash(digest.algorithm);
  for await (const c of tap.chunks()) hash.update(c);
  const hex = hash.digest('hex');
  if (hex !== digest.hex || tap.size !== size)
    throw Errors.digestInvalid(
      { expected: digest.value, computed: `${digest.algorithm}:${hex}` },
      undefined,
      `the archive's ${digest.value} does not match its bytes`,
    );
}

function blobDigest(algorithm: string, hex: string, path: string): Digest {
  try {
    return parseDigest(`${algorithm}:${hex}`);
  } catch {
    throw new ArchiveError(`${path} is not named by a valid digest`);
  }
}

/** keepManifest keeps a member's bytes for the plan when they are a manifest or an index. */
function keepManifest(read: Read, digest: string, body: Buffer): void {
  if (body[0] !== 0x7b) return;
  let doc: ManifestDoc & { schemaVersion?: unknown };
  try {
    doc = JSON.parse(body.toString('utf8')) as ManifestDoc & { schemaVersion?: unknown };
  } catch {
    return;
  }
  if (typeof doc !== 'object' || doc === null || doc.schemaVersion !== 2) return;
  read.manifestBytes += body.length;
  if (read.manifestBytes > MANIFEST_BUDGET)
    throw new ArchiveError(`the archive's manifests are above ${MANIFEST_BUDGET} bytes`);
  read.contents.manifests.set(digest, { mediaType: mediaTypeOf(doc), digest, body, doc });
}

/**
 * Tap passes a member's bytes on, noting whether they start as gzip does and keeping them
 * whole when they fit in `limit` (0: never).
 */
class Tap {
  gzip = false;
  size = 0;
  private parts: Buffer[] | undefined = [];

  constructor(
    private readonly body: AsyncIterable<Buffer>,
    readonly limit: number,
  ) {}

  get kept(): Buffer | undefined {
    return this.limit > 0 && this.parts ? Buffer.concat(this.parts) : undefined;
  }

  async *chunks(): AsyncGenerator<Buffer> {
    for await (const c of this.body) {
      if (this.size === 0) this.gzip = c[0] === 0x1f && c[1] === 0x8b;
      this.size += c.length;
      if (this.parts && this.size <= this.limit) this.parts.push(c);
      else this.parts = undefined;
      yield c;
    }
  }

  async drain(): Promise<void> {
    const it = this.chunks();
    while (!(await it.next()).done);
  }
}

/**
 * stillStored reads each blob's descriptor from the global index again, whole: an import
 * that ran longer than `gc.graceSeconds` may have seen garbage collection take blobs it
 * stored early (no repository linked them yet). Then UNAVAILABLE: sending it again stores
 * them again.
 */
async function stillStored(read: Read, deps: ImportDeps): Promise<void> {
  for (const [digest, desc] of read.blobs) {
    const now = await deps.uploads.indexed(parseDigest(digest));
    if (!now)
      throw Errors.unavailable(
        { digest },
        undefined,
        'blobs of the import were collected while it ran (raise gc.graceSeconds): send it again',
      );
    if (now !== desc) read.blobs.set(digest, now);
  }
}

/**
 * check refuses, before anything is written, an import whose manifests name a blob that
 * is neither in the archive nor in the repository, or that would move an immutable tag.
 */
async function check(w: RepositoryWrite, read: Read, o: ImportOptions, deps: ImportDeps) {
  const repo = deps.registry.repository(w.repository);
  const missing: string[] = [];
  for (const d of w.blobs.keys()) {
    if (read.blobs.has(d)) continue;
    const linked = await repo.blobs.stat(parseDigest(d)).then(
      () => true,
      (err: unknown) => {
        if (isRegistryError(err) && err.code === 'BLOB_UNKNOWN') return false;
        throw err;
      },
    );
    if (!linked) missing.push(d);
  }
  if (missing.length > 0)
    throw Errors.manifestBlobUnknown(
      { repository: w.repository, digests: missing.sort() },
      undefined,
      `the archive's manifests name blobs it does not hold: ${missing.sort().join(', ')}`,
    );
  for (const [tag, digest] of w.tags) {
    if (!o.immutable(w.repository, tag)) continue;
    const now = await repo.resolve(tag).then(
      (d) => d.value,
      () => undefined,
    );
    if (now !== undefined && now !== digest)
      throw Errors.denied({ tag, reason: 'immutable tag' }, undefined, `tag ${tag} is immutable`);
  }
}

/** write links the blobs, puts the manifests and sets the tags of one repository. */
async function write(w: RepositoryWrite, read: Read, deps: ImportDeps): Promise<number> {
  const repo = deps.registry.repository(w.repository);
  for (const d of w.blobs.keys()) {
    const desc = read.blobs.get(d);
    if (desc) await repo.blobs.link(desc, parseDigest(d));
  }
  for (const m of w.manifests) {
    const tags = [...w.tags].filter(([, d]) => d === m.digest).map(([t]) => t);
    const { digest } = await repo.put(m.body, m.mediaType, parseDigest(m.digest), tags);
    for (const t of tags) await repo.tag(t, digest);
  }
  return w.manifests.length;
}

/** limited passes `src` on and throws SIZE_INVALID (413) after `max` bytes. */
async function* limited(src: AsyncIterable<Buffer>, max: number): AsyncGenerator<Buffer> {
  let n = 0;
  for await (const c of src) {
    n += c.length;
    if (n > max)
      throw Errors.importTooLarge({ limit: max }, undefined, `the import is above ${max} bytes`);
    yield c;
  }
}

/** unpacked is `src`, gunzipped when it starts as gzip does. */
async function* unpacked(src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const it = src[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done) return;
  const rest = async function* (): AsyncGenerator<Buffer> {
    yield first.value;
    for (let n = await it.next(); !n.done; n = await it.next()) yield n.value;
  };
  if (first.value[0] !== 0x1f || first.value[1] !== 0x8b) {
    yield* rest();
    return;
  }
  const gunzip = createGunzip();
  const feeding = pipeline(Readable.from(rest()), gunzip);
  feeding.catch(() => undefined);
  for await (const c of gunzip) yield c as Buffer;
  await feeding;
}
