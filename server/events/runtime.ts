import type { NotificationsConfig } from '../config/types.js';
import type { Repository } from '../registry/repository.js';
import type { StorageDriver } from '../storage/driver.js';
import type { StorageLease } from '../storage/lease.js';
import type { Logger } from '../util/log.js';
import { systemClock, type Clock, type Timer } from '../util/clock.js';
import { endpointLease, Notifier, type ObserverFactory } from './delivery.js';
import { Emitter } from './emitter.js';
import { Outbox, PullBuffer, type Position, type Positioned } from './outbox.js';
import { eventingRepository } from './repository.js';

/** RETENTION_LEASE names the lease of outbox pruning (no endpoint name has `_`). */
const RETENTION_LEASE = '_retention';
const PRUNE_INTERVAL_MS = 10 * 60_000;

/**
 * EventsRuntime is the events subsystem of one server: the outbox, the pull buffer, the
 * emitter with its repository decorator, the delivery to endpoints, and reads for the
 * events API.
 */
export class EventsRuntime {
  readonly outbox: Outbox;
  readonly pulls: PullBuffer;
  readonly emitter: Emitter;
  readonly notifier: Notifier;
  readonly clock: Clock;
  private readonly retentionLease: StorageLease;
  private pruner: Timer | undefined;
  private readonly streaming = new AbortController();

  /**
   * streamsEnded is aborted when the server starts draining: open event streams end then
   * (their clients resume with Last-Event-ID), so they never hold a shutdown open.
   */
  get streamsEnded(): AbortSignal {
    return this.streaming.signal;
  }

  /** endStreams ends every open event stream; idempotent. */
  endStreams(): void {
    this.streaming.abort();
  }

  constructor(
    readonly config: NotificationsConfig,
    driver: StorageDriver,
    private readonly log: Logger,
    opts: {
      listenAddr: string;
      clock?: Clock;
      observerFor?: ObserverFactory;
      fetch?: typeof fetch;
    },
  ) {
    this.clock = opts.clock ?? systemClock;
    this.outbox = new Outbox(driver, this.clock);
    this.pulls = new PullBuffer(this.outbox, log);
    this.emitter = new Emitter(
      this.outbox,
      this.pulls,
      this.clock,
      config.includeReferences,
      opts.listenAddr,
    );
    this.notifier = new Notifier(config, {
      driver,
      outbox: this.outbox,
      clock: this.clock,
      log,
      holder: `${this.emitter.sourceAddr}/${this.outbox.instance}`,
      observerFor: opts.observerFor,
      fetch: opts.fetch,
    });
    this.retentionLease = endpointLease(
      driver,
      RETENTION_LEASE,
      `${this.emitter.sourceAddr}/${this.outbox.instance}`,
      config.leaseSeconds * 1000,
      this.clock,
    );
  }

  /** decorate is the Registry's repository decorator. */
  readonly decorate = (repo: Repository): Repository => eventingRepository(repo, this.emitter);

  /** read lists events after `after` that are older than the settle window. */
  read(after: Position | undefined, n: number): Promise<{ items: Positioned[]; more: boolean }> {
    return this.outbox.read(after, n, this.clock.now() - this.config.settleMillis);
  }

  /**
   * prune deletes outbox entries older than the retention that every endpoint's cursor has
   * passed (an endpoint that is behind keeps its events), when this replica holds the
   * retention lease. Returns the number of entries deleted.
   */
  async prune(): Promise<number> {
    if (!(await this.retentionLease.hold())) return 0;
    let upTo: string | undefined;
    for (const d of this.notifier.endpoints) {
      const c = await d.cursor();
      if (c === undefined) return 0;
      // The cursor's own entry may hold more events: it is kept.
      if (upTo === undefined || c.entry < upTo) upTo = c.entry;
    }
    const cutoff = this.clock.now() - this.config.retentionHours * 3_600_000;
    return this.outbox.prune(cutoff, upTo);
  }

  start(): void {
    this.pulls.start(this.config.pullFlushMillis);
    this.notifier.start();
    this.pruner = this.clock.every(PRUNE_INTERVAL_MS, () => {
      this.prune().catch((err: unknown) => this.log.warn({ err }, 'outbox prune failed'));
    });
  }

  /** stop flushes buffered pulls and stops delivery (leases are released). */
  async stop(): Promise<void> {
    this.pruner?.cancel();
    await this.pulls.stop();
    await this.notifier.stop();
    await this.retentionLease.release().catch(() => undefined);
  }
}
