import { MeteredDriver } from '../../../server/metrics/driver.js';
import { CachingDriver } from '../../../server/storage/cache.js';
import { DiskCachingDriver } from '../../../server/storage/diskcache.js';
import type { StorageDriver } from '../../../server/storage/driver.js';
import { FilesystemDriver } from '../../../server/storage/drivers/filesystem.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { Paths } from '../../../server/storage/paths.js';
import { describeStorageDriver } from './driver-contract.js';
import { scratchDir } from '../../support/scratch.js';

// Every decorator the server may put around a driver keeps the driver contract, alone and
// stacked as the server stacks them (createServices), over each driver the unit tests run.
// The disk cache copies only relayed reads: over inmemory, which relays none, it adds nothing.

const tempDir = (name: string) => scratchDir(`berth-${name}-`);

const drivers: [string, () => StorageDriver, number][] = [
  ['inmemory', () => new InMemoryDriver(), 4 * 1024 * 1024 + 3],
  ['filesystem', () => new FilesystemDriver(tempDir('fs')), 16 * 1024 * 1024 + 5],
];

const metered = (inner: StorageDriver) => new MeteredDriver(inner, () => undefined);

/** everythingCached caches every object and list page, as long as it may. */
const everythingCached = (inner: StorageDriver) =>
  new CachingDriver(inner, {
    immutable: () => true,
    ttlMs: 60_000,
    listable: () => true,
    listTtlMs: 60_000,
    maxBytes: 1 << 20,
  });

/** keptWhileAlone treats every key as a tag and keeps it: this process is alone (ADR 0012). */
const keptWhileAlone = (inner: StorageDriver) =>
  new CachingDriver(inner, {
    immutable: () => false,
    ttlMs: 60_000,
    mutable: () => true,
    mutableTtlMs: 0,
    alone: () => 1,
    beforeMutableWrite: () => undefined,
    listable: () => true,
    listTtlMs: 60_000,
    maxBytes: 1 << 20,
  });

const diskCache = (inner: StorageDriver) =>
  new DiskCachingDriver(inner, {
    dir: tempDir('blobcache'),
    maxBytes: 1 << 30,
    cacheable: () => true,
  });

/** asServer is the server's stack with its own key predicates (createServices). */
const asServer = (inner: StorageDriver) =>
  new CachingDriver(diskCache(metered(inner)), {
    immutable: Paths.immutable,
    ttlMs: 60_000,
    mutable: Paths.isTag,
    mutableTtlMs: 0,
    alone: () => 1,
    listable: Paths.listCached,
    listTtlMs: 5_000,
    maxBytes: 32 << 20,
  });

const decorators: [string, (inner: StorageDriver) => StorageDriver][] = [
  ['metered', metered],
  ['caching everything', everythingCached],
  ['caching tags while alone', keptWhileAlone],
  ['disk cache', diskCache],
  ['stacked as the server stacks them', asServer],
];

for (const [decorator, wrap] of decorators) {
  for (const [driver, make, bigBytes] of drivers) {
    describeStorageDriver(`${decorator}(${driver})`, { make: async () => wrap(make()), bigBytes });
  }
}
