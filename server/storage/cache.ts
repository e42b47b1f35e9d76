import { systemClock, type Clock } from '../util/clock.js';
import type { Readable } from 'node:stream';
import type {
  ByteSource,
  ListOptions,
  ListPage,
  StorageDriver,
  Versioned,
  WriteOptions,
} from './driver.js';

export interface CacheOptions {
  /**
   * immutable says which keys hold content fixed by the key itself (descriptors and
   * manifests named by digest): their `get` results are cached, and so are the values this
   * process writes to them (unless the key changes meanwhile).
   */
  immutable: (key: string) => boolean;
  /** ttlMs bounds how long a cached object is trusted (deletes made by other replicas). */
  ttlMs: number;
  /**
   * mutable says which keys change in place (tags): concurrent reads of one share a storage
   * call, and a value is kept for `mutableTtlMs` (0: not kept, so a read that starts after a
   * write through any replica sees it).
   */
  mutable?: (key: string) => boolean;
  mutableTtlMs?: number;
  /**
   * alone is the number of the current period in which this process is the only one on the
   * storage (`Peers.aloneEpoch`), else undefined. Mutable values read in a period are
   * kept for as long as it lasts, and never served in another.
   */
  alone?: () => number | undefined;
  /**
   * beforeMutableWrite gates writes of mutable keys and of keys in a `listKept` folder
   * (`Peers.whenWritable`): a process that keeps them must have seen the writer first.
   */
  beforeMutableWrite?: () => Promise<void> | undefined;
  /**
   * announce tells the other processes that `key` changed, before the write (or delete) is
   * acknowledged (`Coherence.announce`, ADR 0025); called for the keys `announced` selects,
   * whether the change succeeded or failed (it may have landed).
   */
  announce?: (key: string) => Promise<void>;
  announced?: (key: string) => boolean;
  /** listable says which prefixes' list pages are cached (catalog, tags). */
  listable: (prefix: string) => boolean;
  /** listTtlMs bounds how stale a cached list page may be (writes by other replicas). */
  listTtlMs: number;
  /**
   * listKept says which listable prefixes have every change below them announced (the
   * catalog, a repository's tags): while `alone` gives a period, their pages are kept for as long as it
   * lasts, like tags, and never served in another; no TTL applies.
   */
  listKept?: (prefix: string) => boolean;
  /** maxBytes bounds the cached objects' bytes (least recently used go first). */
  maxBytes: number;
  /** clock reads the time entries are checked against their TTLs (default systemClock). */
  clock?: Clock;
  /** observe hears each cacheable lookup: whether it was answered from memory. */
  observe?: (kind: 'object' | 'tag' | 'list', hit: boolean) => void;
}

interface ObjectEntry {
  data: Buffer;
  at: number;
  /** alone: the period a mutable value was read in (kept while it lasts). */
  alone?: number;
}

interface PendingGet {
  promise: Promise<Buffer>;
  /** valid turns false when the key is written or deleted while it is read. */
  valid: boolean;
}

/** Bounds of the list cache: folders, and pages (start, size) per folder. */
const MAX_LISTED_PREFIXES = 1024;
const MAX_PAGES_PER_PREFIX = 64;

interface ListEntry {
  page: ListPage;
  at: number;
  refreshing?: boolean;
  /** alone: the period the page was read in (kept while it lasts). */
  alone?: number;
}

/**
 * CachingDriver decorates a driver with an in-process cache of immutable small objects
 * and of list pages. What this process writes or deletes through it is dropped from the
 * cache at once (an immutable object it wrote is then kept as if read back); what other
 * replicas change is seen after at most `ttlMs` (objects) or `listTtlMs` (list pages).
 * Concurrent reads of one key share one storage call.
 *
 * Tags (`mutable`) are not kept by default, only read once for all concurrent readers;
 * with `alone`, they are kept while this process is the only one on the storage (ADR 0012).
 *
 * It is a plain decorator: it keeps the driver contract, and nothing needs to know it is
 * there. Readers choose between it and the driver it decorates through `StorageViews`
 * (`server/storage/views.ts`).
 */
export class CachingDriver implements StorageDriver {
  readonly name: string;
  private readonly objects = new Map<string, ObjectEntry>();
  private readonly pending = new Map<string, PendingGet>();
  private readonly lists = new Map<string, Map<string, ListEntry>>();
  private readonly listLoads = new Map<string, Set<Mark>>();
  /**
   * storing: writes of immutable keys under way whose value is kept once they succeed; an
   * invalidation of the key (or of a folder above it) meanwhile makes the mark invalid, and
   * then nothing is kept.
   */
  private readonly storing = new Map<string, Set<Mark>>();
  private bytes = 0;
  private readonly clock: Clock;

  constructor(
    readonly inner: StorageDriver,
    private readonly opts: CacheOptions,
  ) {
    this.name = inner.name;
    this.clock = opts.clock ?? systemClock;
    if (inner.presignGet) this.presignGet = (key, s) => inner.presignGet!(key, s);
    if (inner.openSource) this.openSource = (key, o, n) => inner.openSource!(key, o, n);
    if (inner.abortStaleMultipartUploads)
      this.abortStaleMultipartUploads = (d) => inner.abortStaleMultipartUploads!(d);
    if (inner.close) this.close = () => inner.close!();
  }

  presignGet?(key: string, expirySeconds: number): Promise<string>;
  openSource?(key: string, offset: number, length: number): Promise<ByteSource | undefined>;
  abortStaleMultipartUploads?(olderThan: Date): Promise<number>;
  close?(): Promise<void>;

  get(key: string): Promise<Buffer> {
    let kind: 'object' | 'tag';
    let ttl: number;
    let alone: number | undefined;
    if (this.opts.immutable(key) && this.opts.ttlMs > 0) {
      kind = 'object';
      ttl = this.opts.ttlMs;
    } else if (this.opts.mutable?.(key)) {
      kind = 'tag';
      ttl = this.opts.mutableTtlMs ?? 0;
      alone = this.opts.alone?.();
    } else {
      return this.inner.get(key);
    }
    const hit = this.objects.get(key);
    if (hit && ((alone !== undefined && hit.alone === alone) || this.clock.now() - hit.at < ttl)) {
      this.objects.delete(key);
      this.objects.set(key, hit);
      this.opts.observe?.(kind, true);
      return Promise.resolve(hit.data);
    }
    if (hit) this.drop(key);
    const shared = this.pending.get(key);
    this.opts.observe?.(kind, shared !== undefined);
    if (shared) return shared.promise;
    const load: PendingGet = { promise: this.inner.get(key), valid: true };
    this.pending.set(key, load);
    const at = this.clock.now();
    load.promise.then(
      (data) => {
        if (this.pending.get(key) === load) this.pending.delete(key);
        // Stored only if nothing wrote or deleted the key while it was read, and (kept for
        // the period) only if that period lasted through the read.
        if (!load.valid) return;
        if (alone !== undefined && this.opts.alone?.() === alone) this.store(key, data, at, alone);
        else if (ttl > 0) this.store(key, data, at);
      },
      () => {
        if (this.pending.get(key) === load) this.pending.delete(key);
      },
    );
    return load.promise;
  }

  private store(key: string, data: Buffer, at: number, alone?: number): void {
    if (data.length > this.opts.maxBytes / 16) return;
    this.drop(key);
    this.objects.set(key, alone === undefined ? { data, at } : { data, at, alone });
    this.bytes += data.length;
    for (const [k, e] of this.objects) {
      if (this.bytes <= this.opts.maxBytes) break;
      this.objects.delete(k);
      this.bytes -= e.data.length;
    }
  }

  private drop(key: string): void {
    const e = this.objects.get(key);
    if (!e) return;
    this.objects.delete(key);
    this.bytes -= e.data.length;
  }

  /**
   * invalidate forgets `key` (and, for a prefix ending in `/`, everything below it) and
   * every list page it may appear in: those of each parent folder.
   */
  invalidate(key: string): void {
    if (key.endsWith('/')) return this.invalidateBelow(key);
    for (const mark of this.storing.get(key) ?? []) mark.valid = false;
    const load = this.pending.get(key);
    if (load) {
      load.valid = false;
      this.pending.delete(key);
    }
    this.drop(key);
    // List prefixes are '' or end with '/' (the driver contract): those of its folders.
    for (let i = -1; ;) {
      const folder = key.slice(0, i + 1);
      this.lists.delete(folder);
      for (const l of this.listLoads.get(folder) ?? []) l.valid = false;
      i = key.indexOf('/', i + 1);
      if (i < 0) break;
    }
  }

  private invalidateBelow(prefix: string): void {
    for (const [k, marks] of this.storing) {
      if (k.startsWith(prefix)) for (const mark of marks) mark.valid = false;
    }
    for (const [k, load] of this.pending) {
      if (!k.startsWith(prefix)) continue;
      load.valid = false;
      this.pending.delete(k);
    }
    for (const k of [...this.objects.keys()]) if (k.startsWith(prefix)) this.drop(k);
    const affected = (p: string) => prefix.startsWith(p) || p.startsWith(prefix);
    for (const p of [...this.lists.keys()]) if (affected(p)) this.lists.delete(p);
    for (const [p, loads] of this.listLoads) {
      if (affected(p)) for (const l of loads) l.valid = false;
    }
  }

  /**
   * writing runs a change of `key` (or of everything below a prefix) with the cache
   * dropped before it (no read starting meanwhile stores the old value) and after it. With
   * `kept`, the value it names for a succeeded write of an immutable key is then cached, as a
   * read of it would be, unless the key was written, deleted or invalidated meanwhile.
   */
  private async writing<T>(
    key: string,
    change: () => Promise<T>,
    kept?: (result: T) => Buffer | string | undefined,
  ): Promise<T> {
    if (this.opts.beforeMutableWrite && this.gated(key)) await this.opts.beforeMutableWrite();
    this.invalidate(key);
    const announce =
      this.opts.announce && this.opts.announced?.(key) ? this.opts.announce : undefined;
    const at = this.clock.now();
    const mark =
      kept && this.opts.immutable(key) && this.opts.ttlMs > 0
        ? enlist(this.storing, key)
        : undefined;
    let result: T;
    try {
      result = await change();
    } catch (err) {
      if (mark) delist(this.storing, key, mark);
      this.invalidate(key);
      await announce?.(key).catch(() => undefined);
      throw err;
    }
    const untouched = mark?.valid === true;
    if (mark) delist(this.storing, key, mark);
    this.invalidate(key);
    const value = untouched ? kept?.(result) : undefined;
    if (value !== undefined) this.store(key, Buffer.from(value), at);
    await announce?.(key);
    return result;
  }

  /** gated: a write of `key` changes what a process may keep (a tag, a kept list). */
  private gated(key: string): boolean {
    if (this.opts.mutable?.(key)) return true;
    return this.opts.listKept?.(key.slice(0, key.lastIndexOf('/') + 1)) === true;
  }

  put(key: string, data: Buffer | string): Promise<void> {
    return this.writing(
      key,
      () => this.inner.put(key, data),
      () => data,
    );
  }

  putIfAbsent(key: string, data: Buffer | string): Promise<boolean> {
    // Only a write that stored `data` knows the value: an existing one may differ.
    return this.writing(
      key,
      () => this.inner.putIfAbsent(key, data),
      (stored) => (stored ? data : undefined),
    );
  }

  getVersioned(key: string): Promise<Versioned> {
    return this.inner.getVersioned(key);
  }

  putIfVersion(key: string, data: Buffer | string, expected: string | null): Promise<boolean> {
    return this.writing(key, () => this.inner.putIfVersion(key, data, expected));
  }

  writeStream(
    key: string,
    source: Readable,
    sizeHint?: number,
    opts?: WriteOptions,
  ): Promise<number> {
    return this.writing(key, () => this.inner.writeStream(key, source, sizeHint, opts));
  }

  read(key: string, offset?: number, length?: number): Promise<Readable> {
    return this.inner.read(key, offset, length);
  }

  stat(key: string): Promise<{ size: number; modified: Date }> {
    return this.inner.stat(key);
  }

  async list(prefix: string, opts: ListOptions = {}): Promise<ListPage> {
    const period = this.opts.listKept?.(prefix) ? this.opts.alone?.() : undefined;
    if (!this.opts.listable(prefix) || (this.opts.listTtlMs <= 0 && period === undefined)) {
      return this.inner.list(prefix, opts);
    }
    const id = `${opts.startAfter ?? ''}\n${opts.limit ?? ''}`;
    const hit = this.lists.get(prefix)?.get(id);
    if (period !== undefined) {
      // Kept for the period: every change below the prefix reaches `invalidate` first.
      if (hit?.alone === period) {
        this.opts.observe?.('list', true);
        return copyPage(hit.page);
      }
      this.opts.observe?.('list', false);
      return copyPage(await this.loadList(prefix, id, opts, period));
    }
    const age = hit ? this.clock.now() - hit.at : Infinity;
    if (hit && age < this.opts.listTtlMs) {
      this.opts.observe?.('list', true);
      // Refresh ahead in the background past half the TTL, so that a page read steadily
      // never waits for storage and is never older than the TTL.
      if (age >= this.opts.listTtlMs / 2 && !hit.refreshing) {
        hit.refreshing = true;
        this.loadList(prefix, id, opts).catch(() => {
          hit.refreshing = false;
        });
      }
      return copyPage(hit.page);
    }
    this.opts.observe?.('list', false);
    return copyPage(await this.loadList(prefix, id, opts));
  }

  private async loadList(
    prefix: string,
    id: string,
    opts: ListOptions,
    period?: number,
  ): Promise<ListPage> {
    const load = enlist(this.listLoads, prefix);
    const at = this.clock.now();
    try {
      const page = await this.inner.list(prefix, opts);
      // A write below `prefix` while listing may be missing from the page: not stored.
      if (load.valid) {
        let pages = this.lists.get(prefix);
        if (!pages) {
          if (this.lists.size >= MAX_LISTED_PREFIXES)
            this.lists.delete(this.lists.keys().next().value!);
          pages = new Map<string, ListEntry>();
          this.lists.set(prefix, pages);
        }
        if (pages.size >= MAX_PAGES_PER_PREFIX) pages.delete(pages.keys().next().value!);
        // Kept for the period only if it lasted through the read.
        const kept = period !== undefined && this.opts.alone?.() === period;
        pages.set(id, kept ? { page, at, alone: period } : { page, at });
      }
      return page;
    } finally {
      delist(this.listLoads, prefix, load);
    }
  }

  delete(key: string): Promise<void> {
    return this.writing(key, () => this.inner.delete(key));
  }

  deletePrefix(prefix: string): Promise<void> {
    return this.writing(prefix, () => this.inner.deletePrefix(prefix));
  }

  ping(): Promise<void> {
    return this.inner.ping();
  }
}

/** Mark is a read or write under way; it turns invalid when its key changes meanwhile. */
interface Mark {
  valid: boolean;
}

/** enlist registers a new valid mark for `key` in `marks`. */
function enlist(marks: Map<string, Set<Mark>>, key: string): Mark {
  const mark = { valid: true };
  let set = marks.get(key);
  if (!set) marks.set(key, (set = new Set()));
  set.add(mark);
  return mark;
}

/** delist removes a mark `enlist` gave, and the key's set once it is empty. */
function delist(marks: Map<string, Set<Mark>>, key: string, mark: Mark): void {
  const set = marks.get(key);
  if (!set) return;
  set.delete(mark);
  if (set.size === 0) marks.delete(key);
}

function copyPage(p: ListPage): ListPage {
  return { names: [...p.names], truncated: p.truncated };
}
