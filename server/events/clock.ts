/**
 * Clock is injected wherever events code waits or reads time (backoff, breakers, leases,
 * settle windows), so tests drive time instead of sleeping.
 */
export interface Clock {
  /** now is milliseconds since the epoch. */
  now(): number;
  /**
   * sleep resolves after `ms` of this clock's time, or early (without error) when `signal`
   * aborts.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        signal?.removeEventListener('abort', done);
        resolve();
      }
      signal?.addEventListener('abort', done, { once: true });
    }),
};

/**
 * VirtualClock is a test clock: `sleep` advances time by `ms` and resolves on the next
 * microtask turn, so a retry schedule of hours runs instantly and deterministically.
 */
export class VirtualClock implements Clock {
  /** slept records every sleep duration, in order. */
  readonly slept: number[] = [];

  constructor(private t = Date.UTC(2026, 0, 1)) {}

  now(): number {
    return this.t;
  }

  advance(ms: number): void {
    this.t += ms;
  }

  async sleep(ms: number): Promise<void> {
    this.slept.push(ms);
    this.t += ms;
    await Promise.resolve();
  }
}
