import { systemClock, type Clock } from '../util/clock.js';
import { isNotFound, type StorageDriver } from './driver.js';

/** LeaseRecord is what one epoch object of a lease holds. */
export interface LeaseRecord {
  holder: string;
  epoch: number;
  acquiredAt: number;
  /** expiresAt is the holder's clock (ms) after which anyone may take the lease; 0 = released. */
  expiresAt: number;
}

export interface LeaseOptions {
  /** root is the listing prefix of the epoch objects, ending with `/`. */
  root: string;
  /** key maps an epoch to its object key (below `root`, zero-padded so keys sort by epoch). */
  key: (epoch: number) => string;
  /** holder names this process in the record (for logs and operators). */
  holder: string;
  ttlMs: number;
  /** clock reads the time of expiries (default systemClock). */
  clock?: Clock;
}

/**
 * StorageLease is a mutual-exclusion lease kept in storage, so one replica at a time does a
 * job on a shared bucket (a garbage collection run, an endpoint's event delivery, the events
 * outbox retention). Each holder owns one *epoch* object, created with `putIfAbsent`:
 * taking over an expired lease means creating the next epoch, and of several replicas racing
 * for it exactly one wins. Only the holder rewrites its own epoch (to renew or release).
 *
 * Contract: `valid()` is true only while this process holds the newest epoch and its expiry,
 * by this process's clock, is more than a quarter of the TTL away. A caller must check it
 * right before each step that needs exclusion. The remaining race is clock skew between
 * replicas: keep the TTL far above it (seconds of skew against a TTL of minutes).
 */
export class StorageLease {
  private epoch: number | undefined;
  private expiresAt = 0;
  private acquiredAt = 0;
  private readonly clock: Clock;
  private holding: Promise<boolean> | undefined;

  constructor(
    private readonly driver: StorageDriver,
    private readonly opts: LeaseOptions,
  ) {
    this.clock = opts.clock ?? systemClock;
  }

  /** held is the epoch this process holds, if any (whether or not it is still valid). */
  get held(): number | undefined {
    return this.epoch;
  }

  /** valid reports whether the lease may be relied on right now (see the class contract). */
  valid(): boolean {
    return this.epoch !== undefined && this.clock.now() < this.expiresAt - this.opts.ttlMs / 4;
  }

  /**
   * acquire takes the lease if nobody holds it unexpired. Resolves true when this process
   * holds it afterwards (also when it already did), false when another holder does.
   */
  async acquire(): Promise<boolean> {
    if (this.valid()) return this.renew();
    const latest = await this.latest();
    const now = this.clock.now();
    if (
      latest?.record &&
      latest.record.expiresAt > now &&
      latest.record.holder !== this.opts.holder
    )
      return false;
    const epoch = (latest?.epoch ?? 0) + 1;
    const record: LeaseRecord = {
      holder: this.opts.holder,
      epoch,
      acquiredAt: now,
      expiresAt: now + this.opts.ttlMs,
    };
    if (!(await this.driver.putIfAbsent(this.opts.key(epoch), JSON.stringify(record))))
      return false;
    this.epoch = epoch;
    this.expiresAt = record.expiresAt;
    this.acquiredAt = now;
    await this.prune(epoch);
    return true;
  }

  /**
   * renew extends a lease this process holds. Resolves false (and forgets the lease) when it
   * had already expired or a newer epoch exists: the caller must stop the guarded work.
   */
  async renew(): Promise<boolean> {
    const epoch = this.epoch;
    if (epoch === undefined) return false;
    const now = this.clock.now();
    if (now >= this.expiresAt) return this.lose();
    const record: LeaseRecord = {
      holder: this.opts.holder,
      epoch,
      acquiredAt: this.acquiredAt,
      expiresAt: now + this.opts.ttlMs,
    };
    await this.driver.put(this.opts.key(epoch), JSON.stringify(record));
    const latest = await this.latest();
    if (latest?.epoch !== epoch) return this.lose();
    this.expiresAt = record.expiresAt;
    return true;
  }

  /** ensure renews when less than half the TTL is left; false when the lease is lost. */
  async ensure(): Promise<boolean> {
    if (this.epoch === undefined) return false;
    if (this.clock.now() < this.expiresAt - this.opts.ttlMs / 2) return true;
    return this.renew();
  }

  /**
   * hold keeps the lease or takes it when it is free, for work that checks it again before
   * each step: true while this process holds it. It renews once half the TTL has passed and
   * makes no storage call before that; concurrent calls share one attempt.
   */
  hold(): Promise<boolean> {
    if (this.epoch !== undefined && this.clock.now() < this.expiresAt - this.opts.ttlMs / 2) {
      return Promise.resolve(true);
    }
    this.holding ??= this.holdOnce().finally(() => (this.holding = undefined));
    return this.holding;
  }

  private async holdOnce(): Promise<boolean> {
    if (this.epoch !== undefined && (await this.ensure())) return true;
    return this.acquire();
  }

  /** release marks the lease free (expired) if this process holds it. Idempotent. */
  async release(): Promise<void> {
    const epoch = this.epoch;
    if (epoch === undefined) return;
    this.epoch = undefined;
    this.expiresAt = 0;
    const latest = await this.latest();
    if (latest?.epoch !== epoch || latest.record?.holder !== this.opts.holder) return;
    const record: LeaseRecord = { ...latest.record, expiresAt: 0 };
    await this.driver.put(this.opts.key(epoch), JSON.stringify(record));
  }

  /** current reads the newest epoch's record (for status reports). */
  async current(): Promise<LeaseRecord | undefined> {
    return (await this.latest())?.record;
  }

  private lose(): false {
    this.epoch = undefined;
    this.expiresAt = 0;
    return false;
  }

  private async epochs(): Promise<string[]> {
    const names: string[] = [];
    let startAfter: string | undefined;
    for (;;) {
      const page = await this.driver.list(this.opts.root, { startAfter, limit: 1000 });
      names.push(...page.names);
      if (!page.truncated || page.names.length === 0) return names;
      startAfter = page.names[page.names.length - 1];
    }
  }

  private async latest(): Promise<{ epoch: number; record?: LeaseRecord } | undefined> {
    const names = (await this.epochs()).filter((n) => /^[0-9]+$/.test(n));
    const last = names[names.length - 1];
    if (last === undefined) return undefined;
    const epoch = Number(last);
    try {
      const record = JSON.parse(
        (await this.driver.get(this.opts.key(epoch))).toString('utf8'),
      ) as LeaseRecord;
      return { epoch, record };
    } catch (err) {
      // Unreadable or deleted between list and get: treat as expired, keep the epoch number.
      if (isNotFound(err) || err instanceof SyntaxError) return { epoch };
      throw err;
    }
  }

  /** prune deletes epochs older than the previous one (kept for operators to read). */
  private async prune(current: number): Promise<void> {
    for (const n of await this.epochs()) {
      if (/^[0-9]+$/.test(n) && Number(n) < current - 1)
        await this.driver.delete(this.opts.key(Number(n))).catch(() => undefined);
    }
  }
}
