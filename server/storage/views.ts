import type { CachingDriver } from './cache.js';
import type { StorageDriver } from './driver.js';

/** StorageReader is the read half of {@link StorageDriver}. */
export type StorageReader = Pick<StorageDriver, 'get' | 'stat' | 'list' | 'read'>;

/**
 * StorageViews is storage as the domain receives it: each read names the consistency it
 * needs by the view it goes through (ADR 0019).
 *
 * - `cached` is the whole driver. Its reads may be answered from this process's memory
 *   (ADR 0008, ADR 0012): what this process wrote is seen at once, what other replicas
 *   changed within the cache's TTLs. Every write goes through it, and drops what it changes
 *   from that memory.
 * - `fresh` reads storage itself, never a cache: for a read whose result is written back or
 *   guards a write. It cannot write, so no write bypasses the cache.
 * - `invalidate(key)` drops `key` from the memory behind `cached`, for a reader that learnt
 *   from storage that a cached answer may be stale (the object is gone, or its bytes are).
 *
 * Without a cache, both views are the driver and `invalidate` does nothing.
 */
export interface StorageViews {
  readonly cached: StorageDriver;
  readonly fresh: StorageReader;
  invalidate(key: string): void;
}

/** directViews are the views of a driver without a cache: every read is fresh. */
export function directViews(driver: StorageDriver): StorageViews {
  return { cached: driver, fresh: driver, invalidate: () => undefined };
}

/** cachedViews are the views of a cache: `cached` is it, `fresh` the driver it decorates. */
export function cachedViews(cache: CachingDriver): StorageViews {
  return { cached: cache, fresh: cache.inner, invalidate: (key) => cache.invalidate(key) };
}
