import type { BerthConfig } from '../config/types.js';
import type { Services } from '../http/context.js';
import type { StorageDriver } from '../storage/driver.js';
import { S3Driver } from '../storage/drivers/s3.js';
import { GarbageCollector } from './collector.js';

export {
  GarbageCollector,
  type GcEvents,
  type GcItem,
  type GcReport,
  type GcStats,
} from './collector.js';
export { GcScheduler } from './scheduler.js';

/**
 * createGarbageCollector builds the collector for a server's (or the CLI's) services. `raw`
 * is the undecorated driver, used to recognise S3 for aborting stale multipart uploads.
 */
export function createGarbageCollector(
  config: BerthConfig,
  s: Services,
  raw: StorageDriver = s.driver,
): GarbageCollector {
  return new GarbageCollector({
    driver: s.driver,
    registry: s.registry,
    log: s.log.child({ component: 'gc' }),
    gc: config.gc,
    uploadTtlSeconds: config.uploads.ttlSeconds,
    abortStale: raw instanceof S3Driver ? (d) => raw.abortStaleMultipartUploads(d) : undefined,
  });
}
