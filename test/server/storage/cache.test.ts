import { describe, expect, it } from 'vitest';
import { CachingDriver } from '../../../server/storage/cache.js';
import type { ListOptions, ListPage } from '../../../server/storage/driver.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { Paths } from '../../../server/storage/paths.js';
import { cachedViews, directViews } from '../../../server/storage/views.js';
import { ManualClock } from '../../support/clock.js';

/** CountingDriver is an in-memory driver that counts gets and lists and can hold them. */
class CountingDriver extends InMemoryDriver {
  gets = 0;
  lists = 0;
  hold?: Promise<void>;

  override async get(key: string): Promise<Buffer> {
    this.gets++;
    const data = await super.get(key);
    if (this.hold) await this.hold;
    return data;
  }

  override async list(prefix: string, opts?: ListOptions): Promise<ListPage> {
    this.lists++;
    const page = await super.list(prefix, opts);
    if (this.hold) await this.hold;
    return page;
  }
}

const LAYER = 'repositories/app/_layers/sha256/' + 'a'.repeat(64);
const TAG = 'repositories/app/_tags/latest';
const TAGS = 'repositories/app/_tags/';

function setup(
  opts: {
    ttlMs?: number;
    tagTtlMs?: number;
    listTtlMs?: number;
    maxBytes?: number;
    alone?: () => number | undefined;
    beforeMutableWrite?: () => Promise<void> | undefined;
    listKept?: (prefix: string) => boolean;
  } = {},
) {
  const clock = new ManualClock({ start: 1_000_000 });
  const inner = new CountingDriver();
  const seen: string[] = [];
  const cache = new CachingDriver(inner, {
    immutable: Paths.immutable,
    ttlMs: opts.ttlMs ?? 60_000,
    mutable: Paths.isTag,
    mutableTtlMs: opts.tagTtlMs ?? 0,
    listable: Paths.listCached,
    listTtlMs: opts.listTtlMs ?? 5_000,
    maxBytes: opts.maxBytes ?? 1 << 20,
    clock,
    observe: (kind, hit) => seen.push(`${kind}:${hit ? 'hit' : 'miss'}`),
    alone: opts.alone,
    beforeMutableWrite: opts.beforeMutableWrite,
    listKept: opts.listKept,
  });
  return { inner, cache, seen, advance: (ms: number) => clock.advance(ms) };
}

/** gate returns a promise and the function that settles it. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

describe('CachingDriver: immutable objects', () => {
  it('GIVEN a descriptor read once WHEN read again within the TTL THEN storage is not asked again', async () => {
    const { inner, cache, seen } = setup();
    await inner.put(LAYER, 'desc');
    expect((await cache.get(LAYER)).toString()).toBe('desc');
    expect((await cache.get(LAYER)).toString()).toBe('desc');
    expect(inner.gets).toBe(1);
    expect(seen).toEqual(['object:miss', 'object:hit']);
  });

  it('GIVEN a cached descriptor deleted by another replica WHEN the TTL passes THEN storage is asked and the absence seen', async () => {
    const { inner, cache, advance } = setup({ ttlMs: 1000 });
    await inner.put(LAYER, 'desc');
    await cache.get(LAYER);
    await inner.delete(LAYER);
    expect((await cache.get(LAYER)).toString()).toBe('desc');
    advance(1000);
    await expect(cache.get(LAYER)).rejects.toMatchObject({ name: 'PathNotFoundError' });
    expect(inner.gets).toBe(2);
  });

  it('GIVEN a cached descriptor WHEN this process rewrites or deletes it THEN the next read sees the change at once', async () => {
    const { inner, cache } = setup();
    await cache.put(LAYER, 'one');
    await cache.get(LAYER);
    await cache.put(LAYER, 'two');
    expect((await cache.get(LAYER)).toString()).toBe('two');
    await cache.delete(LAYER);
    await expect(cache.get(LAYER)).rejects.toMatchObject({ name: 'PathNotFoundError' });
    await cache.put(LAYER, 'three');
    await cache.get(LAYER);
    await cache.deletePrefix('repositories/app/');
    await expect(cache.get(LAYER)).rejects.toMatchObject({ name: 'PathNotFoundError' });
    // What this process wrote is kept as if read back: only the reads after the deletes
    // reach storage.
    expect(inner.gets).toBe(2);
  });

  it('GIVEN a descriptor or manifest written through this process WHEN read THEN memory answers with what was written', async () => {
    const { inner, cache, seen } = setup();
    const manifest = 'repositories/app/_manifests/revisions/sha256/' + 'b'.repeat(64);
    await cache.put(LAYER, 'desc');
    expect(await cache.putIfAbsent(manifest, Buffer.from('{"m":1}'))).toBe(true);
    expect((await cache.get(LAYER)).toString()).toBe('desc');
    expect((await cache.get(manifest)).toString()).toBe('{"m":1}');
    expect(inner.gets).toBe(0);
    expect(seen).toEqual(['object:hit', 'object:hit']);
  });

  it('GIVEN an existing object WHEN putIfAbsent does not write THEN the value asked for is not kept', async () => {
    const { inner, cache } = setup();
    await inner.put(LAYER, 'first');
    expect(await cache.putIfAbsent(LAYER, 'second')).toBe(false);
    expect((await cache.get(LAYER)).toString()).toBe('first');
    expect(inner.gets).toBe(1);
  });

  it('GIVEN a write of a tag, an upload key or with no TTL WHEN read back THEN storage answers', async () => {
    const { inner, cache } = setup();
    await cache.put(TAG, 'sha256:1');
    await cache.put('uploads/u-1/state', '{}');
    await cache.get(TAG);
    await cache.get('uploads/u-1/state');
    expect(inner.gets).toBe(2);
    const off = setup({ ttlMs: 0 });
    await off.cache.put(LAYER, 'desc');
    await off.cache.get(LAYER);
    expect(off.inner.gets).toBe(1);
  });

  it('GIVEN a write in flight WHEN the key is written again, deleted or its folder invalidated meanwhile THEN neither value is kept', async () => {
    for (const meanwhile of [
      (c: CachingDriver) => c.put(LAYER, 'other'),
      (c: CachingDriver) => c.delete(LAYER),
      (c: CachingDriver) => Promise.resolve(c.invalidate('repositories/app/')),
      (c: CachingDriver) => Promise.resolve(cachedViews(c).invalidate(LAYER)),
    ]) {
      const { inner, cache } = setup();
      /** Held holds the first put in storage until `open`. */
      const held = gate();
      const put = inner.put.bind(inner);
      let first = true;
      inner.put = async (key, data) => {
        const wait = first;
        first = false;
        await put(key, data);
        if (wait) await held.wait;
      };
      const writing = cache.put(LAYER, 'mine');
      await new Promise((r) => setImmediate(r));
      await meanwhile(cache);
      held.open();
      await writing;
      const before = inner.gets;
      await cache.get(LAYER).catch(() => undefined);
      expect(inner.gets, String(meanwhile)).toBe(before + 1);
    }
  });

  it('GIVEN a cached descriptor WHEN invalidated through the views (storage said it is gone) THEN the next read asks storage', async () => {
    const { inner, cache } = setup();
    await inner.put(LAYER, 'desc');
    await cache.get(LAYER);
    cachedViews(cache).invalidate(LAYER);
    await cache.get(LAYER);
    expect(inner.gets).toBe(2);
    expect(cachedViews(cache).fresh).toBe(inner);
    expect(directViews(inner).fresh).toBe(inner);
  });

  it('GIVEN a tag (mutable) and no tag TTL WHEN read twice in a row THEN storage answers both times, so another replica’s move is seen at once', async () => {
    const { inner, cache, seen } = setup();
    await inner.put(TAG, 'sha256:x');
    await cache.get(TAG);
    await inner.put(TAG, 'sha256:y');
    expect((await cache.get(TAG)).toString()).toBe('sha256:y');
    expect(inner.gets).toBe(2);
    expect(seen).toEqual(['tag:miss', 'tag:miss']);
  });

  it('GIVEN a tag and no tag TTL WHEN many read it at once THEN one storage call serves them', async () => {
    const { inner, cache, seen } = setup();
    await inner.put(TAG, 'sha256:x');
    const g = gate();
    inner.hold = g.wait;
    const reads = Array.from({ length: 20 }, () => cache.get(TAG));
    g.open();
    for (const b of await Promise.all(reads)) expect(b.toString()).toBe('sha256:x');
    expect(inner.gets).toBe(1);
    expect(seen.filter((x) => x === 'tag:hit')).toHaveLength(19);
  });

  it('GIVEN a tag read in flight WHEN this process moves the tag THEN a read after the move does not share the old read', async () => {
    const { inner, cache } = setup();
    await inner.put(TAG, 'sha256:x');
    const g = gate();
    inner.hold = g.wait;
    const before = cache.get(TAG);
    inner.hold = undefined;
    await cache.put(TAG, 'sha256:y');
    expect((await cache.get(TAG)).toString()).toBe('sha256:y');
    g.open();
    expect((await before).toString()).toBe('sha256:x');
  });

  it('GIVEN a tag TTL WHEN the tag moves through another replica THEN the old value is served until the TTL, a local move at once', async () => {
    const { inner, cache, advance } = setup({ tagTtlMs: 1000 });
    await inner.put(TAG, 'sha256:x');
    await cache.get(TAG);
    await inner.put(TAG, 'sha256:y');
    expect((await cache.get(TAG)).toString()).toBe('sha256:x');
    advance(1000);
    expect((await cache.get(TAG)).toString()).toBe('sha256:y');
    await cache.put(TAG, 'sha256:z');
    expect((await cache.get(TAG)).toString()).toBe('sha256:z');
  });

  it('GIVEN a key neither immutable nor a tag (an upload session) WHEN read twice THEN storage answers both times', async () => {
    const { inner, cache, seen } = setup();
    await inner.put('uploads/u1', '{}');
    await cache.get('uploads/u1');
    await cache.get('uploads/u1');
    expect(inner.gets).toBe(2);
    expect(seen).toEqual([]);
  });

  it('GIVEN many concurrent reads of one key WHEN storage is slow THEN one storage call serves them all', async () => {
    const { inner, cache } = setup();
    await inner.put(LAYER, 'desc');
    const g = gate();
    inner.hold = g.wait;
    const reads = Array.from({ length: 50 }, () => cache.get(LAYER));
    g.open();
    for (const b of await Promise.all(reads)) expect(b.toString()).toBe('desc');
    expect(inner.gets).toBe(1);
  });

  it('GIVEN a read in flight WHEN the key is deleted meanwhile THEN the old value is not cached', async () => {
    const { inner, cache } = setup();
    await inner.put(LAYER, 'old');
    const g = gate();
    inner.hold = g.wait;
    const reading = cache.get(LAYER);
    await cache.delete(LAYER);
    g.open();
    inner.hold = undefined;
    expect((await reading).toString()).toBe('old');
    await expect(cache.get(LAYER)).rejects.toMatchObject({ name: 'PathNotFoundError' });
  });

  it('GIVEN more bytes than the budget WHEN read THEN the least recently used go first', async () => {
    const { inner, cache } = setup({ maxBytes: 16 * 100 });
    const key = (i: number) => `blobs/sha256/aa/${String(i).padStart(64, '0')}`;
    for (let i = 0; i < 20; i++) await inner.put(key(i), Buffer.alloc(100, i));
    for (let i = 0; i < 20; i++) await cache.get(key(i));
    const before = inner.gets;
    await cache.get(key(19));
    expect(inner.gets).toBe(before);
    await cache.get(key(0));
    expect(inner.gets).toBe(before + 1);
  });
});

describe('CachingDriver: tags while this process is alone on the storage', () => {
  it('GIVEN an alone period WHEN a tag is read again THEN storage is asked once, and a local move is seen at once', async () => {
    const { inner, cache, seen } = setup({ alone: () => 7 });
    await inner.put(TAG, 'sha256:x');
    await cache.get(TAG);
    await cache.get(TAG);
    expect(inner.gets).toBe(1);
    expect(seen).toEqual(['tag:miss', 'tag:hit']);
    await cache.put(TAG, 'sha256:y');
    expect((await cache.get(TAG)).toString()).toBe('sha256:y');
  });

  it('GIVEN a tag kept in one period WHEN that period ends THEN it is read from storage again, also when a new period starts', async () => {
    let period: number | undefined = 1;
    const { inner, cache } = setup({ alone: () => period });
    await inner.put(TAG, 'sha256:x');
    await cache.get(TAG);
    await inner.put(TAG, 'sha256:y'); // moved by another process, which ended the period
    period = undefined;
    expect((await cache.get(TAG)).toString()).toBe('sha256:y');
    await inner.put(TAG, 'sha256:z');
    period = 2;
    expect((await cache.get(TAG)).toString()).toBe('sha256:z');
    expect(inner.gets).toBe(3);
  });

  it('GIVEN a tag read started in one period WHEN the period changes before it returns THEN the value is not kept', async () => {
    let period: number | undefined = 1;
    const { inner, cache } = setup({ alone: () => period });
    await inner.put(TAG, 'sha256:x');
    const g = gate();
    inner.hold = g.wait;
    const read = cache.get(TAG);
    period = 2;
    g.open();
    await read;
    inner.hold = undefined;
    await cache.get(TAG);
    expect(inner.gets).toBe(2);
  });

  it('GIVEN a write gate WHEN a tag is written or deleted THEN the write waits for it; other keys do not', async () => {
    let g = gate();
    const { inner, cache } = setup({ beforeMutableWrite: () => g.wait });
    let done = false;
    const write = cache.put(TAG, 'sha256:x').then(() => (done = true));
    await cache.put('uploads/u1', '{}');
    await new Promise((r) => setImmediate(r));
    expect(done).toBe(false);
    await expect(inner.stat(TAG)).rejects.toThrow();
    g.open();
    await write;
    expect((await inner.get(TAG)).toString()).toBe('sha256:x');
    g = gate();
    const del = cache.delete(TAG);
    await new Promise((r) => setImmediate(r));
    await expect(inner.stat(TAG)).resolves.toBeDefined();
    g.open();
    await del;
    await expect(inner.stat(TAG)).rejects.toThrow();
  });

  it('GIVEN a write gate that refuses WHEN a tag is written THEN the write fails and storage is unchanged', async () => {
    const { inner, cache } = setup({
      beforeMutableWrite: () => Promise.reject(new Error('not joined')),
    });
    await expect(cache.put(TAG, 'sha256:x')).rejects.toThrow('not joined');
    await expect(inner.stat(TAG)).rejects.toThrow();
  });
});

describe('CachingDriver: tag lists kept for a period (ADR 0025 addendum)', () => {
  it('GIVEN a period WHEN a tag list is read again long after the list TTL THEN storage is asked once', async () => {
    const { inner, cache, seen, advance } = setup({
      alone: () => 3,
      listKept: Paths.isTagsRoot,
      listTtlMs: 1000,
    });
    await inner.put(TAG, 'x');
    expect((await cache.list(TAGS, { limit: 10 })).names).toEqual(['latest']);
    advance(3_600_000);
    expect((await cache.list(TAGS, { limit: 10 })).names).toEqual(['latest']);
    expect(inner.lists).toBe(1);
    expect(seen).toEqual(['list:miss', 'list:hit']);
  });

  it('GIVEN a kept tag list WHEN a tag below it is invalidated (a change announced by another process) THEN the next list reads storage and shows it', async () => {
    const { inner, cache } = setup({ alone: () => 3, listKept: Paths.isTagsRoot, listTtlMs: 0 });
    await inner.put(TAG, 'x');
    await cache.list(TAGS);
    await inner.put(TAGS + 'v2', 'y');
    cache.invalidate(TAGS + 'v2');
    expect((await cache.list(TAGS)).names).toEqual(['latest', 'v2']);
    await inner.delete(TAG);
    cache.invalidate(TAG);
    expect((await cache.list(TAGS)).names).toEqual(['v2']);
    await inner.deletePrefix('repositories/app/');
    cache.invalidate('repositories/app/');
    expect((await cache.list(TAGS)).names).toEqual([]);
    expect(inner.lists).toBe(4);
  });

  it('GIVEN a tag list kept in one period WHEN the period ends or another starts THEN storage is read again; a list that outlasts its period is not kept', async () => {
    let period: number | undefined = 1;
    const { inner, cache } = setup({
      alone: () => period,
      listKept: Paths.isTagsRoot,
      listTtlMs: 0,
    });
    await inner.put(TAG, 'x');
    await cache.list(TAGS);
    await inner.put(TAGS + 'v2', 'y'); // by a process that was never told of (the period ends)
    period = undefined;
    expect((await cache.list(TAGS)).names).toEqual(['latest', 'v2']);
    period = 2;
    await inner.put(TAGS + 'v3', 'z');
    expect((await cache.list(TAGS)).names).toEqual(['latest', 'v2', 'v3']);
    const g = gate();
    inner.hold = g.wait;
    await inner.put(TAGS + 'v4', 'w');
    const listing = cache.list(TAGS, { limit: 100 });
    period = 3;
    g.open();
    await listing;
    inner.hold = undefined;
    // Read in period 2, finished in period 3: the next list in period 3 reads storage.
    expect((await cache.list(TAGS, { limit: 100 })).names).toEqual(['latest', 'v2', 'v3', 'v4']);
    expect(inner.lists).toBe(5);
  });

  it('GIVEN a period WHEN a folder listKept does not name (here the catalog) is listed THEN the list TTL still applies', async () => {
    const { inner, cache, advance } = setup({
      alone: () => 3,
      listKept: Paths.isTagsRoot,
      listTtlMs: 1000,
    });
    await inner.put('catalog/app', '{}');
    await cache.list('catalog/');
    await inner.put('catalog/web', '{}');
    advance(1000);
    expect((await cache.list('catalog/')).names).toEqual(['app', 'web']);
  });
});

describe('CachingDriver: the write gate and kept lists', () => {
  it('GIVEN the catalog kept WHEN a repository marker is written THEN the write waits for the gate, as a tag write does', async () => {
    const g = gate();
    let asked = 0;
    const { inner, cache } = setup({
      alone: () => 1,
      listKept: (p) => p === 'catalog/' || Paths.isTagsRoot(p),
      beforeMutableWrite: () => {
        asked++;
        return g.wait;
      },
    });
    const write = cache.put(Paths.catalogEntry('team/web'), '');
    await new Promise((r) => setImmediate(r));
    expect(await inner.list('catalog/')).toEqual({ names: [], truncated: false });
    g.open();
    await write;
    expect((await cache.list('catalog/')).names).toEqual(['team,web']);
    await cache.put(LAYER, 'x'); // neither a tag nor in a kept folder: not gated
    expect(asked).toBe(1);
  });
});

describe('CachingDriver: list pages', () => {
  it('GIVEN a tag list read WHEN read again within the list TTL THEN storage is not asked again', async () => {
    const { inner, cache, seen } = setup();
    await inner.put(TAG, 'x');
    expect((await cache.list(TAGS, { limit: 10 })).names).toEqual(['latest']);
    expect((await cache.list(TAGS, { limit: 10 })).names).toEqual(['latest']);
    expect(inner.lists).toBe(1);
    expect(seen).toEqual(['list:miss', 'list:hit']);
  });

  it('GIVEN a cached tag list WHEN this process adds or removes a tag THEN the next list shows it at once', async () => {
    const { cache } = setup();
    await cache.put(TAG, 'x');
    await cache.list(TAGS);
    await cache.put(TAGS + 'v2', 'y');
    expect((await cache.list(TAGS)).names).toEqual(['latest', 'v2']);
    await cache.delete(TAG);
    expect((await cache.list(TAGS)).names).toEqual(['v2']);
    await cache.deletePrefix('repositories/app/');
    expect((await cache.list(TAGS)).names).toEqual([]);
  });

  it('GIVEN a cached page WHEN another replica adds a tag THEN it shows within the list TTL, refreshed ahead without waiting', async () => {
    const { inner, cache, advance } = setup({ listTtlMs: 1000 });
    await inner.put(TAG, 'x');
    await cache.list(TAGS);
    await inner.put(TAGS + 'v2', 'y');
    advance(600);
    // Past half the TTL: answered from memory, and refreshed in the background.
    expect((await cache.list(TAGS)).names).toEqual(['latest']);
    await new Promise((r) => setImmediate(r));
    expect(inner.lists).toBe(2);
    expect((await cache.list(TAGS)).names).toEqual(['latest', 'v2']);
    await inner.put(TAGS + 'v3', 'z');
    advance(1000);
    expect((await cache.list(TAGS)).names).toEqual(['latest', 'v2', 'v3']);
  });

  it('GIVEN a cached catalog page WHEN this process writes a key two folders below it THEN the next list shows the new folder at once', async () => {
    const { inner, cache } = setup();
    await inner.put('catalog/app', '{}');
    expect((await cache.list('catalog/')).names).toEqual(['app']);
    await cache.put('catalog/team/web', '{}');
    expect((await cache.list('catalog/')).names).toEqual(['app', 'team']);
    await cache.delete('catalog/team/web');
    expect((await cache.list('catalog/')).names).toEqual(['app']);
    expect(inner.lists).toBe(3);
  });

  it('GIVEN a list in flight WHEN a tag is written meanwhile THEN the page read before it is not cached', async () => {
    const { inner, cache } = setup();
    await inner.put(TAG, 'x');
    const g = gate();
    inner.hold = g.wait;
    const listing = cache.list(TAGS);
    await cache.put(TAGS + 'v2', 'y');
    g.open();
    inner.hold = undefined;
    expect((await listing).names).toEqual(['latest']);
    expect((await cache.list(TAGS)).names).toEqual(['latest', 'v2']);
    expect(inner.lists).toBe(2);
  });

  it('GIVEN a folder that is not a catalog or tag list WHEN listed twice THEN storage answers both times', async () => {
    const { inner, cache } = setup();
    await inner.put('uploads/u1', '{}');
    await cache.list('uploads/');
    await cache.list('uploads/');
    expect(inner.lists).toBe(2);
  });

  it('GIVEN a returned page WHEN the caller changes it THEN the cached page is unchanged', async () => {
    const { inner, cache } = setup();
    await inner.put(TAG, 'x');
    (await cache.list(TAGS)).names.push('bogus');
    expect((await cache.list(TAGS)).names).toEqual(['latest']);
  });
});
