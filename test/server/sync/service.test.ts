import { describe, expect, it } from 'vitest';
import type { SyncJobConfig } from '../../../server/config/sync.js';
import type { Upstream } from '../../../server/mirror/upstreams.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { Paths } from '../../../server/storage/paths.js';
import { emptySummary, type PassDeps, type SyncSummary } from '../../../server/sync/pass.js';
import { SyncJobUnknownError, SyncService, type SyncDeps } from '../../../server/sync/service.js';
import { silentLogger } from '../../../server/util/log.js';
import { ManualClock } from '../../support/clock.js';

/** settle lets every promise chain that can move on do so (no time passes). */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

/** FakePass stands for a pass: each call waits until the test ends it. */
class FakePass {
  readonly calls: PassDeps[] = [];
  private ends: ((s: SyncSummary) => void)[] = [];
  private fails: ((e: unknown) => void)[] = [];

  readonly pass = (_job: unknown, deps: PassDeps): Promise<SyncSummary> => {
    this.calls.push(deps);
    return new Promise((resolve, reject) => {
      this.ends.push(resolve);
      this.fails.push(reject);
    });
  };

  finish(summary: Partial<SyncSummary> = {}): void {
    this.fails.shift();
    this.ends.shift()?.({ ...emptySummary(), ...summary });
  }

  /** finishLast ends the newest pass still running. */
  finishLast(summary: Partial<SyncSummary> = {}): void {
    this.fails.pop();
    this.ends.pop()?.({ ...emptySummary(), ...summary });
  }

  fail(err: unknown): void {
    this.ends.shift();
    this.fails.shift()?.(err);
  }
}

const JOB: SyncJobConfig = { name: 'alpine', upstream: 'hub', repositories: ['library/alpine'] };

function service(
  over: Partial<SyncJobConfig>,
  shared: { driver: InMemoryDriver; clock: ManualClock; fake: FakePass },
  holder: string,
): SyncService {
  const upstream = {
    config: { name: 'hub', prefix: 'docker.io' },
    client: {},
  } as unknown as Upstream;
  const deps: SyncDeps = {
    driver: shared.driver,
    upstream: (n) => (n === 'hub' ? upstream : undefined),
    mappedTo: () => 'hub',
    local: () => {
      throw new Error('not used by a fake pass');
    },
    uploads: {} as SyncDeps['uploads'],
    log: silentLogger,
    clock: shared.clock,
    holder,
    pass: shared.fake.pass,
  };
  return new SyncService([{ ...JOB, ...over }], deps);
}

function world() {
  return { driver: new InMemoryDriver(), clock: new ManualClock(), fake: new FakePass() };
}

describe('sync scheduling', () => {
  it('GIVEN a job every 60 s WHEN time passes THEN a run starts one interval after the previous ended, never two at once, and stop aborts the one under way', async () => {
    const w = world();
    const s = service({ intervalSeconds: 60 }, w, 'a').start();
    w.clock.advance(59_999);
    await settle();
    expect(w.fake.calls).toHaveLength(0);
    w.clock.advance(1);
    await settle();
    expect(w.fake.calls).toHaveLength(1);
    w.clock.advance(600_000); // still running: no second run
    await settle();
    expect(w.fake.calls).toHaveLength(1);
    w.fake.finish();
    await settle();
    w.clock.advance(59_999);
    await settle();
    expect(w.fake.calls).toHaveLength(1);
    w.clock.advance(1);
    await settle();
    expect(w.fake.calls).toHaveLength(2);
    const stopping = s.stop();
    await settle();
    // The pass sees the abort at its next guard.
    await expect(w.fake.calls[1]!.guard()).rejects.toThrow('sync run aborted');
    w.fake.fail(new Error('cut'));
    await stopping;
    w.clock.advance(3_600_000);
    await settle();
    expect(w.fake.calls).toHaveLength(2);
  });

  it('GIVEN onStart WHEN the service starts THEN a run starts at once; GIVEN intervalSeconds 0 THEN nothing more is scheduled', async () => {
    const w = world();
    const s = service({ onStart: true, intervalSeconds: 0 }, w, 'a').start();
    w.clock.advance(0);
    await settle();
    expect(w.fake.calls).toHaveLength(1);
    w.fake.finish();
    await settle();
    expect(w.clock.pending).toBe(0);
    await s.stop();
  });

  it('GIVEN a cron schedule WHEN time passes THEN runs start at its times in UTC, the next one counted from when a run ended', async () => {
    const w = { ...world(), clock: new ManualClock({ start: Date.parse('2026-12-04T01:59:00Z') }) };
    const s = service({ schedule: '0 2,4 * * *' }, w, 'a').start();
    w.clock.advance(59_999);
    await settle();
    expect(w.fake.calls).toHaveLength(0);
    w.clock.advance(1); // 02:00
    await settle();
    expect(w.fake.calls).toHaveLength(1);
    w.clock.advance(2 * 3_600_000 + 60_000); // the run outlasts 04:00: no second run at once
    await settle();
    expect(w.fake.calls).toHaveLength(1);
    w.fake.finish(); // ended 04:01; the next time is 02:00 tomorrow
    await settle();
    w.clock.advance(Date.parse('2026-12-05T01:59:59Z') - w.clock.now());
    await settle();
    expect(w.fake.calls).toHaveLength(1);
    w.clock.advance(1_000);
    await settle();
    expect(w.fake.calls).toHaveLength(2);
    w.fake.finish();
    await s.stop();
  });

  it('GIVEN a run under way WHEN another is asked for in the same process THEN the same run id is answered and the pass runs once', async () => {
    const w = world();
    const s = service({}, w, 'a');
    const first = s.trigger('alpine');
    const second = s.trigger('alpine');
    expect(second.runId).toBe(first.runId);
    await settle();
    expect(w.fake.calls).toHaveLength(1);
    w.fake.finish({ tagsCopied: 2 });
    const record = await first.done;
    expect(record).toMatchObject({
      state: 'success',
      runId: first.runId,
      summary: { tagsCopied: 2 },
    });
    expect((await s.status('alpine')).last).toMatchObject({ state: 'success', runId: first.runId });
  });

  it('GIVEN an unknown job WHEN a run is asked for THEN SyncJobUnknownError names it', () => {
    const s = service({}, world(), 'a');
    expect(() => s.trigger('nope')).toThrow(SyncJobUnknownError);
  });

  it('GIVEN a pass that records errors WHEN it ends THEN the run is a failure with the summary kept', async () => {
    const w = world();
    const s = service({}, w, 'a');
    const run = s.run('alpine');
    await settle();
    w.fake.finish({ errors: [{ repository: 'library/alpine', tag: '1', error: 'boom' }] });
    expect(await run).toMatchObject({ state: 'failure', summary: { errors: [{ error: 'boom' }] } });
  });
});

describe('sync run failures around the pass', () => {
  it('GIVEN storage that fails when the lease is taken WHEN a run is asked for THEN its promise resolves as a failure naming the error, and the next run works', async () => {
    const w = world();
    const s = service({}, w, 'a');
    const list = w.driver.list.bind(w.driver);
    w.driver.list = () => Promise.reject(new Error('storage down'));
    expect(await s.run('alpine')).toMatchObject({ state: 'failure', error: 'storage down' });
    w.driver.list = list;
    const next = s.run('alpine');
    await settle();
    w.fake.finish();
    expect((await next).state).toBe('success');
  });
});

describe('sync lease', () => {
  it('GIVEN two replicas on one storage WHEN both run the job THEN one runs it and the other ends busy, and after it the other may run', async () => {
    const w = world();
    const a = service({}, w, 'replica-a');
    const b = service({}, w, 'replica-b');
    const runA = a.run('alpine');
    await settle();
    expect(w.fake.calls).toHaveLength(1);
    expect(await b.run('alpine')).toMatchObject({ state: 'busy', holder: 'replica-b' });
    expect(w.fake.calls).toHaveLength(1);
    // The busy replica did not overwrite the running replica's record.
    expect((await b.status('alpine')).last).toMatchObject({
      state: 'running',
      holder: 'replica-a',
    });
    w.fake.finish();
    expect((await runA).state).toBe('success');
    const runB = b.run('alpine');
    await settle();
    expect(w.fake.calls).toHaveLength(2);
    w.fake.finish();
    expect(await runB).toMatchObject({ state: 'success', holder: 'replica-b' });
  });

  it('GIVEN a replica that died mid-run WHEN its lease expires THEN the status says interrupted and the next run on another replica resumes it', async () => {
    const w = world();
    const dead = service({ leaseSeconds: 60 }, w, 'dead');
    void dead.run('alpine');
    await settle();
    const deadRun = (await dead.status('alpine')).last!;
    expect(deadRun.state).toBe('running');
    // The process is gone: nothing renews its lease any more.
    const other = service({ leaseSeconds: 60 }, w, 'other');
    expect((await other.status('alpine')).last?.state).toBe('running');
    expect((await other.run('alpine')).state).toBe('busy');
    // The survivor's clock is 61 s later; the dead process's clock (and its renewals) stand still.
    const later = new ManualClock({ start: w.clock.now() + 61_000 });
    const survivor = service({ leaseSeconds: 60 }, { ...w, clock: later }, 'other');
    expect((await survivor.status('alpine')).last).toMatchObject({
      state: 'interrupted',
      runId: deadRun.runId,
    });
    const resumed = survivor.run('alpine');
    await settle();
    expect(w.fake.calls).toHaveLength(2);
    w.fake.finishLast(); // the dead process's pass never ends
    const record = await resumed;
    expect(record).toMatchObject({ state: 'success', resumedFrom: deadRun.runId });
  });

  it('GIVEN a run whose lease is taken over WHEN the pass reaches its next guard THEN the run fails with the lease lost', async () => {
    const w = world();
    const s = service({ leaseSeconds: 60 }, w, 'a');
    const run = s.run('alpine');
    await settle();
    // Another holder writes a newer epoch, as a replica that judged the lease expired would.
    await w.driver.put(
      Paths.syncLease('alpine', 2),
      JSON.stringify({ holder: 'b', epoch: 2, acquiredAt: 0, expiresAt: w.clock.now() + 60_000 }),
    );
    w.clock.advance(31_000); // past half the TTL: the guard renews and sees the newer epoch
    await expect(w.fake.calls[0]!.guard()).rejects.toThrow('sync lease lost');
    w.fake.fail(new Error('sync lease lost'));
    expect(await run).toMatchObject({ state: 'failure', error: 'sync lease lost' });
  });
});
