import { systemClock, type Clock } from '../util/clock.js';
import { createHash } from 'node:crypto';
import { Errors } from '../errors.js';
import { isNotFound, listAll, type StorageDriver } from '../storage/driver.js';
import { Paths } from '../storage/paths.js';
import type { StorageViews } from '../storage/views.js';
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
  /**
   * sparse names repositories that accept manifests whose blobs are not (yet) present: those
   * pulled through from an upstream, whose blobs are fetched when first pulled.
   */
  sparse?: (name: string) => boolean;
  /** redirectSeconds enables presigned blob redirects with this expiry. */
  redirectSeconds?: number;
  /**
   * decorate wraps every repository handed out (events, and other cross-cutting concerns);
   * the result must behave as `repo` does, adding only side effects.
   */
  decorate?: (repo: Repository) => Repository;
  /**
   * pause waits `ms` milliseconds (default: the clock's sleep); a tag write pauses while
   * another request's removal of the tag finishes. Tests inject their own.
   */
  pause?: (ms: number) => Promise<void>;
  /** cacheObserver hears each lookup in the in-process repository-marker cache (metrics). */
  cacheObserver?: (hit: boolean) => void;
  /** clock reads the time of delete fences and paces retries (default systemClock). */
  clock?: Clock;
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
   * When `expected` is given the body must hash to it (DIGEST_INVALID). `tags` are the tags
   * the caller points at the manifest next (with `tag`): a decorator may check or reserve
   * them before anything is written; the repository itself does not tag.
   */
  put(
    body: Buffer,
    contentType: string | undefined,
    expected?: Digest,
    tags?: readonly string[],
  ): Promise<PutResult>;
  /**
   * delete removes the manifest, every tag pointing to it and its referrer entry. With
   * `opts`, the delete is conditional and fenced against concurrent writers (see
   * {@link DeleteOptions}): refused (DENIED) when the condition fails, and then nothing is
   * removed.
   */
  delete(digest: Digest, opts?: DeleteOptions): Promise<void>;
}

/**
 * DeleteOptions make a manifest delete conditional. The condition is checked inside a fence
 * (ADR 0016): a writer that stores the manifest or points a tag at it while the fence stands
 * waits for the delete to finish or be refused, then writes again; so a delete never removes
 * a push or a tag the condition would have refused for, whatever the interleaving.
 */
export interface DeleteOptions {
  /**
   * protect returns the error to refuse with when `tag` points at the manifest, or undefined
   * when the tag may go with it.
   */
  protect?: (tag: string) => Error | undefined;
  /** unchangedSince refuses when the manifest was written at or after this time (ms). */
  unchangedSince?: number;
}

export interface TagOptions {
  /** onlyIfAbsent refuses (DENIED) to move a tag that points at another manifest. */
  onlyIfAbsent?: boolean;
  /**
   * manifestPending skips the check that the manifest exists: the caller stores it next
   * (a tag reserved before its push) and removes the tag if that fails.
   */
  manifestPending?: boolean;
}

export interface PutResult {
  digest: Digest;
  subject?: Digest;
}

/** TagService maps tags to manifest digests. Tags are listed in byte order. */
export interface TagService {
  /** resolve returns the digest a tag points to; throws MANIFEST_UNKNOWN. */
  resolve(tag: string): Promise<Digest>;
  /**
   * tag points `tag` at `digest` (moving it if it pointed elsewhere) with one atomic
   * compare-and-set: of concurrent writers each one's value is current at some instant, and
   * the reverse index names the tag's target whatever the interleaving (ADR 0013). With
   * `onlyIfAbsent`, a tag that points elsewhere is refused (DENIED) and nothing changes.
   */
  tag(tag: string, digest: Digest, opts?: TagOptions): Promise<void>;
  /**
   * untag removes a tag; throws MANIFEST_UNKNOWN when it does not exist, or (with
   * `expected`) when it no longer points at `expected`, which is then left as it is.
   */
  untag(tag: string, expected?: Digest): Promise<void>;
  list(last: string | undefined, n: number): Promise<Page<string>>;
}

/** Repository is one named repository's view of the registry. */
export class Repository implements ManifestService, TagService {
  readonly blobs: RepositoryBlobStore;
  private readonly driver: StorageDriver;

  constructor(
    private readonly storage: StorageViews,
    readonly name: string,
    private readonly registry: Registry,
    private readonly opts: RegistryOptions,
  ) {
    this.driver = storage.cached;
    this.blobs = new RepositoryBlobStore(
      storage,
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
        this.storage.invalidate(key);
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

  /**
   * validate runs every check of `put` (digest, parse, referenced blobs) and writes nothing:
   * what a decorator needs to decide before the write.
   */
  async validate(
    body: Buffer,
    contentType: string | undefined,
    expected?: Digest,
  ): Promise<{ digest: Digest; manifest: ReturnType<typeof parseManifest> }> {
    const algorithm = expected?.algorithm ?? 'sha256';
    const hex = createHash(algorithm).update(body).digest('hex');
    const digest = parseDigest(`${algorithm}:${hex}`);
    if (expected && expected.hex !== hex) {
      throw Errors.digestInvalid({ expected: expected.value, computed: digest.value });
    }
    const m = parseManifest(body, contentType);
    if (!this.opts.allowSparse && !this.opts.sparse?.(this.name)) {
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
    return { digest, manifest: m };
  }

  async put(
    body: Buffer,
    contentType: string | undefined,
    expected?: Digest,
    _tags?: readonly string[],
  ): Promise<PutResult> {
    const { digest, manifest: m } = await this.validate(body, contentType, expected);
    // All checks passed: now write (manifest, then indexes that point at it). A conditional
    // delete of the same manifest under way may have judged it before this write and remove
    // it after: once it is over, the manifest is written again.
    for (let round = 0; ; round++) {
      await this.driver.put(Paths.manifest(this.name, digest), encodeEnvelope(m.mediaType, body));
      if (m.subject) {
        const entry: Descriptor = {
          mediaType: m.mediaType,
          digest: digest.value,
          size: body.length,
        };
        if (m.artifactType !== undefined) entry.artifactType = m.artifactType;
        if (m.annotations !== undefined) entry.annotations = m.annotations;
        await this.driver.put(
          Paths.referrer(this.name, m.subject.parsed, digest),
          JSON.stringify(entry),
        );
      }
      if (!(await this.waitFence(digest, round))) break;
    }
    await this.registry.markRepository(this.name);
    return { digest, subject: m.subject?.parsed };
  }

  async delete(digest: Digest, opts?: DeleteOptions): Promise<void> {
    if (opts?.protect === undefined && opts?.unchangedSince === undefined) {
      return this.deleteNow(digest, await this.get(digest));
    }
    // The fence goes up before the condition is read; writers read it after they wrote: of
    // a writer and this delete, at least one sees the other (ADR 0016).
    const fence = Paths.deleteFence(this.name, digest);
    await this.driver.put(fence, JSON.stringify({ at: this.now() }));
    try {
      const m = await this.get(digest);
      if (opts.unchangedSince !== undefined) {
        const s = await this.storage.fresh
          .stat(Paths.manifest(this.name, digest))
          .catch((err: unknown) => {
            if (isNotFound(err)) throw Errors.manifestUnknown({ digest: digest.value });
            throw err;
          });
        if (s.modified.getTime() >= opts.unchangedSince) {
          throw Errors.denied(
            { digest: digest.value, reason: 'pushed again' },
            undefined,
            'the manifest was pushed again',
          );
        }
      }
      if (opts.protect) {
        for (const tag of await listAll(this.driver, Paths.tagsOfRoot(this.name, digest))) {
          const refusal = opts.protect(tag);
          if (refusal === undefined) continue;
          if ((await this.readTag(tag))?.value === digest.value) throw refusal;
        }
      }
      await this.deleteNow(digest, m);
    } finally {
      await this.driver.delete(fence).catch(() => undefined);
    }
  }

  private async deleteNow(digest: Digest, m: StoredManifest): Promise<void> {
    // Tags go before the manifest (a crash leaves the manifest, never a dangling tag), and
    // once more after it: a tag set concurrently saw the manifest before it went, and its
    // reverse index entry was written before that (ADR 0013).
    await this.untagAll(digest);
    try {
      const parsed = parseManifest(m.body, m.mediaType);
      if (parsed.subject)
        await this.driver.delete(Paths.referrer(this.name, parsed.subject.parsed, digest));
    } catch {
      // A stored manifest always parsed on push; nothing more to unindex.
    }
    await this.driver.delete(Paths.manifest(this.name, digest));
    await this.untagAll(digest);
    await this.driver.deletePrefix(Paths.tagsOfRoot(this.name, digest));
  }

  /** untagAll removes every tag that points at `digest` (found through the reverse index). */
  private async untagAll(digest: Digest): Promise<void> {
    for (const tag of await listAll(this.driver, Paths.tagsOfRoot(this.name, digest))) {
      await this.removeTag(tag, (d) => d === digest.value);
    }
  }

  resolve(tag: string): Promise<Digest> {
    return this.resolveWith(this.driver, tag);
  }

  private async resolveWith(driver: StorageDriver, tag: string): Promise<Digest> {
    let value: string;
    try {
      value = (await driver.get(Paths.tag(this.name, tag))).toString('utf8');
    } catch (err) {
      if (isNotFound(err)) throw Errors.manifestUnknown({ tag });
      throw err;
    }
    if (value === TOMBSTONE) throw Errors.manifestUnknown({ tag });
    return parseDigest(value);
  }

  /**
   * readTag reads a tag from storage itself with its version: undefined when absent,
   * `value: undefined` for a tombstone (a removal under way or cut short).
   */
  private async readTag(tag: string): Promise<{ value?: string; version: string } | undefined> {
    try {
      const v = await this.driver.getVersioned(Paths.tag(this.name, tag));
      const value = v.data.toString('utf8');
      return { value: value === TOMBSTONE ? undefined : value, version: v.version };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async tag(tag: string, digest: Digest, opts: TagOptions = {}): Promise<void> {
    await this.setTag(tag, digest, opts);
  }

  /**
   * waitFence waits while a conditional delete of `digest` is under way (ADR 0016) and
   * resolves whether there was one: the caller's write may then have been judged before it
   * and removed after, and is made again. A fence older than FENCE_TTL_MS is a deleter that
   * died, and ignored. `round` counts the caller's writes so far.
   */
  private async waitFence(digest: Digest, round: number): Promise<boolean> {
    const key = Paths.deleteFence(this.name, digest);
    let seen = false;
    for (let i = 0; ; i++) {
      let at: number;
      try {
        const raw = await this.storage.fresh.get(key);
        at = Number((JSON.parse(raw.toString('utf8')) as { at?: unknown }).at);
      } catch (err) {
        if (isNotFound(err) || err instanceof SyntaxError) return seen;
        throw err;
      }
      if (!(this.now() - at < FENCE_TTL_MS)) return seen;
      if (round >= FENCE_ROUNDS || i >= FENCE_WAITS) {
        throw Errors.unavailable(
          { digest: digest.value },
          undefined,
          'the manifest is being deleted: try again',
        );
      }
      seen = true;
      await this.pause(Math.min(2 ** i, 200));
    }
  }

  private now(): number {
    return (this.opts.clock ?? systemClock).now();
  }

  private pause(ms: number): Promise<void> {
    return this.opts.pause ? this.opts.pause(ms) : (this.opts.clock ?? systemClock).sleep(ms);
  }

  /**
   * reserveTag points `tag` at `digest` before the manifest is stored, only if the tag is
   * absent (DENIED if it names another manifest). Resolves true when this call created it;
   * the caller stores the manifest next, or takes the tag back with `untag(tag, digest)`.
   */
  reserveTag(tag: string, digest: Digest): Promise<boolean> {
    return this.setTag(tag, digest, { onlyIfAbsent: true, manifestPending: true });
  }

  /**
   * setTag is the tag compare-and-set (ADR 0013): the reverse index entry digest→tag is
   * written first (a crash never leaves a tag its entry does not name), then the tag moves
   * by compare-and-set from the version just read, then the entries of both the new and the
   * old target are settled against what the tag then names.
   */
  private async setTag(tag: string, digest: Digest, opts: TagOptions): Promise<boolean> {
    // A conditional delete of the target under way may have judged its tags before this
    // write and remove the tag after: once it is over, the tag is written again.
    let wrote = false;
    for (let round = 0; ; round++) {
      wrote = (await this.setTagOnce(tag, digest, opts)) || wrote;
      if (!(await this.waitFence(digest, round))) return wrote;
    }
  }

  private async setTagOnce(tag: string, digest: Digest, opts: TagOptions): Promise<boolean> {
    const key = Paths.tag(this.name, tag);
    if (opts.onlyIfAbsent) {
      const cur = await this.readTag(tag);
      if (cur?.value !== undefined && cur.value !== digest.value) throw immutable(tag);
    }
    await this.driver.put(Paths.tagOf(this.name, digest, tag), '');
    let previous: string | undefined;
    let wrote = false;
    let cur: { value?: string; version: string } | undefined = undefined;
    for (let attempt = 0; ; attempt++) {
      if (attempt >= CAS_ATTEMPTS) {
        throw Errors.unavailable({ tag }, undefined, `tag ${tag} is changing too often`);
      }
      // The first attempt assumes a new tag and reads nothing.
      if (attempt > 0) cur = await this.readTag(tag);
      if (cur?.value === digest.value) break;
      if (cur?.value !== undefined && opts.onlyIfAbsent) {
        await this.settle(tag, digest);
        throw immutable(tag);
      }
      if (cur && cur.value === undefined && attempt < TOMBSTONE_WAITS) {
        // Another request is removing the tag; let it finish rather than race its delete.
        await this.pause(1 + attempt);
        continue;
      }
      if (await this.driver.putIfVersion(key, digest.value, cur?.version ?? null)) {
        previous = cur?.value;
        wrote = true;
        break;
      }
    }
    const kept = await this.settle(tag, digest, opts.manifestPending);
    if (previous !== undefined && previous !== digest.value) {
      await this.settle(tag, parseDigest(previous));
    }
    if (!kept) throw Errors.manifestUnknown({ digest: digest.value });
    return wrote;
  }

  /**
   * settle makes the reverse index entry digest→tag exist exactly when the tag points at
   * `digest`: it writes or deletes the entry by what the tag names, then reads the tag again
   * and repeats while the answer changed. Every writer of a tag settles the entries of its
   * old and new targets after its write, so the last settle of an entry follows the last
   * write that concerned it, and it stays true. When the tag points at `digest` but the
   * manifest is gone (deleted concurrently, which then may have listed the entries before
   * this one was written), the tag is removed; resolves false then. Unless `pending`.
   */
  private async settle(tag: string, digest: Digest, pending = false): Promise<boolean> {
    const entry = Paths.tagOf(this.name, digest, tag);
    const names = async () => (await this.readTag(tag))?.value === digest.value;
    let on = await names();
    let settled = false;
    for (let i = 0; i < SETTLE_ATTEMPTS && !settled; i++) {
      if (on) await this.driver.put(entry, '');
      else await this.driver.delete(entry);
      const now = await names();
      settled = now === on;
      on = now;
    }
    // Still changing: keep the entry if the tag last named `digest` (an extra entry is
    // harmless, a missing one is not).
    if (!settled && on) await this.driver.put(entry, '');
    if (on && !pending && !(await this.has(digest))) {
      await this.removeTag(tag, (d) => d === digest.value);
      return false;
    }
    return true;
  }

  /**
   * removeTag deletes `tag` if its target passes `match`: a compare-and-set to a tombstone
   * (so a concurrent move is never lost), then the delete, then the entry is settled.
   * Resolves with the removed target.
   */
  private async removeTag(
    tag: string,
    match: (digest: string) => boolean,
  ): Promise<Digest | undefined> {
    const key = Paths.tag(this.name, tag);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const cur = await this.readTag(tag);
      if (cur?.value === undefined || !match(cur.value)) return undefined;
      if (!(await this.driver.putIfVersion(key, TOMBSTONE, cur.version))) continue;
      await this.driver.delete(key);
      const removed = parseDigest(cur.value);
      await this.settle(tag, removed);
      return removed;
    }
    throw Errors.unavailable({ tag }, undefined, `tag ${tag} is changing too often`);
  }

  async untag(tag: string, expected?: Digest): Promise<void> {
    const match = (d: string) => expected === undefined || d === expected.value;
    if (!(await this.removeTag(tag, match))) throw Errors.manifestUnknown({ tag });
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

function immutable(tag: string) {
  return Errors.denied({ tag, reason: 'immutable tag' }, undefined, `tag ${tag} is immutable`);
}

/** TOMBSTONE is a tag object's content while a removal holds it (never a digest). */
const TOMBSTONE = '';
/** CAS_ATTEMPTS bounds the compare-and-set retries of one tag write. */
const CAS_ATTEMPTS = 100;
/** SETTLE_ATTEMPTS bounds the rounds of settling one reverse index entry. */
const SETTLE_ATTEMPTS = 10;
/** TOMBSTONE_WAITS is how many times a writer waits (1, 2, … ms) for a removal to finish. */
const TOMBSTONE_WAITS = 20;
/** FENCE_TTL_MS is how long a delete fence holds writers; an older one is a dead deleter's. */
const FENCE_TTL_MS = 30_000;
/** FENCE_WAITS bounds the polls (1, 2, 4 … 200 ms apart) of one wait for a fence. */
const FENCE_WAITS = 160;
/** FENCE_ROUNDS bounds how often one write is made again after a fence. */
const FENCE_ROUNDS = 3;

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
  // Every folder listed here holds objects only (tags, catalog markers).
  const page = await driver.list(prefix, { startAfter: last, limit: n, flat: true });
  const items = page.names.map(map);
  return { items, next: page.truncated ? page.names[page.names.length - 1] : undefined };
}

/**
 * Registry returns repositories by name and serves the catalog from its index of
 * repository markers (written on the first push into a repository, never a walk).
 */
export class Registry {
  private readonly known = new Set<string>();
  private readonly driver: StorageDriver;

  constructor(
    private readonly storage: StorageViews,
    private readonly opts: RegistryOptions,
  ) {
    this.driver = storage.cached;
  }

  repository(name: string): Repository {
    const repo = new Repository(this.storage, name, this, this.opts);
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
