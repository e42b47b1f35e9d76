import { describe, expect, it } from 'vitest';
import { systemClock } from '../../../server/util/clock.js';
import { ManualClock } from '../../support/clock.js';

describe('ManualClock', () => {
  it('GIVEN timers WHEN time is advanced past them THEN they run in due order, each seeing its own time', () => {
    const clock = new ManualClock({ start: 0 });
    const ran: string[] = [];
    clock.after(30, () => ran.push(`b@${clock.now()}`));
    clock.after(10, () => ran.push(`a@${clock.now()}`));
    clock.after(30, () => ran.push(`c@${clock.now()}`));
    clock.advance(29);
    expect(ran).toEqual(['a@10']);
    clock.advance(1);
    expect(ran).toEqual(['a@10', 'b@30', 'c@30']);
    expect(clock.now()).toBe(30);
    expect(clock.pending).toBe(0);
  });

  it('GIVEN a repeating timer WHEN advanced by several periods in one step THEN it runs once per period until cancelled', () => {
    const clock = new ManualClock({ start: 0 });
    const at: number[] = [];
    const t = clock.every(100, () => at.push(clock.now()));
    clock.advance(350);
    expect(at).toEqual([100, 200, 300]);
    t.cancel();
    clock.advance(1000);
    expect(at).toEqual([100, 200, 300]);
    expect(clock.pending).toBe(0);
  });

  it('GIVEN a timer scheduled by a timer WHEN it falls due within the same advance THEN it runs in that advance', () => {
    const clock = new ManualClock({ start: 0 });
    const at: number[] = [];
    const poll = () => {
      at.push(clock.now());
      if (at.length < 3) clock.after(50, poll);
    };
    clock.after(50, poll);
    clock.advance(1000);
    expect(at).toEqual([50, 100, 150]);
  });

  it('GIVEN a sleep WHEN time reaches its end or its signal aborts THEN it resolves, and not before', async () => {
    const clock = new ManualClock({ start: 0 });
    let done = false;
    const slept = clock.sleep(100).then(() => (done = true));
    clock.advance(99);
    await Promise.resolve();
    expect(done).toBe(false);
    clock.advance(1);
    await slept;
    expect(clock.slept).toEqual([100]);

    const ac = new AbortController();
    const aborted = clock.sleep(60_000, ac.signal);
    ac.abort();
    await aborted;
    expect(clock.pending).toBe(0);
  });

  it('GIVEN sleepAdvances WHEN sleeping THEN time moves by the sleep and it resolves at once', async () => {
    const clock = new ManualClock({ start: 0, sleepAdvances: true });
    await clock.sleep(3_600_000);
    expect(clock.now()).toBe(3_600_000);
  });
});

describe('systemClock', () => {
  it('GIVEN a scheduled call WHEN cancelled before it runs THEN it never runs, and an aborted sleep resolves at once', async () => {
    let ran = false;
    systemClock.after(0, () => (ran = true)).cancel();
    const ac = new AbortController();
    ac.abort();
    await systemClock.sleep(60_000, ac.signal);
    await new Promise((r) => setImmediate(r));
    expect(ran).toBe(false);
    expect(Math.abs(systemClock.now() - Date.now())).toBeLessThan(1000);
  });
});
