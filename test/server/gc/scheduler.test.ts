import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseConfig, ConfigError } from '../../../server/config/load.js';
import type { GarbageCollector, GcReport } from '../../../server/gc/collector.js';
import { GcScheduler } from '../../../server/gc/scheduler.js';
import { silentLogger } from '../../../server/util/log.js';

/** fakeCollector is the small part of a collector the scheduler uses. */
function fakeCollector() {
  const calls: boolean[] = [];
  let release: (() => void) | undefined;
  let aborted = 0;
  const gc = {
    run: ({ dryRun }: { dryRun: boolean }) => {
      calls.push(dryRun);
      return new Promise<GcReport | undefined>((resolve, reject) => {
        release = () => resolve(undefined);
        if (calls.length === 2) reject(new Error('storage down'));
      });
    },
    abort: () => {
      aborted++;
      release?.();
    },
  };
  return {
    gc: gc as unknown as GarbageCollector,
    calls,
    finish: () => release?.(),
    aborted: () => aborted,
  };
}

describe('gc scheduling', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('GIVEN a scheduler WHEN intervals pass THEN runs happen one interval after the previous ends, a failure does not stop the schedule, and stop aborts the run in progress', async () => {
    vi.useFakeTimers();
    const f = fakeCollector();
    const s = new GcScheduler(f.gc, { intervalSeconds: 10, dryRun: true, log: silentLogger });
    s.start();
    await vi.advanceTimersByTimeAsync(9_999);
    expect(f.calls).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(f.calls).toEqual([true]);
    await vi.advanceTimersByTimeAsync(60_000); // still running: no overlap
    expect(f.calls).toHaveLength(1);
    f.finish();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(f.calls).toHaveLength(2); // this one fails
    await vi.advanceTimersByTimeAsync(10_000);
    expect(f.calls).toHaveLength(3);
    await s.stop();
    expect(f.aborted()).toBe(1);
    await vi.advanceTimersByTimeAsync(100_000);
    expect(f.calls).toHaveLength(3);
  });
});

describe('gc configuration', () => {
  it('GIVEN BERTH_GC_* variables WHEN loading THEN they set the gc section', () => {
    const c = parseConfig(undefined, {
      BERTH_GC_ENABLED: 'true',
      BERTH_GC_INTERVAL_SECONDS: '2',
      BERTH_GC_GRACE_SECONDS: '5',
      BERTH_GC_DRY_RUN: '1',
      BERTH_GC_LEASE_SECONDS: '6',
      BERTH_GC_SETTLE_MILLIS: '0',
    });
    expect(c.gc).toEqual({
      enabled: true,
      intervalSeconds: 2,
      graceSeconds: 5,
      dryRun: true,
      leaseSeconds: 6,
      settleMillis: 0,
      policies: [],
    });
  });

  it('GIVEN policies in the file WHEN loading THEN they are kept as written, and a bad one is reported by field', () => {
    const c = parseConfig(
      [
        'gc:',
        '  policies:',
        '    - repositories: ["team/**"]',
        '      keepTags: [{mostRecentlyPushed: 10}, {patterns: ["^v"]}]',
        '      deleteUntaggedAfterSeconds: 86400',
        '      deleteReferrers: true',
      ].join('\n'),
      {},
    );
    expect(c.gc.policies).toEqual([
      {
        repositories: ['team/**'],
        keepTags: [{ mostRecentlyPushed: 10 }, { patterns: ['^v'] }],
        deleteUntaggedAfterSeconds: 86400,
        deleteReferrers: true,
      },
    ]);
    expect(() =>
      parseConfig(
        'gc:\n  policies:\n    - repositories: [a]\n      keepTags: [{patterns: ["["]}]\n',
        {},
      ),
    ).toThrow(ConfigError);
    expect(() => parseConfig('gc:\n  policies:\n    - keepTags: []\n', {})).toThrow(
      /gc\.policies\.0\.repositories: is required/,
    );
  });
});
