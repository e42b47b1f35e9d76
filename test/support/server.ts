import type { Clock } from '../../server/util/clock.js';
import { defaults } from '../../server/config/load.js';
import type { BerthConfig } from '../../server/config/types.js';
import { startServer, type RunningServer } from '../../server/server.js';
import type { StorageDriver } from '../../server/storage/driver.js';
import { InMemoryDriver } from '../../server/storage/drivers/inmemory.js';
import { silentLogger } from '../../server/util/log.js';

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

/** testConfig returns defaults on a loopback ephemeral port, merged with `over`. */
export function testConfig(over: DeepPartial<BerthConfig> = {}): BerthConfig {
  const base = defaults();
  base.http.addr = '127.0.0.1:0';
  base.http.secret = 'test-secret';
  base.uploads.purgeIntervalSeconds = 0;
  return merge(base, over) as BerthConfig;
}

function merge(a: unknown, b: unknown): unknown {
  if (
    typeof a !== 'object' ||
    a === null ||
    typeof b !== 'object' ||
    b === null ||
    Array.isArray(b)
  ) {
    return b === undefined ? a : b;
  }
  const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
  for (const [k, v] of Object.entries(b)) out[k] = merge(out[k], v);
  return out;
}

export interface TestRegistry extends RunningServer {
  driver: StorageDriver;
  /** fetch is `fetch` relative to the registry's URL. */
  fetch(path: string, init?: RequestInit): Promise<Response>;
}

/** startTestRegistry runs a real listening server in-process (in-memory by default). */
export async function startTestRegistry(
  opts: { config?: DeepPartial<BerthConfig>; driver?: StorageDriver; clock?: Clock } = {},
): Promise<TestRegistry> {
  const driver = opts.driver ?? new InMemoryDriver();
  const running = await startServer(testConfig(opts.config), {
    log: silentLogger,
    driver,
    clock: opts.clock,
  });
  return {
    ...running,
    driver,
    fetch: (path, init) => fetch(new URL(path, running.url), { redirect: 'manual', ...init }),
  };
}
