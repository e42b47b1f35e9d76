import { isNotFound, listAll, type StorageDriver } from '../storage/driver.js';
import { Paths } from '../storage/paths.js';
import type { Clock } from './clock.js';

interface LeaseBody {
  holder: string;
  expiresAt: number;
}

/**
 * Lease makes one replica among those sharing a bucket the deliverer of one endpoint.
 *
 * Leases are numbered epochs, `events/leases/<endpoint>/<epoch>`. The newest epoch is the
 * lease. Its holder renews it by rewriting it (only the holder writes it); anyone who finds
 * it expired takes over by creating the NEXT epoch with `putIfAbsent`, which exactly one
 * contender wins. A holder that finds a newer epoch than its own has lost the lease.
 *
 * Guarantee: with clocks that agree within the renewal margin (a third of the TTL), at most
 * one replica believes it holds the lease at any time.
 */
export class Lease {
  private held: { epoch: number; renewAt: number; expiresAt: number } | undefined;

  constructor(
    private readonly driver: StorageDriver,
    private readonly endpoint: string,
    readonly holder: string,
    private readonly ttlMs: number,
    private readonly clock: Clock,
  ) {}

  private running: Promise<boolean> | undefined;

  /**
   * acquire returns true while this replica holds the lease (taking or renewing it).
   * Concurrent calls share one attempt.
   */
  acquire(): Promise<boolean> {
    this.running ??= this.attempt().finally(() => (this.running = undefined));
    return this.running;
  }

  private async attempt(): Promise<boolean> {
    const now = this.clock.now();
    if (this.held && now < this.held.renewAt) return true;
    const root = Paths.eventsLeasesRoot(this.endpoint);
    const names = await listAll(this.driver, root);
    const last = names[names.length - 1];
    if (last === undefined) return this.take(1, now);
    const epoch = Number(last);
    let body: LeaseBody;
    try {
      body = JSON.parse(
        (await this.driver.get(Paths.eventsLease(this.endpoint, epoch))).toString('utf8'),
      ) as LeaseBody;
    } catch (err) {
      if (isNotFound(err) || err instanceof SyntaxError) return false;
      throw err;
    }
    if (body.holder === this.holder && this.held?.epoch === epoch) {
      await this.write(epoch, now, false);
      return true;
    }
    this.held = undefined;
    if (now < body.expiresAt) return false;
    const won = await this.take(epoch + 1, now);
    if (won) {
      for (const n of names) await this.driver.delete(root + n);
    }
    return won;
  }

  private async take(epoch: number, now: number): Promise<boolean> {
    return this.write(epoch, now, true);
  }

  private async write(epoch: number, now: number, create: boolean): Promise<boolean> {
    const body: LeaseBody = { holder: this.holder, expiresAt: now + this.ttlMs };
    const key = Paths.eventsLease(this.endpoint, epoch);
    if (create) {
      if (!(await this.driver.putIfAbsent(key, JSON.stringify(body)))) return false;
    } else await this.driver.put(key, JSON.stringify(body));
    this.held = { epoch, renewAt: now + this.ttlMs / 3, expiresAt: body.expiresAt };
    return true;
  }

  /** release gives the lease up at once (on shutdown), so another replica takes over. */
  async release(): Promise<void> {
    if (!this.held) return;
    const { epoch } = this.held;
    this.held = undefined;
    const body: LeaseBody = { holder: this.holder, expiresAt: 0 };
    await this.driver.put(Paths.eventsLease(this.endpoint, epoch), JSON.stringify(body));
  }
}
