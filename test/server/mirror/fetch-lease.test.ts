import { describe, expect, it } from 'vitest';
import { FetchLeases } from '../../../server/mirror/fetch-lease.js';
import { parseDigest } from '../../../server/registry/reference.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { Paths } from '../../../server/storage/paths.js';
import { silentLogger } from '../../../server/util/log.js';
import { ManualClock } from '../../support/clock.js';

const digest = parseDigest(`sha256:${'a'.repeat(64)}`);
const key = Paths.mirrorFetch(digest);

/** replicas are two processes' leases on one storage, with one clock. */
function replicas(sleepAdvances = false) {
  const driver = new InMemoryDriver();
  const clock = new ManualClock({ sleepAdvances });
  const make = (holder: string) =>
    new FetchLeases({ driver, clock, log: silentLogger, holder, ttlMs: 9000, maxWaitMs: 60_000 });
  return { driver, clock, a: make('a'), b: make('b') };
}

const settle = () => new Promise((r) => setTimeout(r, 10));

describe('FetchLeases', () => {
  it('GIVEN replica a claimed a fetch WHEN b claims it THEN b is refused; once a releases, the marker is gone and b may claim', async () => {
    const { driver, a, b } = replicas();
    const claim = await a.claim(digest);
    expect(claim).toBeDefined();
    expect(await b.claim(digest)).toBeUndefined();
    await claim!.release();
    await expect(driver.stat(key)).rejects.toThrow();
    expect(await b.claim(digest)).toBeDefined();
  });

  it('GIVEN a holder that renews WHEN time passes beyond the TTL THEN its marker holds; one that stopped (killed) is taken over after the TTL', async () => {
    const { clock, a, b } = replicas();
    const claim = await a.claim(digest);
    for (let i = 0; i < 6; i++) {
      clock.advance(3000);
      await settle();
    }
    expect(await b.claim(digest)).toBeUndefined();
    await claim!.release();

    // A killed holder leaves its last marker behind and renews it no more.
    const dead = replicas();
    const record = { holder: 'killed', token: 't', expiresAt: dead.clock.now() + 9000 };
    await dead.driver.put(key, JSON.stringify(record));
    dead.clock.advance(8999);
    expect(await dead.b.claim(digest)).toBeUndefined();
    dead.clock.advance(2);
    expect(await dead.b.claim(digest)).toBeDefined();
  });

  it('GIVEN b waits for a fetch of a WHEN the blob is stored, the marker goes, or the wait is over THEN it answers stored, free or timeout', async () => {
    const { a, b } = replicas(true);
    const claim = await a.claim(digest);
    let polls = 0;
    expect(await b.waitFor(digest, () => Promise.resolve(++polls === 3))).toBe('stored');
    await claim!.release();
    expect(await b.waitFor(digest, () => Promise.resolve(false))).toBe('free');

    const held = replicas(true);
    const c = await held.a.claim(digest);
    // With time running on, a's renewals keep its marker; b gives up after maxWaitMs.
    expect(await held.b.waitFor(digest, () => Promise.resolve(false))).toBe('timeout');
    await c!.release();
  });
});
