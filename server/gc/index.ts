import type { BerthConfig } from '../config/types.js';
import { GarbageCollector, type CollectorOptions } from './collector.js';

export {
  GarbageCollector,
  type GcEvents,
  type GcItem,
  type GcReport,
  type GcStats,
} from './collector.js';
export { GcScheduler } from './scheduler.js';

/** GcServices is what a collector takes of a server's (or the CLI's) services. */
export type GcServices = Pick<CollectorOptions, 'driver' | 'registry' | 'log' | 'clock'>;

/** createGarbageCollector builds the collector for a server's (or the CLI's) services. */
export function createGarbageCollector(config: BerthConfig, s: GcServices): GarbageCollector {
  return new GarbageCollector({
    driver: s.driver,
    registry: s.registry,
    log: s.log.child({ component: 'gc' }),
    clock: s.clock,
    gc: config.gc,
    uploadTtlSeconds: config.uploads.ttlSeconds,
  });
}
