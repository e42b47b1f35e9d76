import type { EventFormat } from '../config/types.js';
import type { Clock } from '../util/clock.js';
import { encode, sign, SIGNATURE_HEADER, type Event } from './event.js';
import { GlobSet } from '../util/glob.js';

/**
 * Sink receives events one at a time. The contract every sink passes (test/server/events/
 * sink-contract.ts):
 * - `write(e)` resolves once `e` is handled: delivered downstream, deliberately dropped
 *   (filtered), or dead-lettered. It rejects only when the event could not be handled and
 *   the caller must keep it (a closed sink, or a failed attempt of a sink that does not
 *   retry).
 * - Events written one after another reach the receiver in that order.
 * - `close()` waits for accepted writes to finish; `write` after `close` rejects with
 *   {@link SinkClosedError}. `close` is idempotent.
 */
export interface Sink {
  write(e: Event): Promise<void>;
  close(): Promise<void>;
}

export class SinkClosedError extends Error {
  override readonly name = 'SinkClosedError';
  constructor() {
    super('sink is closed');
  }
}

/** DeliveryError is one failed HTTP attempt; `status` is set when the endpoint answered. */
export class DeliveryError extends Error {
  override readonly name = 'DeliveryError';
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/**
 * DeliveryObserver hears what sinks do, for metrics and logs. Sinks never import a metrics
 * library: whoever composes them passes an observer.
 */
export interface DeliveryObserver {
  /** attempt: one HTTP attempt finished (status undefined: no answer). */
  attempt?(status: number | undefined, ok: boolean): void;
  /** retrying: an attempt failed and the next one waits `delayMs`. */
  retrying?(attempt: number, delayMs: number, err: unknown, breakerOpen: boolean): void;
  /** dead: the event was given up on after `attempts`. */
  dead?(e: Event, attempts: number, err: unknown): void;
  /** delivered: the event reached the receiver after `attempts`. */
  delivered?(e: Event, attempts: number): void;
}

export interface HttpSinkOptions {
  url: string;
  format: EventFormat;
  headers?: Record<string, string>;
  secret?: string;
  timeoutMs: number;
  clock: Clock;
  observer?: DeliveryObserver;
  /** fetch is injectable for tests; default global fetch. */
  fetch?: typeof fetch;
}

/**
 * HttpSink POSTs each event to one URL, one request at a time, in the endpoint's format,
 * signed when a secret is set. Any 2xx or 3xx answer is success; anything else, a timeout or
 * a network error rejects with {@link DeliveryError} (it does not retry).
 */
export class HttpSink implements Sink {
  private closed = false;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: HttpSinkOptions) {}

  write(e: Event): Promise<void> {
    if (this.closed) return Promise.reject(new SinkClosedError());
    const p = this.chain.then(() => this.send(e));
    this.chain = p.catch(() => undefined);
    return p;
  }

  private async send(e: Event): Promise<void> {
    const { body, headers } = encode(e, this.o.format);
    const h: Record<string, string> = { ...this.o.headers, ...headers };
    if (this.o.secret !== undefined) {
      h[SIGNATURE_HEADER] = sign(this.o.secret, Math.floor(this.o.clock.now() / 1000), body);
    }
    let res: Response;
    try {
      res = await (this.o.fetch ?? fetch)(this.o.url, {
        method: 'POST',
        headers: h,
        body,
        redirect: 'follow',
        signal: AbortSignal.timeout(this.o.timeoutMs),
      });
      await res.arrayBuffer().catch(() => undefined);
    } catch (err) {
      this.o.observer?.attempt?.(undefined, false);
      throw new DeliveryError(`delivery failed: ${(err as Error).message}`);
    }
    const ok = res.status >= 200 && res.status < 400;
    this.o.observer?.attempt?.(res.status, ok);
    if (!ok) throw new DeliveryError(`endpoint answered ${res.status}`, res.status);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.chain;
  }
}

export interface RetryOptions {
  clock: Clock;
  /** backoffMs is the first delay; each failure doubles it, up to maxBackoffMs. */
  backoffMs: number;
  maxBackoffMs: number;
  /** threshold consecutive failures open the breaker (reported to the observer). */
  threshold: number;
  /** maxAttempts gives up after this many attempts (0 = never). */
  maxAttempts: number;
  /** maxAgeMs gives up on an event older than this after a failure (0 = never). */
  maxAgeMs: number;
  /** deadLetter records an event given up on; the write resolves after it. */
  deadLetter: (e: Event, attempts: number, err: unknown) => Promise<void>;
  observer?: DeliveryObserver;
}

/**
 * RetryingSink retries its downstream with exponential backoff behind a circuit breaker:
 * after `threshold` consecutive failures the breaker is open and every further attempt
 * waits the full backoff (a half-open probe); one success closes it. An event past
 * `maxAttempts` or `maxAgeMs` goes to the dead-letter record and the write resolves. Time
 * comes only from the injected clock.
 */
export class RetryingSink implements Sink {
  private closed = false;
  private failures = 0;
  private readonly abort = new AbortController();
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly next: Sink,
    private readonly o: RetryOptions,
  ) {}

  /** breakerOpen is true while consecutive failures are at or above the threshold. */
  get breakerOpen(): boolean {
    return this.failures >= this.o.threshold;
  }

  write(e: Event): Promise<void> {
    if (this.closed) return Promise.reject(new SinkClosedError());
    const p = this.chain.then(() => this.deliver(e));
    this.chain = p.catch(() => undefined);
    return p;
  }

  private async deliver(e: Event): Promise<void> {
    const born = Date.parse(e.timestamp);
    for (let attempt = 1; ; attempt++) {
      try {
        await this.next.write(e);
        this.failures = 0;
        this.o.observer?.delivered?.(e, attempt);
        return;
      } catch (err) {
        if (err instanceof SinkClosedError) throw err;
        this.failures++;
        const tooMany = this.o.maxAttempts > 0 && attempt >= this.o.maxAttempts;
        const tooOld = this.o.maxAgeMs > 0 && this.o.clock.now() - born >= this.o.maxAgeMs;
        if (tooMany || tooOld) {
          await this.o.deadLetter(e, attempt, err);
          this.o.observer?.dead?.(e, attempt, err);
          return;
        }
        const delay = Math.min(this.o.maxBackoffMs, this.o.backoffMs * 2 ** (attempt - 1));
        this.o.observer?.retrying?.(attempt, delay, err, this.breakerOpen);
        if (this.closed) throw new SinkClosedError();
        await this.o.clock.sleep(delay, this.abort.signal);
        if (this.closed) throw new SinkClosedError();
      }
    }
  }

  /** close stops retrying: a write waiting for its next attempt rejects (the caller keeps it). */
  async close(): Promise<void> {
    this.closed = true;
    this.abort.abort();
    await this.chain;
    await this.next.close();
  }
}

/**
 * QueueSink accepts writes without waiting for the ones before them and hands them to its
 * downstream one at a time, in order, holding at most `capacity` (further writes wait for
 * room). Each write resolves when its own event was handled downstream.
 */
export class QueueSink implements Sink {
  private closed = false;
  private chain: Promise<unknown> = Promise.resolve();
  private pending = 0;
  private readonly waiters: (() => void)[] = [];
  private readonly accepted = new Set<Promise<void>>();

  constructor(
    private readonly next: Sink,
    private readonly capacity = 1000,
  ) {}

  /** depth is the number of events accepted and not yet handled. */
  get depth(): number {
    return this.accepted.size;
  }

  write(e: Event): Promise<void> {
    if (this.closed) return Promise.reject(new SinkClosedError());
    const p = this.enqueue(e);
    this.accepted.add(p);
    const forget = () => this.accepted.delete(p);
    p.then(forget, forget);
    return p;
  }

  private async enqueue(e: Event): Promise<void> {
    while (this.pending >= this.capacity) await new Promise<void>((r) => this.waiters.push(r));
    this.pending++;
    const p = this.chain.then(() => this.next.write(e));
    this.chain = p.catch(() => undefined);
    try {
      await p;
    } finally {
      this.pending--;
      this.waiters.shift()?.();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.accepted]);
    await this.next.close();
  }
}

/** Ignore lists what an endpoint does not want; an event matching any one is dropped. */
export interface Ignore {
  mediaTypes?: string[];
  actions?: string[];
  /** repositories are globs (server/util/glob.ts): `*` within a segment, `**` across, `?` one character. */
  repositories?: string[];
}

/** FilterSink drops ignored events (the write resolves at once) and passes the rest on. */
export class FilterSink implements Sink {
  private closed = false;
  private readonly repos: GlobSet;

  constructor(
    private readonly next: Sink,
    private readonly ignore: Ignore,
  ) {
    this.repos = new GlobSet(ignore.repositories ?? []);
  }

  ignored(e: Event): boolean {
    const mt = e.target.mediaType;
    if (mt !== undefined && this.ignore.mediaTypes?.includes(mt)) return true;
    if (this.ignore.actions?.includes(e.action)) return true;
    return this.repos.matches(e.target.repository);
  }

  async write(e: Event): Promise<void> {
    if (this.closed) throw new SinkClosedError();
    if (this.ignored(e)) return;
    await this.next.write(e);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.next.close();
  }
}
