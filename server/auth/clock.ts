/** Clock is injected wherever time matters, so tests never sleep. */
export interface Clock {
  /** now is milliseconds since the epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
