import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../../operator/clock.js';
import { WorkQueue } from '../../operator/queue.js';
import { FakeClock } from './fake-clock.js';

describe('work queue', () => {
  it('GIVEN a key added twice WHEN it is taken THEN it is processed once', async () => {
    const q = new WorkQueue();
    q.add('ns/a');
    q.add('ns/a');
    q.add('ns/b');
    expect(q.len()).toBe(2);
    expect(await q.get()).toBe('ns/a');
    expect(await q.get()).toBe('ns/b');
    expect(q.len()).toBe(0);
  });

  it('GIVEN a key in process WHEN it is added again THEN no second worker gets it until done, then it comes back once', async () => {
    const q = new WorkQueue();
    q.add('k');
    const k = await q.get();
    q.add('k');
    q.add('k');
    expect(q.len()).toBe(0);
    let second: string | undefined;
    void q.get().then((x) => (second = x));
    await Promise.resolve();
    expect(second).toBeUndefined();
    q.done(k!);
    await Promise.resolve();
    expect(second).toBe('k');
    q.done('k');
    expect(q.len()).toBe(0);
  });

  it('GIVEN failures WHEN rate limited THEN delays double from the base up to the cap, and forget resets them', () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock, baseDelayMs: 10, maxDelayMs: 50 });
    expect([1, 2, 3, 4, 5].map(() => q.addRateLimited('k'))).toEqual([10, 20, 40, 50, 50]);
    expect(q.retries('k')).toBe(5);
    q.forget('k');
    expect(q.retries('k')).toBe(0);
    expect(q.addRateLimited('k')).toBe(10);
  });

  it('GIVEN a delayed add WHEN the clock passes the delay THEN the key is queued, not before', () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock });
    q.addAfter('k', 1000);
    clock.advance(999);
    expect(q.len()).toBe(0);
    clock.advance(1);
    expect(q.len()).toBe(1);
  });

  it('GIVEN two delays for one key WHEN added THEN the earlier wins and only one add happens', () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock });
    q.addAfter('k', 5000);
    q.addAfter('k', 100);
    q.addAfter('k', 9000);
    expect(clock.pending()).toBe(1);
    clock.advance(100);
    expect(q.len()).toBe(1);
  });

  it('GIVEN waiting workers WHEN the queue shuts down THEN they are released with undefined', async () => {
    const q = new WorkQueue();
    const waiting = q.get();
    q.shutDown();
    expect(await waiting).toBeUndefined();
    q.add('late');
    expect(await q.get()).toBeUndefined();
  });

  it('GIVEN the backoff function WHEN asked THEN it is zero without failures and capped', () => {
    expect(backoffDelay(0, 5, 100)).toBe(0);
    expect(backoffDelay(1, 5, 100)).toBe(5);
    expect(backoffDelay(100, 5, 100)).toBe(100);
  });
});
