import { describe, expect, it } from 'vitest';
import { parseDigest } from '../../../server/registry/reference.js';
import { CachingDriver } from '../../../server/storage/cache.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { Paths } from '../../../server/storage/paths.js';

const TAG = Paths.tag('app', 'v1');

/** GatedDriver holds each get until `release` (a storage read in flight). */
class GatedDriver extends InMemoryDriver {
  gets = 0;
  private waiting: (() => void)[] = [];
  hold = false;
  failPut = false;
  override async get(key: string): Promise<Buffer> {
    this.gets++;
    const data = await super.get(key);
    if (this.hold) await new Promise<void>((r) => this.waiting.push(r));
    return data;
  }
  override async put(key: string, data: Buffer | string): Promise<void> {
    await super.put(key, data);
    if (this.failPut) throw new Error('connection reset after the write landed');
  }
  release(): void {
    for (const r of this.waiting.splice(0)) r();
  }
}

function cacheOver(inner: GatedDriver, announce: (key: string) => Promise<void>) {
  return new CachingDriver(inner, {
    immutable: Paths.immutable,
    ttlMs: 60_000,
    mutable: Paths.isTag,
    mutableTtlMs: 0,
    alone: () => 7,
    announce,
    announced: Paths.isTag,
    listable: Paths.listCached,
    listTtlMs: 0,
    maxBytes: 1 << 20,
  });
}

describe('CachingDriver announcements (ADR 0025)', () => {
  it('GIVEN a tag write WHEN it resolves THEN the key was announced once it had reached storage, before put resolved', async () => {
    const inner = new GatedDriver();
    const seen: string[] = [];
    const cache = cacheOver(inner, async (key) => {
      seen.push(`${key}=${(await inner.get(key)).toString()}`);
    });
    await cache.put(TAG, 'sha256:new');
    expect(seen).toEqual([`${TAG}=sha256:new`]);
  });

  it('GIVEN a manifest (named by digest) WHEN written THEN nothing is announced', async () => {
    const inner = new GatedDriver();
    const seen: string[] = [];
    const cache = cacheOver(inner, (key) => Promise.resolve(void seen.push(key)));
    await cache.put(Paths.manifest('app', parseDigest(`sha256:${'a'.repeat(64)}`)), '{}');
    expect(seen).toEqual([]);
  });

  it('GIVEN a tag write that fails after it may have landed WHEN it rejects THEN the key was announced first', async () => {
    const inner = new GatedDriver();
    inner.failPut = true;
    const seen: string[] = [];
    const cache = cacheOver(inner, (key) => Promise.resolve(void seen.push(key)));
    await expect(cache.put(TAG, 'sha256:new')).rejects.toThrow(/connection reset/);
    expect(seen).toEqual([TAG]);
  });

  it('GIVEN the announcement fails (no one could be told or revoked) WHEN writing a tag THEN the write is not acknowledged', async () => {
    const inner = new GatedDriver();
    const cache = cacheOver(inner, () => Promise.reject(new Error('unavailable')));
    await expect(cache.put(TAG, 'sha256:new')).rejects.toThrow('unavailable');
  });

  it('GIVEN a kept tag WHEN another replica tells this one (invalidate) THEN the next read goes to storage', async () => {
    const inner = new GatedDriver();
    await inner.put(TAG, 'sha256:old');
    const cache = cacheOver(inner, () => Promise.resolve());
    expect((await cache.get(TAG)).toString()).toBe('sha256:old');
    expect((await cache.get(TAG)).toString()).toBe('sha256:old');
    expect(inner.gets).toBe(1);
    await inner.put(TAG, 'sha256:new');
    cache.invalidate(TAG);
    expect((await cache.get(TAG)).toString()).toBe('sha256:new');
    expect(inner.gets).toBe(2);
  });

  it('GIVEN a read of a tag in flight that got the old value WHEN the move is told before it returns THEN the old value is not kept', async () => {
    const inner = new GatedDriver();
    await inner.put(TAG, 'sha256:old');
    const cache = cacheOver(inner, () => Promise.resolve());
    inner.hold = true;
    const reading = cache.get(TAG);
    await new Promise((r) => setTimeout(r, 5));
    await inner.put(TAG, 'sha256:new');
    cache.invalidate(TAG);
    inner.release();
    expect((await reading).toString()).toBe('sha256:old');
    inner.hold = false;
    expect((await cache.get(TAG)).toString()).toBe('sha256:new');
  });
});
