import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { emptyStats, type GcEvents, type SegmentItem } from '../../../server/gc/report.js';
import { GcRun, type RunContext } from '../../../server/gc/run.js';
import { defer, deferredAt, loadState, type GcState } from '../../../server/gc/state.js';
import { Paths } from '../../../server/storage/paths.js';
import { silentLogger } from '../../../server/util/log.js';
import { ClockedDriver } from '../../support/store.js';

const GRACE = 600;

/** context is a run's context over `driver`, with its events and counters kept for the test. */
function context(driver: ClockedDriver, guard: () => Promise<void> = async () => undefined) {
  const events = new EventEmitter<GcEvents>();
  const counters = emptyStats();
  const ctx: RunContext = {
    driver,
    log: silentLogger,
    clock: driver.clock,
    events,
    counters,
    guard,
    holder: 'test',
    graceSeconds: GRACE,
  };
  return { ctx, events, counters };
}

/** writes counts the puts of `gc/state` from now on. */
function writes(driver: ClockedDriver): { count: number } {
  const seen = { count: 0 };
  const put = driver.put.bind(driver);
  driver.put = async (key, data) => {
    if (key === Paths.gcState()) seen.count++;
    return put(key, data);
  };
  return seen;
}

const stateOf = async (driver: ClockedDriver): Promise<GcState> => loadState(driver);

describe('a run and its checkpoint', () => {
  it('GIVEN a real run WHEN it begins THEN gc/state records it in phase mark with the cutoff one grace window back', async () => {
    const driver = new ClockedDriver();
    const { ctx, events } = context(driver);
    const started: unknown[] = [];
    events.on('run-started', (e) => started.push(e));

    const run = await GcRun.begin(ctx, 'r1', false);

    expect(run.cutoff).toBe(driver.now - GRACE * 1000);
    expect((await stateOf(driver)).run).toMatchObject({ id: 'r1', holder: 'test', phase: 'mark' });
    expect(started).toEqual([{ runId: 'r1', dryRun: false, resumedFrom: undefined }]);
  });

  it('GIVEN an interrupted run in gc/state WHEN a dry run begins and finishes THEN it names the run but writes nothing and has no undo log', async () => {
    const driver = new ClockedDriver();
    await GcRun.begin(context(driver).ctx, 'crashed', false);
    const put = writes(driver);

    const run = await GcRun.begin(context(driver).ctx, 'dry', true);
    const report = run.finish();

    expect(report.resumedFrom).toBe('crashed');
    expect(run.undo).toEqual([]);
    expect(put.count).toBe(0);
  });

  it('GIVEN a sweep phase WHEN it checkpoints THEN gc/state is written when forced and every 200 deletions, not in between', async () => {
    const driver = new ClockedDriver();
    const run = await GcRun.begin(context(driver).ctx, 'r1', false);
    const put = writes(driver);

    await run.checkpoint('links', true);
    for (let i = 0; i < 199; i++) await run.checkpoint('links');
    expect(put.count).toBe(1);
    await run.checkpoint('links');

    expect(put.count).toBe(2);
    expect((await stateOf(driver)).run?.phase).toBe('links');
  });

  it('GIVEN a lease lost WHEN the run would write its checkpoint THEN it throws and writes nothing', async () => {
    const driver = new ClockedDriver();
    let lost = false;
    const { ctx } = context(driver, async () => {
      if (lost) throw new Error('gc lease lost');
    });
    const run = await GcRun.begin(ctx, 'r1', false);
    const put = writes(driver);
    lost = true;

    await expect(run.checkpoint('tags', true)).rejects.toThrow('gc lease lost');
    expect(put.count).toBe(0);
  });

  it('GIVEN deletions, skips and restores WHEN reported THEN the report, the counters and the events agree', async () => {
    const driver = new ClockedDriver();
    const { ctx, events, counters } = context(driver);
    const heard: string[] = [];
    events.on('deleted', (item) => heard.push(`deleted ${item.kind}`));
    events.on('skipped', (item) => heard.push(`skipped ${item.kind}`));
    events.on('restored', (item) => heard.push(`restored ${item.kind}`));
    const run = await GcRun.begin(ctx, 'r1', false);
    const segment = (key: string): SegmentItem => ({
      kind: 'segment',
      key,
      bytes: 10,
      reason: 'unreferenced',
    });

    run.deleted(segment('segments/u/0-a'));
    run.skipped(segment('segments/u/1-b'));
    run.restored({ kind: 'link', key: 'k', bytes: 3, repo: 'app', digest: 'd', reason: 'needed' });

    expect(run.report).toMatchObject({ bytesFreed: 10, counts: { segment: 1 } });
    expect(counters).toMatchObject({ bytesFreed: 10, skipped: 1, restored: 1 });
    expect(counters.deleted.segment).toBe(1);
    expect(heard).toEqual(['deleted segment', 'skipped segment', 'restored link']);
  });

  it('GIVEN deferrals due and not yet due WHEN the run closes THEN it forgets the run and the due ones, and records itself as the last run', async () => {
    const driver = new ClockedDriver();
    const run = await GcRun.begin(context(driver).ctx, 'r1', false);
    defer(run.state, ['due'], driver.now);
    defer(run.state, ['later'], driver.now + 1);

    await run.close();

    const state = await stateOf(driver);
    expect(state.run).toBeUndefined();
    expect(state.deferred).toEqual({ later: driver.now + 1 });
    expect(state.last).toMatchObject({ id: 'r1', finishedAt: driver.now });
  });
});

describe('deferrals', () => {
  it('GIVEN an upload deferred twice WHEN asked THEN the later deferral holds until it ends', () => {
    const state: GcState = { deferred: {} };

    defer(state, ['u1'], 2000);
    defer(state, ['u1'], 1000);

    expect(deferredAt(state.deferred, 'u1', 1999)).toBe(true);
    expect(deferredAt(state.deferred, 'u1', 2000)).toBe(false);
    expect(deferredAt(state.deferred, 'other', 0)).toBe(false);
  });
});
