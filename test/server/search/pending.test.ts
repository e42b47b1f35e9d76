import { describe, expect, it } from 'vitest';
import { Registry } from '../../../server/registry/repository.js';
import type { Digest } from '../../../server/registry/reference.js';
import { SearchIndex } from '../../../server/search/index.js';
import { PENDING_ORPHAN_MS, PENDING_REFRESH_MS } from '../../../server/search/pending.js';
import { repairStale } from '../../../server/search/reindex.js';
import { indexingRepository } from '../../../server/search/repository.js';
import { listAll } from '../../../server/storage/driver.js';
import { Paths } from '../../../server/storage/paths.js';
import { directViews } from '../../../server/storage/views.js';
import { image } from '../../support/image.js';
import { storedDocument } from '../../support/search.js';
import { ClockedDriver } from '../../support/store.js';

/**
 * Gated holds every search document write that starts while `closed` is set until `open()`;
 * a write held when the test ends never lands (its process "died"). `failPending` makes
 * writes of pending marks fail; `failDocs` makes document writes fail.
 */
class Gated extends ClockedDriver {
  closed = false;
  failPending = false;
  failDocs = false;
  private waiting: (() => void)[] = [];

  open(): void {
    this.closed = false;
    for (const go of this.waiting.splice(0)) go();
  }

  override async putIfVersion(key: string, data: Buffer | string, expected: string | null) {
    if (key.startsWith(Paths.searchRoot())) {
      if (this.failDocs) throw new Error('storage down');
      if (this.closed) await new Promise<void>((go) => this.waiting.push(go));
    }
    return super.putIfVersion(key, data, expected);
  }

  override async put(key: string, data: Buffer | string): Promise<void> {
    if (this.failPending && key.startsWith(Paths.searchPendingRoot())) {
      throw new Error('storage down');
    }
    return super.put(key, data);
  }
}

function process(driver: Gated) {
  const seen: string[] = [];
  const search = new SearchIndex(directViews(driver), {
    ttlMillis: 0,
    clock: driver.clock,
    observe: (what) => seen.push(what),
  });
  const registry = new Registry(directViews(driver), {
    allowSparse: true,
    pause: () => Promise.resolve(),
    decorate: (repo) => indexingRepository(repo, search),
  });
  return { search, registry, seen };
}

const pendingMarks = (driver: Gated) => listAll(driver, Paths.searchPendingRoot());

/** pushed stores one manifest in `name` through `registry` and returns its digest. */
async function pushed(registry: Registry, name: string): Promise<Digest> {
  const img = image().layer(8).build();
  return (await registry.repository(name).put(img.body, img.mediaType)).digest;
}

/** busy starts a tag write whose document round is held by the closed gate. */
async function busy(driver: Gated, registry: Registry, name: string, digest: Digest) {
  driver.closed = true;
  const first = registry.repository(name).tag('first', digest);
  // Let the round reach its held document write.
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  return { first };
}

describe('search updates queued behind a round under way (ADR 0023 addendum)', () => {
  it('GIVEN a round of a repository under way WHEN more tags are written THEN they are acknowledged without waiting for it, after a pending mark is stored; once the round ends the document holds every tag and the mark is gone', async () => {
    const driver = new Gated();
    const { search, registry } = process(driver);
    const digest = await pushed(registry, 'team/app');
    const { first } = await busy(driver, registry, 'team/app', digest);
    const firstDone = first.then(() => 'done');

    await Promise.all(['a', 'b', 'c'].map((t) => registry.repository('team/app').tag(t, digest)));

    expect(await Promise.race([firstDone, Promise.resolve('waiting')])).toBe('waiting');
    const marks = await pendingMarks(driver);
    expect(marks).toHaveLength(1);
    expect(Paths.searchPendingOf(marks[0]!)?.repository).toBe('team/app');
    driver.open();
    await first;
    await search.settled();
    expect(Object.keys((await storedDocument(driver, 'team/app')).tags).sort()).toEqual([
      'a',
      'b',
      'c',
      'first',
    ]);
    expect(await pendingMarks(driver)).toEqual([]);
  });

  it('GIVEN a process that acknowledged queued tag writes and died before storing them WHEN another process repairs THEN it leaves a mark younger than the orphan age, and after it rebuilds the document with every tag and removes the mark', async () => {
    const driver = new Gated();
    const dying = process(driver);
    const digest = await pushed(dying.registry, 'team/app');
    void (await busy(driver, dying.registry, 'team/app', digest)).first;
    await Promise.all(['a', 'b'].map((t) => dying.registry.repository('team/app').tag(t, digest)));
    driver.closed = false; // later writes pass; the dead process's stay held forever
    const other = process(driver);

    expect(await repairStale(driver, other.registry, other.search)).toBe(0);
    expect(await pendingMarks(driver)).toHaveLength(1);
    driver.advance(PENDING_ORPHAN_MS / 1000);
    expect(await repairStale(driver, other.registry, other.search)).toBe(1);

    expect(Object.keys((await storedDocument(driver, 'team/app')).tags).sort()).toEqual([
      'a',
      'b',
      'first',
    ]);
    expect(await pendingMarks(driver)).toEqual([]);
    expect(other.seen).toEqual(['repaired']);
  });

  it('GIVEN a mark held longer than the refresh age WHEN another write queues THEN the mark is written again, so no other process takes a live holder for dead', async () => {
    const driver = new Gated();
    const { registry } = process(driver);
    const digest = await pushed(registry, 'team/app');
    void (await busy(driver, registry, 'team/app', digest)).first;
    await registry.repository('team/app').tag('a', digest);
    const key = Paths.searchPendingRoot() + (await pendingMarks(driver))[0]!;
    const written = (await driver.stat(key)).modified.getTime();

    driver.advance(PENDING_REFRESH_MS / 1000);
    await registry.repository('team/app').tag('b', digest);

    expect((await driver.stat(key)).modified.getTime()).toBe(written + PENDING_REFRESH_MS);
    const other = process(driver);
    driver.advance((PENDING_ORPHAN_MS - PENDING_REFRESH_MS) / 1000);
    expect(await other.search.orphanedPending()).toEqual([]);
  });

  it('GIVEN a pending mark that cannot be written WHEN a tag write queues THEN the write reports the failure instead of being acknowledged unprotected', async () => {
    const driver = new Gated();
    const { registry } = process(driver);
    const digest = await pushed(registry, 'team/app');
    void (await busy(driver, registry, 'team/app', digest)).first;
    driver.failPending = true;

    await expect(registry.repository('team/app').tag('a', digest)).rejects.toThrow('storage down');
    driver.failPending = false;
    await registry.repository('team/app').tag('b', digest);
    expect(await pendingMarks(driver)).toHaveLength(1);
  });

  it('GIVEN a queued round that fails WHEN it ends THEN the repository is marked stale for repair, the pending mark is removed, and a repair pass restores every tag', async () => {
    const driver = new Gated();
    const { search, registry, seen } = process(driver);
    const digest = await pushed(registry, 'team/app');
    const { first } = await busy(driver, registry, 'team/app', digest);
    await registry.repository('team/app').tag('a', digest);
    driver.failDocs = true;
    driver.open();
    await first;
    await search.settled();

    // The held round was past the failure and lands; the queued one fails.
    expect(seen).toEqual(['missed']);
    expect((await search.staleMarks()).map((m) => m.repository)).toEqual(['team/app']);
    expect(await pendingMarks(driver)).toEqual([]);
    driver.failDocs = false;
    expect(await repairStale(driver, registry, search)).toBe(1);
    expect(Object.keys((await storedDocument(driver, 'team/app')).tags).sort()).toEqual([
      'a',
      'first',
    ]);
  });
});
