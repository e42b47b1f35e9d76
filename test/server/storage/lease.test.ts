import { describe, expect, it } from 'vitest';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import type { ListOptions, ListPage } from '../../../server/storage/driver.js';
import { StorageLease } from '../../../server/storage/lease.js';
import { Paths } from '../../../server/storage/paths.js';
import { ManualClock } from '../../support/clock.js';

/** CountingDriver counts listings (every lease step that reads storage lists first). */
class CountingDriver extends InMemoryDriver {
  lists = 0;
  override list(prefix: string, opts?: ListOptions): Promise<ListPage> {
    this.lists++;
    return super.list(prefix, opts);
  }
}

function setup() {
  const driver = new CountingDriver();
  const clock = new ManualClock({ start: 1_000_000 });
  const lease = (holder: string) =>
    new StorageLease(driver, {
      root: Paths.eventsLeasesRoot('ep'),
      key: (epoch) => Paths.eventsLease('ep', epoch),
      holder,
      ttlMs: 9000,
      clock,
    });
  const epochs = () => Object.keys(driver.snapshot()).map((k) => k.split('/').pop());
  return { driver, clock, lease, epochs };
}

describe('StorageLease', () => {
  it('GIVEN a holder that stops renewing WHEN its lease expires THEN exactly one contender takes the next epoch, the old holder knows it lost, and epochs before the previous are pruned', async () => {
    const { clock, lease, epochs } = setup();
    const [a, b, c] = [lease('a'), lease('b'), lease('c')];
    expect(await a.hold()).toBe(true);
    expect(await b.hold()).toBe(false);
    clock.advance(4501);
    expect(await a.hold()).toBe(true); // renewed: half the TTL had passed
    clock.advance(8999);
    expect(await b.hold()).toBe(false); // 1 ms before the renewed expiry
    clock.advance(2);
    const won = await Promise.all([b.hold(), c.hold()]);
    expect(won.filter(Boolean)).toHaveLength(1);
    expect(await a.hold()).toBe(false);
    expect(a.held).toBeUndefined();
    expect(epochs()).toEqual(['0000000001', '0000000002']);

    // WHEN the winner stops too THEN the next taker prunes all but the previous epoch
    clock.advance(9001);
    expect(await a.hold()).toBe(true);
    expect(epochs()).toEqual(['0000000002', '0000000003']);
  });

  it('GIVEN a held lease WHEN hold is called before half the TTL THEN it reads no storage, and concurrent calls share one attempt', async () => {
    const { driver, clock, lease, epochs } = setup();
    const a = lease('a');
    expect(await Promise.all([a.hold(), a.hold(), a.hold()])).toEqual([true, true, true]);
    expect(epochs()).toEqual(['0000000001']);
    const lists = driver.lists;
    clock.advance(4000);
    expect(await a.hold()).toBe(true);
    expect(driver.lists).toBe(lists);
  });

  it('GIVEN a released lease WHEN another replica holds THEN it takes over at once, before the old expiry', async () => {
    const { lease } = setup();
    const [a, b] = [lease('a'), lease('b')];
    expect(await a.hold()).toBe(true);
    await a.release();
    expect(await b.hold()).toBe(true);
    expect(await b.current()).toMatchObject({ holder: 'b', epoch: 2 });
  });
});
