import { Errors } from '../errors.js';
import type { Services } from './context.js';

/**
 * checkReady resolves when this process should take traffic: its first membership round
 * is done (ADR 0012; before it, tag writes would wait) and the storage answers a ping.
 * Otherwise it rejects with 503 UNAVAILABLE naming the reason in general terms.
 */
export async function checkReady(s: Services): Promise<void> {
  if (!s.peers.started) {
    throw Errors.unavailable({ reason: 'starting: joining the peers on the storage' });
  }
  // The probe is unauthenticated: the storage's own words (endpoints, credentials hints) go
  // to the log, never into the answer.
  await s.driver.ping().catch((err: unknown) => {
    s.log.warn({ err, driver: s.driver.name }, 'readiness storage ping failed');
    throw Errors.unavailable({ reason: 'storage unreachable' }, { 'Retry-After': '5' });
  });
}
