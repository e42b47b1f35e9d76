import {
  resolveEndpoint,
  type EndpointConfig,
  type NotificationsConfig,
} from '../config/notifications.js';
import { isNotFound, type StorageDriver } from '../storage/driver.js';
import { StorageLease } from '../storage/lease.js';
import { Paths } from '../storage/paths.js';
import type { Logger } from '../util/log.js';
import type { Clock, Timer } from '../util/clock.js';
import type { Event } from './event.js';
import { formatPosition, parsePosition, type Outbox, type Position } from './outbox.js';
import {
  FilterSink,
  HttpSink,
  QueueSink,
  RetryingSink,
  SinkClosedError,
  type DeliveryObserver,
  type Sink,
} from './sinks.js';

/** DeadLetter is the record kept for an event an endpoint never accepted. */
export interface DeadLetter {
  endpoint: string;
  position: string;
  event: Event;
  attempts: number;
  error: string;
  deadAt: string;
}

/** EndpointObserver is a {@link DeliveryObserver} for one named endpoint. */
export type ObserverFactory = (endpoint: string) => DeliveryObserver;

export interface DeliveryDeps {
  driver: StorageDriver;
  outbox: Outbox;
  clock: Clock;
  log: Logger;
  /** holder names this replica in leases. */
  holder: string;
  settleMs: number;
  pollMs: number;
  leaseMs: number;
  observer?: DeliveryObserver;
  /** fetch is injectable for tests. */
  fetch?: typeof fetch;
}

/** composeSink builds filter → queue → retry → HTTP for one endpoint. */
export function composeSink(
  endpoint: EndpointConfig,
  deps: Pick<DeliveryDeps, 'clock' | 'observer' | 'fetch'>,
  deadLetter: (e: Event, attempts: number, err: unknown) => Promise<void>,
): { sink: Sink; retry: RetryingSink; filter: FilterSink } {
  const cfg = resolveEndpoint(endpoint);
  const http = new HttpSink({
    url: cfg.url,
    format: cfg.format,
    headers: cfg.headers,
    secret: cfg.secret,
    timeoutMs: cfg.timeoutSeconds * 1000,
    clock: deps.clock,
    observer: deps.observer,
    fetch: deps.fetch,
  });
  const retry = new RetryingSink(http, {
    clock: deps.clock,
    backoffMs: cfg.backoffMillis,
    maxBackoffMs: cfg.maxBackoffMillis,
    threshold: cfg.threshold,
    maxAttempts: cfg.maxAttempts,
    maxAgeMs: cfg.maxAgeSeconds * 1000,
    deadLetter,
    observer: deps.observer,
  });
  const filter = new FilterSink(new QueueSink(retry), cfg.ignore ?? {});
  return { sink: filter, retry, filter };
}

/**
 * endpointLease is the lease `events/leases/<endpoint>/<epoch>` of one endpoint's delivery
 * (or, named `_retention`, of the outbox pruning): one replica at a time does that job.
 */
export function endpointLease(
  driver: StorageDriver,
  endpoint: string,
  holder: string,
  ttlMs: number,
  clock: Clock,
): StorageLease {
  return new StorageLease(driver, {
    root: Paths.eventsLeasesRoot(endpoint),
    key: (epoch) => Paths.eventsLease(endpoint, epoch),
    holder,
    ttlMs,
    clock,
  });
}

/**
 * EndpointDelivery delivers the outbox to one endpoint: while this replica holds the
 * endpoint's lease, it reads events after the endpoint's cursor (skipping entries younger
 * than the settle window), writes them one by one through the sink, and advances the cursor
 * in storage after each. At least once: a crash between delivery and the cursor write
 * resends that one event. In order: one event at a time, in outbox order.
 */
export class EndpointDelivery {
  readonly name: string;
  private readonly lease: StorageLease;
  private readonly sink: Sink;
  readonly retry: RetryingSink;
  private readonly filter: FilterSink;
  private current: Position | undefined;
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;
  private heartbeat: Timer | undefined;

  constructor(
    private readonly cfg: EndpointConfig,
    private readonly deps: DeliveryDeps,
  ) {
    this.name = cfg.name;
    this.lease = endpointLease(deps.driver, cfg.name, deps.holder, deps.leaseMs, deps.clock);
    const composed = composeSink(cfg, deps, (e, attempts, err) =>
      this.deadLetter(e, attempts, err),
    );
    this.sink = composed.sink;
    this.retry = composed.retry;
    this.filter = composed.filter;
  }

  /** cursor is the position of the last event handled, from storage. */
  async cursor(): Promise<Position | undefined> {
    try {
      const raw = JSON.parse(
        (await this.deps.driver.get(Paths.eventsCursor(this.name))).toString('utf8'),
      ) as { position?: string };
      return raw.position === undefined ? undefined : parsePosition(raw.position);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  private async saveCursor(p: Position): Promise<void> {
    await this.deps.driver.put(
      Paths.eventsCursor(this.name),
      JSON.stringify({ position: formatPosition(p), updatedAt: this.deps.clock.now() }),
    );
  }

  private async deadLetter(e: Event, attempts: number, err: unknown): Promise<void> {
    const position = formatPosition(this.current!);
    const rec: DeadLetter = {
      endpoint: this.name,
      position,
      event: e,
      attempts,
      error: (err as Error).message,
      deadAt: new Date(this.deps.clock.now()).toISOString(),
    };
    await this.deps.driver.put(Paths.eventsDead(this.name, position), JSON.stringify(rec));
    this.deps.log.warn({ endpoint: this.name, position, attempts }, 'event dead-lettered');
  }

  /**
   * tick runs one round: returns the number of events handled (0 when this replica does not
   * hold the lease or nothing is due).
   */
  async tick(limit = 100): Promise<number> {
    if (!(await this.lease.hold())) return 0;
    const after = await this.cursor();
    const { items } = await this.deps.outbox.read(
      after,
      limit,
      this.deps.clock.now() - this.deps.settleMs,
    );
    let n = 0;
    // Events the endpoint ignores advance the cursor without a write of their own.
    let unsaved: Position | undefined;
    for (const item of items) {
      if (this.abort.signal.aborted) break;
      if (!(await this.lease.hold())) break;
      if (this.filter.ignored(item.event)) {
        unsaved = item.position;
        n++;
        continue;
      }
      this.current = item.position;
      try {
        await this.sink.write(item.event);
      } catch (err) {
        if (err instanceof SinkClosedError) break;
        throw err;
      }
      // A holder that lost the lease during a long retry must not move the cursor back.
      if (!(await this.lease.hold())) break;
      await this.saveCursor(item.position);
      unsaved = undefined;
      n++;
    }
    if (unsaved && (await this.lease.hold())) await this.saveCursor(unsaved);
    return n;
  }

  /** backlog counts undelivered outbox entries (capped) and the oldest one's age in ms. */
  async backlog(cap = 1000): Promise<{ entries: number; oldestMs: number | undefined }> {
    const after = await this.cursor();
    const page = await this.deps.driver.list(Paths.eventsLogRoot(), {
      startAfter: after?.entry,
      limit: cap,
    });
    const first = page.names[0];
    return {
      entries: page.names.length,
      oldestMs:
        first === undefined ? undefined : this.deps.clock.now() - Number(first.slice(0, 13)),
    };
  }

  /** deadLetters lists the dead-letter records of this endpoint (at most `limit`). */
  async deadLetters(limit = 1000): Promise<DeadLetter[]> {
    const root = Paths.eventsDeadRoot(this.name);
    const page = await this.deps.driver.list(root, { limit });
    const out: DeadLetter[] = [];
    for (const n of page.names)
      out.push(JSON.parse((await this.deps.driver.get(root + n)).toString('utf8')) as DeadLetter);
    return out;
  }

  start(): void {
    // Renew the lease while a delivery waits for its retries, so no one else takes over.
    this.heartbeat = this.deps.clock.every(this.deps.leaseMs / 3, () => {
      this.lease.hold().catch(() => undefined);
    });
    this.loop = (async () => {
      while (!this.abort.signal.aborted) {
        let n = 0;
        try {
          n = await this.tick();
        } catch (err) {
          this.deps.log.warn({ err, endpoint: this.name }, 'event delivery round failed');
        }
        if (n === 0) await this.deps.clock.sleep(this.deps.pollMs, this.abort.signal);
      }
    })();
  }

  /** stop ends the loop, abandons a pending retry (the event stays due) and frees the lease. */
  async stop(): Promise<void> {
    this.heartbeat?.cancel();
    this.abort.abort();
    await this.retry.close();
    await this.sink.close();
    await this.loop;
    await this.lease.release().catch(() => undefined);
  }
}

/** Notifier runs one {@link EndpointDelivery} per enabled endpoint. */
export class Notifier {
  readonly endpoints: EndpointDelivery[];

  constructor(
    cfg: NotificationsConfig,
    deps: Omit<DeliveryDeps, 'settleMs' | 'pollMs' | 'leaseMs' | 'observer'> & {
      observerFor?: ObserverFactory;
    },
  ) {
    this.endpoints = cfg.endpoints
      .filter((e) => e.disabled !== true)
      .map(
        (e) =>
          new EndpointDelivery(e, {
            ...deps,
            settleMs: cfg.settleMillis,
            pollMs: cfg.pollMillis,
            leaseMs: cfg.leaseSeconds * 1000,
            observer: deps.observerFor?.(e.name),
          }),
      );
  }

  start(): void {
    for (const e of this.endpoints) e.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.endpoints.map((e) => e.stop()));
  }
}
