import { createHash } from 'node:crypto';
import { Errors } from '../errors.js';
import { isNotFound, listAll, type StorageDriver } from '../storage/driver.js';
import { Paths } from '../storage/paths.js';
import { forget, freshOf } from '../storage/cache.js';
import { RepositoryBlobStore } from './blobs.js';
import { parseManifest, type Descriptor } from './manifest-parse.js';
import { parseDigest, type Digest } from './reference.js';

/** StoredManifest is a manifest exactly as pushed, with its media type. */
export interface StoredManifest {
  digest: Digest;
  mediaType: string;
  body: Buffer;
}

export interface Page<T> {
  items: T[];
  /** next is the `last` value for the following page, when there is one. */
  next?: string;
}

export interface RegistryOptions {
  /** allowSparse accepts manifests whose blobs or child manifests are not (yet) present. */
  allowSparse: boolean;
  /** redirectSeconds enables presigned blob redirects with this expiry. */
  redirectSeconds?: number;
  /**
   * decorate wraps every repository handed out (events, and other cross-cutting concerns);
   * the result must behave as `repo` does, adding only side effects.
   */
  decorate?: (repo: Repository) => Repository;
  /** cacheObserver hears each lookup in the in-process repository-marker cache (metrics). */
  cacheObserver?: (hit: boolean) => void;
}

function encodeEnvelope(mediaType: string, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(mediaType + '\n'), body]);
}

function decodeEnvelope(digest: Digest, raw: Buffer): StoredManifest {
  const nl = raw.indexOf(0x0a);
  return { digest, mediaType: raw.subarray(0, nl).toString('utf8'), body: raw.subarray(nl + 1) };
}

/** ManifestService stores and serves manifests of one repository. */
export interface ManifestService {
  /** get resolves by digest; throws MANIFEST_UNKNOWN. */
  get(digest: Digest): Promise<StoredManifest>;
  /**
   * put validates and stores `body` byte-exact and returns its digest. Blobs it
   * references must be in the repository (MANIFEST_BLOB_UNKNOWN) except its subject.
   * When `expected` is given the body must hash to it (DIGEST_INVALID).
   */
  put(body: Buffer, contentType: string | undefined, expected?: Digest): Promise<PutResult>;
  /** delete removes the manifest, every tag pointing to it and its referrer entry. */
  delete(digest: Digest): Promise<void>;
}

export interface PutResult {
  digest: Digest;
  subject?: Digest;
}

/** TagService maps tags to manifest digests. Tags are listed in byte order. */
export interface TagService {
  /** resolve returns the digest a tag points to; throws MANIFEST_UNKNOWN. */
  resolve(tag: string): Promise<Digest>;
  /** tag points `tag` at `digest` (moving it if it pointed elsewhere). */
  tag(tag: string, digest: Digest): Promise<void>;
  /** untag removes a tag; throws MANIFEST_UNKNOWN when it does not exist. */
  untag(tag: string): Promise<void>;
  list(last: string | undefined, n: number): Promise<Page<string>>;
}

/** Repository is one named repository's view of the registry. */
export class Repository implements ManifestService, TagService {
  readonly blobs: RepositoryBlobStore;

  constructor(
    private readonly driver: StorageDriver,
    readonly name: string,
    private readonly registry: Registry,
    private readonly opts: RegistryOptions,
  ) {
    this.blobs = new RepositoryBlobStore(
      driver,
      name,
      () => registry.markRepository(name),
      opts.redirectSeconds,
    );
  }

  /** exists reports whether anything was ever pushed to the repository. */
  exists(): Promise<boolean> {
    return this.registry.hasRepository(this.name);
  }

  async get(digest: Digest): Promise<StoredManifest> {
    const key = Paths.manifest(this.name, digest);
    try {
      return decodeEnvelope(digest, await this.driver.get(key));
    } catch (err) {
      if (isNotFound(err)) {
        forget(this.driver, key);
        throw Errors.manifestUnknown({ digest: digest.value });
      }
      throw err;
    }
  }

  async has(digest: Digest): Promise<boolean> {
    return this.driver.stat(Paths.manifest(this.name, digest)).then(
      () => true,
      (err: unknown) => {
        if (isNotFound(err)) return false;
        throw err;
      },
    );
  }

  async put(body: Buffer, contentType: string | undefined, expected?: Digest): Promise<PutResult> {
    const algorithm = expected?.algorithm ?? 'sha256';
    const hex = createHash(algorithm).update(body).digest('hex');
    const digest = parseDigest(`${algorithm}:${hex}`);
    if (expected && expected.hex !== hex) {
      throw Errors.digestInvalid({ expected: expected.value, computed: digest.value });
    }
    const m = parseManifest(body, contentType);
    if (!this.opts.allowSparse) {
      // Asked of storage itself, never of a cache: a manifest must not outlive its blobs.
      const missing: string[] = [];
      await Promise.all([
        ...m.blobs.map(async (b) => {
          const d = parseDigest(b.digest);
          await this.blobs.statFresh(d).catch(() => missing.push(b.digest));
        }),
        ...m.manifests.map(async (c) => {
          if (!(await this.has(parseDigest(c.digest)))) missing.push(c.digest);
        }),
      ]);
      if (missing.length > 0) {
        throw Errors.manifestBlobUnknown(
          { digests: missing.sort() },
          undefined,
          `manifest references unknown blobs: ${missing.sort().join(', ')}`,
        );
      }
    }
    // All checks passed: now write (manifest, then indexes that point at it).
    await this.driver.put(Paths.manifest(this.name, digest), encodeEnvelope(m.mediaType, body));
    if (m.subject) {
      const entry: Descriptor = { mediaType: m.mediaType, digest: digest.value, size: body.length };
      if (m.artifactType !== undefined) entry.artifactType = m.artifactType;
      if (m.annotations !== undefined) entry.annotations = m.annotations;
      await this.driver.put(
        Paths.referrer(this.name, m.subject.parsed, digest),
        JSON.stringify(entry),
      );
    }
    await this.registry.markRepository(this.name);
    return { digest, subject: m.subject?.parsed };
  }

  async delete(digest: Digest): Promise<void> {
    const m = await this.get(digest);
    for (const tag of await listAll(this.driver, Paths.tagsOfRoot(this.name, digest))) {
      const current = await this.resolve(tag).catch(() => undefined);
      if (current?.value === digest.value) await this.driver.delete(Paths.tag(this.name, tag));
    }
    await this.driver.deletePrefix(Paths.tagsOfRoot(this.name, digest));
    try {
      const parsed = parseManifest(m.body, m.mediaType);
      if (parsed.subject)
        await this.driver.delete(Paths.referrer(this.name, parsed.subject.parsed, digest));
    } catch {
      // A stored manifest always parsed on push; nothing more to unindex.
    }
    await this.driver.delete(Paths.manifest(this.name, digest));
  }

  resolve(tag: string): Promise<Digest> {
    return this.resolveWith(this.driver, tag);
  }

  private async resolveWith(driver: StorageDriver, tag: string): Promise<Digest> {
    try {
      return parseDigest((await driver.get(Paths.tag(this.name, tag))).toString('utf8'));
    } catch (err) {
      if (isNotFound(err)) throw Errors.manifestUnknown({ tag });
      throw err;
    }
  }

  async tag(tag: string, digest: Digest): Promise<void> {
    // The reverse index entry goes first (it may name more than the tags, never fewer).
    // A new tag is then one conditional write; only a tag that exists is read (from
    // storage itself) to unindex its old target.
    await this.driver.put(Paths.tagOf(this.name, digest, tag), '');
    if (await this.driver.putIfAbsent(Paths.tag(this.name, tag), digest.value)) return;
    const previous = await this.resolveWith(freshOf(this.driver), tag).catch(() => undefined);
    await this.driver.put(Paths.tag(this.name, tag), digest.value);
    if (previous && previous.value !== digest.value) {
      await this.driver.delete(Paths.tagOf(this.name, previous, tag));
    }
  }

  async untag(tag: string): Promise<void> {
    const digest = await this.resolve(tag);
    await this.driver.delete(Paths.tag(this.name, tag));
    await this.driver.delete(Paths.tagOf(this.name, digest, tag));
  }

  async list(last: string | undefined, n: number): Promise<Page<string>> {
    return listPage(this.driver, Paths.tagsRoot(this.name), last, n, (x) => x);
  }

  /** referrers lists descriptors of manifests whose subject is `subject`. */
  async referrers(
    subject: Digest,
    artifactType: string | undefined,
    last: string | undefined,
    n: number,
  ): Promise<Page<Descriptor>> {
    const root = Paths.referrersRoot(this.name, subject);
    const items: Descriptor[] = [];
    let cursor = last === undefined ? undefined : last.replace(':', '-');
    for (;;) {
      const page = await this.driver.list(root, { startAfter: cursor, limit: Math.max(n, 1) });
      const descs = await Promise.all(
        page.names.map((e) =>
          this.driver.get(root + e).then(
            (b) => JSON.parse(b.toString('utf8')) as Descriptor,
            () => undefined,
          ),
        ),
      );
      for (const [i, d] of descs.entries()) {
        if (!d || (artifactType !== undefined && d.artifactType !== artifactType)) continue;
        items.push(d);
        if (items.length === n) {
          const more = i < descs.length - 1 || page.truncated;
          return { items, next: more ? d.digest : undefined };
        }
      }
      if (!page.truncated || page.names.length === 0) return { items };
      cursor = page.names[page.names.length - 1];
    }
  }
}

/** CATALOG_SCAN_LIMIT bounds the names one filtered catalog request looks at. */
const CATALOG_SCAN_LIMIT = 10_000;

async function listPage<T>(
  driver: StorageDriver,
  prefix: string,
  last: string | undefined,
  n: number,
  map: (entry: string) => T,
): Promise<Page<T>> {
  if (n === 0) return { items: [] };
  const page = await driver.list(prefix, { startAfter: last, limit: n });
  const items = page.names.map(map);
  return { items, next: page.truncated ? page.names[page.names.length - 1] : undefined };
}

/**
 * Registry returns repositories by name and serves the catalog from its index of
 * repository markers (written on the first push into a repository, never a walk).
 */
export class Registry {
  private readonly known = new Set<string>();

  constructor(
    readonly driver: StorageDriver,
    private readonly opts: RegistryOptions,
  ) {}

  repository(name: string): Repository {
    const repo = new Repository(this.driver, name, this, this.opts);
    return this.opts.decorate ? this.opts.decorate(repo) : repo;
  }

  async markRepository(name: string): Promise<void> {
    this.opts.cacheObserver?.(this.known.has(name));
    if (this.known.has(name)) return;
    await this.driver.put(Paths.catalogEntry(name), '');
    this.known.add(name);
  }

  async hasRepository(name: string): Promise<boolean> {
    this.opts.cacheObserver?.(this.known.has(name));
    if (this.known.has(name)) return true;
    return this.driver.stat(Paths.catalogEntry(name)).then(
      () => true,
      () => false,
    );
  }

  /**
   * catalog lists repository names after `last`; '/' sorts before any other character. With
   * `visible`, only names it accepts are listed (the caller's pull rights); the scan then stops
   * after CATALOG_SCAN_LIMIT names and returns `next`, so one request's work stays bounded.
   */
  async catalog(
    last: string | undefined,
    n: number,
    visible?: (name: string) => boolean,
  ): Promise<Page<string>> {
    const items: string[] = [];
    let cursor =
      last === undefined ? undefined : Paths.catalogEntry(last).slice(Paths.catalogRoot().length);
    let scanned = 0;
    for (;;) {
      const page = await listPage(this.driver, Paths.catalogRoot(), cursor, n, Paths.catalogName);
      for (const [i, name] of page.items.entries()) {
        scanned++;
        if (visible && !visible(name)) continue;
        items.push(name);
        if (items.length === n) {
          const more = i < page.items.length - 1 || page.next !== undefined;
          return { items, next: more ? name : undefined };
        }
      }
      if (page.next === undefined) return { items };
      cursor = page.next;
      if (scanned >= CATALOG_SCAN_LIMIT) return { items, next: Paths.catalogName(page.next) };
    }
  }
}
