/**
 * Clock is the operator's source of time. Queues, backoff, informer restarts and leader
 * election take one, so tests drive time instead of sleeping.
 */
export interface Clock {
  now(): number;
  /** setTimeout runs `fn` after `ms`; the returned cancel function stops it if still pending. */
  setTimeout(fn: () => void, ms: number): () => void;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
};

/** sleep resolves after `ms` on `clock`. */
export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimeout(resolve, ms));
}

/** Backoff computes capped exponential delays: base, 2·base, 4·base, … up to max. */
export function backoffDelay(failures: number, baseMs: number, maxMs: number): number {
  if (failures <= 0) return 0;
  const d = baseMs * 2 ** Math.min(failures - 1, 40);
  return Math.min(d, maxMs);
}

/** microTime formats a date as a Kubernetes MicroTime (RFC 3339 with six fractional digits). */
export function microTime(ms: number): Date {
  // The generated client passes strings through untouched; MicroTime needs microseconds.
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z') as unknown as Date;
}
