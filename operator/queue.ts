/**
 * A keyed work queue in the manner of client-go's: a key waits at most once, is processed by
 * at most one worker at a time, and a key added while it is being processed is queued again
 * when its worker calls done(). Failures back off exponentially per key.
 */
import { backoffDelay, realClock, type Clock } from './clock.js';

export interface WorkQueueOptions {
  clock?: Clock;
  /** baseDelayMs is the first retry delay after a failure (default 5 ms). */
  baseDelayMs?: number;
  /** maxDelayMs caps the retry delay (default 5 minutes). */
  maxDelayMs?: number;
}

export class WorkQueue {
  private readonly clock: Clock;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; cancel: () => void }>();
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private closed = false;

  constructor(opts: WorkQueueOptions = {}) {
    this.clock = opts.clock ?? realClock;
    this.baseDelayMs = opts.baseDelayMs ?? 5;
    this.maxDelayMs = opts.maxDelayMs ?? 300_000;
  }

  /** add queues `key` now, unless it is already waiting; while in process it is marked dirty. */
  add(key: string): void {
    if (this.closed) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    const waiter = this.waiters.shift();
    if (waiter) {
      this.processing.add(key);
      waiter(key);
      return;
    }
    this.queued.add(key);
    this.queue.push(key);
  }

  /** addAfter queues `key` after `ms`; an earlier pending delay for the key wins. */
  addAfter(key: string, ms: number): void {
    if (this.closed) return;
    if (ms <= 0) return this.add(key);
    const at = this.clock.now() + ms;
    const pending = this.timers.get(key);
    if (pending && pending.at <= at) return;
    pending?.cancel();
    const cancel = this.clock.setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    this.timers.set(key, { at, cancel });
  }

  /** addRateLimited requeues `key` after its next backoff delay and returns that delay. */
  addRateLimited(key: string): number {
    const n = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, n);
    const delay = backoffDelay(n, this.baseDelayMs, this.maxDelayMs);
    this.addAfter(key, delay);
    return delay;
  }

  /** forget resets `key`'s failure count (after a successful reconcile). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** retries is how many consecutive failures `key` has had. */
  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /**
   * get resolves with the next key to process (marking it in process), or undefined once the
   * queue is shut down. The caller must call done(key) when finished.
   */
  get(): Promise<string | undefined> {
    if (this.closed) return Promise.resolve(undefined);
    const key = this.queue.shift();
    if (key !== undefined) {
      this.queued.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** done ends processing of `key`; if it was added meanwhile it is queued again. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.delete(key)) this.add(key);
  }

  /** len is the number of keys waiting (not in process, not delayed). */
  len(): number {
    return this.queue.length;
  }

  /** shutDown releases all waiting get() calls with undefined and cancels delayed adds. */
  shutDown(): void {
    this.closed = true;
    for (const t of this.timers.values()) t.cancel();
    this.timers.clear();
    for (const w of this.waiters.splice(0)) w(undefined);
  }
}
