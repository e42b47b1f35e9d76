import { Errors, isRegistryError } from '../errors.js';
import { parseManifest } from '../registry/manifest-parse.js';
import { parseDigest, type Digest } from '../registry/reference.js';
import type { StoredManifest } from '../registry/repository.js';
import { isNotFound, listAll } from '../storage/driver.js';
import { Paths } from '../storage/paths.js';
import type { StorageViews } from '../storage/views.js';
import { randomBytes } from 'node:crypto';
import { systemClock, type Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { Batches } from './batches.js';
import { PendingMarks, type PendingMark } from './pending.js';
import {
  emptyDocument,
  imageText,
  matchDocument,
  parseDocument,
  type ImageText,
  type SearchDocument,
  type SearchResult,
} from './document.js';

/**
 * IndexChange names what a repository write changed: tags moved or removed, manifests
 * stored or deleted, and the text of manifests the writer has parsed already.
 */
export interface IndexChange {
  tags?: readonly string[];
  digests?: readonly Digest[];
  known?: ReadonlyMap<string, ImageText>;
  /**
   * tagsOfDigests (default true) also reads again every tag the document says points at a
   * named manifest: a delete removes them with the manifest. A put changes no tag that points
   * at its manifest (a tag it moves is named in its own change), so it passes false; reading
   * them made each push of a manifest that many tags share read all of those tags.
   */
  tagsOfDigests?: boolean;
}

/** ManifestSource is the repository whose document is updated, and how to read a manifest. */
export interface ManifestSource {
  readonly name: string;
  get(digest: Digest): Promise<StoredManifest>;
}

/** SearchQuery is one page of a search: `term` after repository `last`, at most `n`. */
export interface SearchQuery {
  term: string;
  n: number;
  last?: string;
  /** visible filters repositories by name (the caller's pull rights) before any is read. */
  visible?: (repository: string) => boolean;
}

export interface SearchPage {
  results: SearchResult[];
  /** next is the repository name to continue after, when more may follow. */
  next?: string;
}

export interface SearchIndexOptions {
  clock?: Clock;
  /**
   * ttlMillis is how long a document read stays in this process's memory (default 5 s); each
   * query first drops the older ones.
   */
  ttlMillis?: number;
  log?: Logger;
  /** observe hears each missed update (the repository marked) and each repaired one. */
  observe?: (what: 'missed' | 'repaired') => void;
}

/** StaleMark is a repository marked for repair and the version of the mark read. */
export interface StaleMark {
  repository: string;
  version: string | null;
}

/** CAS_ATTEMPTS bounds the compare-and-set rounds of one document update. */
const CAS_ATTEMPTS = 100;
/** SCAN_LIMIT bounds the repositories one query looks at, as the catalog does. */
const SCAN_LIMIT = 10_000;
/** READ_BATCH is how many documents a query reads from storage at once. */
const READ_BATCH = 32;
const TOMBSTONE = '';

/**
 * SearchIndex keeps one search document per repository (`search/<name>`, ADR 0023) and
 * answers queries from them: the index is listed, never the bucket walked.
 *
 * `update` is safe against every other replica: each round reads the document with its
 * version, then the truth of what changed (the tag objects, the manifests) from storage
 * itself, and stores the result by compare-and-set, retrying when it lost a race. Since
 * every writer updates after its own write, the last stored round read the last write.
 */
export class SearchIndex {
  private readonly memory = new Map<string, { doc: SearchDocument; at: number }>();
  private readonly batches = new Batches<IndexChange>(mergeChanges);
  private readonly clock: Clock;
  private readonly ttl: number;
  private readonly pending: PendingMarks;

  constructor(
    private readonly storage: StorageViews,
    private readonly opts: SearchIndexOptions = {},
  ) {
    this.clock = opts.clock ?? systemClock;
    this.ttl = opts.ttlMillis ?? 5_000;
    const instance = randomBytes(6).toString('hex');
    this.pending = new PendingMarks(storage.cached, instance, this.clock, opts.log);
  }

  /**
   * update brings `repository`'s document in line with storage for what `change` names.
   * Throws UNAVAILABLE when the document kept changing for CAS_ATTEMPTS rounds. Updates of
   * one repository in this process run one at a time, and those that arrive meanwhile are
   * merged into one round (group commit): many concurrent writers to one repository cost a
   * few rounds on its document, not one each racing the others (ADR 0023 addendum).
   */
  update(source: ManifestSource, change: IndexChange): Promise<void> {
    return this.batches.submit(source.name, change, (merged) => this.apply(source, merged));
  }

  /** apply is one compare-and-set loop over `source`'s document for `change`. */
  private async apply(source: ManifestSource, change: IndexChange): Promise<void> {
    const repository = source.name;
    const key = Paths.searchDoc(repository);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const { doc, version } = await this.readVersioned(repository);
      const next = await this.reconcile(source, doc, change);
      next.rev = doc.rev + 1;
      if (await this.storage.cached.putIfVersion(key, JSON.stringify(next), version)) {
        this.memory.set(repository, { doc: next, at: this.clock.now() });
        return;
      }
      // Lost to another writer, which made progress: read again at once.
    }
    throw Errors.unavailable({ repository }, undefined, 'the search index is changing too often');
  }

  /**
   * follow is `update` after a write that is stored already: a failed update does not fail
   * the write (its client must not see an error for what was done, nor retry it into
   * another), it marks the repository for repair instead (ADR 0023 addendum). Only a
   * failure to write the mark too throws.
   *
   * When a round of the same repository is under way in this process, the write does not
   * wait for it and the next: its change joins the next round, and `follow` resolves once
   * the repository's pending mark is stored (see {@link PendingMarks}), so a process that
   * dies before the round leaves the repository to the repair pass. Many writers to one
   * repository then cost its document a round at a time, not their requests.
   */
  async follow(source: ManifestSource, change: IndexChange): Promise<void> {
    if (this.batches.busy(source.name)) return this.defer(source, change);
    try {
      await this.update(source, change);
    } catch (err) {
      await this.missed(source.name, err);
    }
  }

  /** defer queues `change` behind the round under way, holding the pending mark. */
  private async defer(source: ManifestSource, change: IndexChange): Promise<void> {
    const name = source.name;
    const hold = await this.pending.hold(name);
    void this.update(source, change).then(
      () => this.pending.release(name, hold, true),
      (err: unknown) =>
        this.missed(name, err).then(
          () => this.pending.release(name, hold, true),
          (markErr: unknown) => {
            this.opts.log?.warn(
              { err: markErr, repository: name },
              'search stale mark not written',
            );
            this.pending.release(name, hold, false);
          },
        ),
    );
  }

  /** missed logs and counts a failed update, and marks its repository for repair. */
  private async missed(repository: string, err: unknown): Promise<void> {
    this.opts.log?.warn({ err, repository }, 'search index update missed');
    this.opts.observe?.('missed');
    await this.markStale(repository);
  }

  /**
   * settled resolves once every update queued in this process before the call has been
   * tried and the marks it held are released.
   */
  async settled(): Promise<void> {
    await this.batches.idle();
    await this.pending.settled();
  }

  /** orphanedPending lists pending marks no live holder has written for a while. */
  orphanedPending(): Promise<PendingMark[]> {
    return this.pending.orphans();
  }

  /** clearPending removes a pending mark once its repository was rebuilt. */
  async clearPending(mark: PendingMark): Promise<boolean> {
    const cleared = await this.pending.clear(mark);
    if (cleared) this.opts.observe?.('repaired');
    return cleared;
  }

  /** markStale marks `repository` for repair with a value no earlier mark had. */
  async markStale(repository: string): Promise<void> {
    await this.storage.cached.put(Paths.searchStale(repository), randomBytes(8).toString('hex'));
  }

  /** staleMarks lists the repositories marked for repair, with the mark's version. */
  async staleMarks(): Promise<StaleMark[]> {
    const out: StaleMark[] = [];
    for (const entry of await listAll(this.storage.cached, Paths.searchStaleRoot())) {
      const repository = Paths.searchName(entry);
      try {
        const v = await this.storage.cached.getVersioned(Paths.searchStale(repository));
        if (v.data.length > 0) out.push({ repository, version: v.version });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    return out;
  }

  /**
   * clearStale empties a mark once its repository was rebuilt, unless it was marked again
   * since it was read (the newer write may not be in the rebuild): then it stays marked.
   */
  async clearStale(mark: StaleMark): Promise<boolean> {
    const cleared = await this.storage.cached.putIfVersion(
      Paths.searchStale(mark.repository),
      '',
      mark.version,
    );
    if (cleared) this.opts.observe?.('repaired');
    return cleared;
  }

  /** document reads a repository's document (from memory within the TTL). */
  async document(repository: string): Promise<SearchDocument> {
    const hit = this.memory.get(repository);
    if (hit && this.clock.now() - hit.at < this.ttl) return hit.doc;
    let doc: SearchDocument;
    try {
      doc = parseDocument(repository, await this.storage.fresh.get(Paths.searchDoc(repository)));
    } catch (err) {
      if (!isNotFound(err)) throw err;
      doc = emptyDocument(repository);
    }
    this.memory.set(repository, { doc, at: this.clock.now() });
    return doc;
  }

  /**
   * search answers one page: the repositories after `last`, in name order, whose document
   * matches `term` (see {@link matchDocument}) and that `visible` accepts. One request looks
   * at most at SCAN_LIMIT repositories, then returns `next` with what it found.
   */
  async search(q: SearchQuery): Promise<SearchPage> {
    // What this process acknowledged is found here at once, queued rounds included.
    await this.batches.idle();
    this.forgetExpired();
    const results: SearchResult[] = [];
    let cursor = q.last === undefined ? undefined : Paths.searchEntry(q.last);
    let scanned = 0;
    for (;;) {
      const page = await this.storage.cached.list(Paths.searchRoot(), { startAfter: cursor });
      const names = page.names.map(Paths.searchName).filter((n) => q.visible?.(n) ?? true);
      for (let i = 0; i < names.length; i += READ_BATCH) {
        const batch = names.slice(i, i + READ_BATCH);
        const docs = await Promise.all(batch.map((n) => this.document(n)));
        for (const [j, doc] of docs.entries()) {
          const hit = matchDocument(doc, q.term);
          if (!hit) continue;
          results.push(hit);
          const more = i + j < names.length - 1 || page.truncated;
          if (results.length === q.n) return { results, next: more ? hit.repository : undefined };
        }
      }
      scanned += page.names.length;
      const last = page.names[page.names.length - 1];
      if (!page.truncated || last === undefined) return { results };
      cursor = last;
      if (scanned >= SCAN_LIMIT) return { results, next: Paths.searchName(last) };
    }
  }

  /** forgetExpired drops the documents read longer ago than the TTL from memory. */
  private forgetExpired(): void {
    const now = this.clock.now();
    for (const [name, { at }] of this.memory) if (now - at >= this.ttl) this.memory.delete(name);
  }

  private async readVersioned(
    repository: string,
  ): Promise<{ doc: SearchDocument; version: string | null }> {
    try {
      const v = await this.storage.cached.getVersioned(Paths.searchDoc(repository));
      return { doc: parseDocument(repository, v.data), version: v.version };
    } catch (err) {
      if (isNotFound(err)) return { doc: emptyDocument(repository), version: null };
      throw err;
    }
  }

  /**
   * reconcile is `doc` with what `change` names read again from storage: each named tag, and
   * each tag the document says points at a named manifest; each named manifest, and each
   * manifest a tag points at, present exactly when stored.
   */
  private async reconcile(
    source: ManifestSource,
    doc: SearchDocument,
    change: IndexChange,
  ): Promise<SearchDocument> {
    const name = doc.repository;
    const digests = new Set((change.digests ?? []).map((d) => d.value));
    const tags = new Set(change.tags ?? []);
    if (change.tagsOfDigests ?? true) {
      for (const [tag, d] of Object.entries(doc.tags)) if (digests.has(d)) tags.add(tag);
    }
    const next: SearchDocument = {
      ...doc,
      tags: { ...doc.tags },
      manifests: { ...doc.manifests },
    };
    const targets = await Promise.all([...tags].map((t) => this.readTag(name, t)));
    [...tags].forEach((t, i) => {
      const target = targets[i];
      if (target === undefined) delete next.tags[t];
      else {
        next.tags[t] = target;
        digests.add(target);
      }
    });
    await Promise.all(
      [...digests].map(async (d) => {
        const text = await this.readText(source, d, change.known?.get(d) ?? doc.manifests[d]);
        if (text === undefined) delete next.manifests[d];
        else next.manifests[d] = text;
      }),
    );
    for (const [t, d] of Object.entries(next.tags)) if (!(d in next.manifests)) delete next.tags[t];
    return next;
  }

  /** readTag is the digest `tag` points at in storage itself, or undefined. */
  private async readTag(repository: string, tag: string): Promise<string | undefined> {
    try {
      const v = (await this.storage.fresh.get(Paths.tag(repository, tag))).toString('utf8');
      return v === TOMBSTONE ? undefined : v;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /**
   * readText is the text of manifest `digest` when it is stored (asked of storage itself),
   * else undefined: `known` when given (a manifest's content never changes), else parsed
   * from the manifest.
   */
  private async readText(
    source: ManifestSource,
    digest: string,
    known: ImageText | undefined,
  ): Promise<ImageText | undefined> {
    const d = parseDigest(digest);
    try {
      await this.storage.fresh.stat(Paths.manifest(source.name, d));
      if (known !== undefined) return known;
      const m = await source.get(d);
      try {
        return imageText(parseManifest(m.body, m.mediaType).annotations);
      } catch {
        return {}; // stored, so parsed once; nothing to search in it now
      }
    } catch (err) {
      if (isNotFound(err) || (isRegistryError(err) && err.code === 'MANIFEST_UNKNOWN')) {
        return undefined;
      }
      throw err;
    }
  }
}

/** mergeChanges is one change naming everything `a` and `b` name. */
export function mergeChanges(a: IndexChange, b: IndexChange): IndexChange {
  const digests = new Map<string, Digest>();
  for (const d of [...(a.digests ?? []), ...(b.digests ?? [])]) digests.set(d.value, d);
  return {
    tags: [...new Set([...(a.tags ?? []), ...(b.tags ?? [])])],
    digests: [...digests.values()],
    known: new Map([...(a.known ?? []), ...(b.known ?? [])]),
    tagsOfDigests: readsTagsOfDigests(a) || readsTagsOfDigests(b),
  };
}

/** readsTagsOfDigests: whether `c` names a manifest whose tags must be read again. */
function readsTagsOfDigests(c: IndexChange): boolean {
  return (c.digests?.length ?? 0) > 0 && (c.tagsOfDigests ?? true);
}
