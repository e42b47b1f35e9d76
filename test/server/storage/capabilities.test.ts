import { afterAll, describe, expect, it } from 'vitest';
import { MeteredDriver } from '../../../server/metrics/driver.js';
import { CachingDriver } from '../../../server/storage/cache.js';
import { DiskCachingDriver } from '../../../server/storage/diskcache.js';
import type { StorageDriver } from '../../../server/storage/driver.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { scratchDir } from '../../support/scratch.js';

/** Multipart is an in-memory driver that, like S3, can abort stale multipart uploads. */
class Multipart extends InMemoryDriver {
  readonly asked: Date[] = [];
  async abortStaleMultipartUploads(olderThan: Date): Promise<number> {
    this.asked.push(olderThan);
    return 3;
  }
}

const metered = (inner: StorageDriver) => new MeteredDriver(inner, () => undefined);
const caching = (inner: StorageDriver) =>
  new CachingDriver(inner, {
    immutable: () => true,
    ttlMs: 60_000,
    listable: () => true,
    listTtlMs: 60_000,
    maxBytes: 1 << 20,
  });
const disks: DiskCachingDriver[] = [];
const diskCache = (inner: StorageDriver) => {
  const disk = new DiskCachingDriver(inner, {
    dir: scratchDir('berth-blobcache-'),
    maxBytes: 1 << 20,
    cacheable: () => true,
  });
  disks.push(disk);
  return disk;
};
// A disk cache sets its folder up in the background: let that end before the folders go.
afterAll(async () => {
  await Promise.all(disks.map((d) => d.settled()));
});

/** decorators are each decorator the server may put around a driver, and all of them. */
const decorators: [string, (inner: StorageDriver) => StorageDriver][] = [
  ['metered', metered],
  ['caching', caching],
  ['disk cache', diskCache],
  ['as the server stacks them', (inner) => caching(diskCache(metered(inner)))],
];

describe('optional driver capabilities pass through decorators', () => {
  it.each(decorators)(
    'GIVEN a driver that aborts stale multipart uploads WHEN wrapped %s THEN the wrapper offers it and the driver does the work',
    async (_name, wrap) => {
      const inner = new Multipart();
      const olderThan = new Date(1_700_000_000_000);

      const aborted = await wrap(inner).abortStaleMultipartUploads?.(olderThan);

      expect(aborted).toBe(3);
      expect(inner.asked).toEqual([olderThan]);
    },
  );

  it.each(decorators)(
    'GIVEN a driver without multipart uploads WHEN wrapped %s THEN the wrapper does not claim the capability',
    async (_name, wrap) => {
      expect(typeof wrap(new InMemoryDriver()).abortStaleMultipartUploads).toBe('undefined');
    },
  );

  it.each(decorators)(
    'GIVEN a driver that relays no read WHEN wrapped %s THEN the wrapper does not claim to relay',
    async (_name, wrap) => {
      expect(typeof wrap(new InMemoryDriver()).openSource).toBe('undefined');
    },
  );
});
