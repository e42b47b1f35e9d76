/**
 * Timer is a call a {@link Clock} scheduled. `cancel` stops it from running (again); it is
 * idempotent and harmless after the call ran.
 */
export interface Timer {
  cancel(): void;
}

/**
 * Clock is the one source of time for the server: every component that reads the time,
 * waits or schedules takes one, so tests drive time instead of sleeping (ADR 0018).
 */
export interface Clock {
  /** now is milliseconds since the epoch. */
  now(): number;
  /**
   * sleep resolves after `ms` of this clock's time, or early (without error) when `signal`
   * aborts.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /**
   * after calls `fn` once, `ms` of this clock's time from now, unless cancelled first. A
   * pending call does not keep the process alive.
   */
  after(ms: number, fn: () => void): Timer;
  /**
   * every calls `fn` each `ms` of this clock's time until cancelled; the first call is one
   * period from now. It does not keep the process alive.
   */
  every(ms: number, fn: () => void): Timer;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

function after(ms: number, fn: () => void): Timer {
  const t = setTimeout(fn, ms);
  t.unref();
  return { cancel: () => clearTimeout(t) };
}

function every(ms: number, fn: () => void): Timer {
  const t = setInterval(fn, ms);
  t.unref();
  return { cancel: () => clearInterval(t) };
}

/** systemClock is the wall clock and Node's timers. */
export const systemClock: Clock = { now: () => Date.now(), sleep, after, every };

/**
 * monotonicClock is systemClock whose `now` never jumps when the wall clock is set: it
 * counts from the process's start with `performance.now()`. For deadlines that must not
 * move (peer membership); it drifts from the wall clock over a long uptime, so a time that
 * leaves the process (a token's expiry, a stored timestamp) uses systemClock.
 */
export const monotonicClock: Clock = {
  now: () => performance.timeOrigin + performance.now(),
  sleep,
  after,
  every,
};
