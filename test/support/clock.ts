import type { Clock, Timer } from '../../server/util/clock.js';

interface Scheduled {
  at: number;
  seq: number;
  fn: () => void;
  period: number | undefined;
}

export interface ManualClockOptions {
  /** start is the time the clock shows first (default 2026-01-01). */
  start?: number;
  /**
   * sleepAdvances: a sleep moves time forward by its length and resolves at once, so a
   * retry schedule of hours runs instantly; otherwise a sleep waits for `advance`.
   */
  sleepAdvances?: boolean;
}

/**
 * ManualClock is the test {@link Clock}: time stands still until the test moves it with
 * `advance`, which runs every timer that falls due on the way, in order, with `now` at
 * the timer's own time.
 */
export class ManualClock implements Clock {
  /** slept records every sleep's length, in order. */
  readonly slept: number[] = [];
  private readonly timers: Scheduled[] = [];
  private seq = 0;

  private t: number;

  constructor(private readonly opts: ManualClockOptions = {}) {
    this.t = opts.start ?? Date.UTC(2026, 0, 1);
  }

  now(): number {
    return this.t;
  }

  /** advance moves time forward by `ms`, running the timers due by then. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (let next = this.due(end); next; next = this.due(end)) {
      this.t = Math.max(this.t, next.at);
      if (next.period === undefined) this.timers.splice(this.timers.indexOf(next), 1);
      else next.at += next.period;
      next.fn();
    }
    this.t = Math.max(this.t, end);
  }

  /** pending is the number of timers scheduled and not yet run or cancelled. */
  get pending(): number {
    return this.timers.length;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    this.slept.push(ms);
    if (this.opts.sleepAdvances) {
      this.advance(ms);
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      const timer = this.after(ms, done);
      function done() {
        timer.cancel();
        signal?.removeEventListener('abort', done);
        resolve();
      }
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  after(ms: number, fn: () => void): Timer {
    return this.schedule(ms, fn, undefined);
  }

  every(ms: number, fn: () => void): Timer {
    return this.schedule(ms, fn, Math.max(1, ms));
  }

  private schedule(ms: number, fn: () => void, period: number | undefined): Timer {
    const s: Scheduled = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, period };
    this.timers.push(s);
    return {
      cancel: () => {
        const i = this.timers.indexOf(s);
        if (i >= 0) this.timers.splice(i, 1);
      },
    };
  }

  private due(end: number): Scheduled | undefined {
    let first: Scheduled | undefined;
    for (const s of this.timers) {
      if (s.at > end) continue;
      if (!first || s.at < first.at || (s.at === first.at && s.seq < first.seq)) first = s;
    }
    return first;
  }
}
