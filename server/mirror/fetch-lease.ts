import { randomUUID } from 'node:crypto';
import type { Digest } from '../registry/reference.js';
import { isNotFound, type StorageDriver } from '../storage/driver.js';
import { Paths } from '../storage/paths.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';

/** FetchRecord is what a blob's fetch marker holds. */
interface FetchRecord {
  holder: string;
  /** token names one claim, so a holder never mistakes a later claim for its own. */
  token: string;
  /** expiresAt is the holder's clock (ms) after which anyone may take the fetch over. */
  expiresAt: number;
}

export interface FetchLeaseOptions {
  driver: Pick<StorageDriver, 'getVersioned' | 'putIfVersion' | 'delete'>;
  clock: Clock;
  log: Logger;
  /** holder names this process in markers (for operators). */
  holder: string;
  /** ttlMs is how long a marker holds without renewal (renewed every third of it). */
  ttlMs?: number;
  /** maxWaitMs bounds one wait for another replica's fetch; then the waiter fetches itself. */
  maxWaitMs?: number;
}

/** FetchClaim is this process's claim on a blob's fetch: release it when the fetch ended. */
export interface FetchClaim {
  release(): Promise<void>;
}

/** WaitOutcome: the blob was stored, the marker went (free to claim), or the wait timed out. */
export type WaitOutcome = 'stored' | 'free' | 'timeout';

const TTL_MS = 10_000;
const MAX_WAIT_MS = 300_000;

/**
 * FetchLeases is the single flight of upstream blob fetches across the replicas of one
 * storage (ADR 0024, addendum). A replica that is about to fetch a blob first creates its
 * marker `mirror-fetches/<alg>-<hex>` by compare-and-set (absent, or expired by the
 * holder's clock); of replicas racing, exactly one wins. The winner renews the marker every
 * third of the TTL while it fetches and deletes it when the fetch ended, stored or not. The
 * others wait until the blob is stored, or the marker is gone or expired (a holder that died
 * or failed: they race to claim it again), or `maxWaitMs` passed (they fetch without a
 * claim). So a holder killed mid-fetch costs the waiters at most the TTL.
 */
export class FetchLeases {
  private readonly ttlMs: number;
  private readonly maxWaitMs: number;

  constructor(private readonly o: FetchLeaseOptions) {
    this.ttlMs = o.ttlMs ?? TTL_MS;
    this.maxWaitMs = o.maxWaitMs ?? MAX_WAIT_MS;
  }

  /**
   * claim makes this process the fetcher of `digest`: resolves a claim, or undefined when
   * another replica holds an unexpired marker (or won the race for it).
   */
  async claim(digest: Digest): Promise<FetchClaim | undefined> {
    const key = Paths.mirrorFetch(digest);
    const cur = await this.read(key);
    if (cur?.record && cur.record.expiresAt > this.o.clock.now()) return undefined;
    const token = randomUUID();
    if (!(await this.o.driver.putIfVersion(key, this.record(token), cur?.version ?? null)))
      return undefined;
    return this.held(key, token);
  }

  /**
   * waitFor waits while another replica fetches `digest`: until `stored()` resolves true,
   * the marker is gone or expired, or the bounded wait is over. Polls 50 ms to 1 s apart.
   */
  async waitFor(digest: Digest, stored: () => Promise<boolean>): Promise<WaitOutcome> {
    const key = Paths.mirrorFetch(digest);
    const deadline = this.o.clock.now() + this.maxWaitMs;
    for (let i = 0; this.o.clock.now() < deadline; i++) {
      await this.o.clock.sleep(Math.min(50 * 2 ** i, 1000));
      if (await stored()) return 'stored';
      const cur = await this.read(key);
      if (!cur?.record || cur.record.expiresAt <= this.o.clock.now()) return 'free';
    }
    return 'timeout';
  }

  private record(token: string): string {
    const r: FetchRecord = {
      holder: this.o.holder,
      token,
      expiresAt: this.o.clock.now() + this.ttlMs,
    };
    return JSON.stringify(r);
  }

  private async read(key: string): Promise<{ record?: FetchRecord; version: string } | undefined> {
    try {
      const v = await this.o.driver.getVersioned(key);
      let record: FetchRecord | undefined;
      try {
        record = JSON.parse(v.data.toString('utf8')) as FetchRecord;
      } catch {
        record = undefined; // unreadable: treated as expired
      }
      return { record, version: v.version };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** held renews the marker while the claim lasts, by compare-and-set on its own record. */
  private held(key: string, token: string): FetchClaim {
    let timer: { cancel(): void } | undefined;
    let over = false;
    const renew = async () => {
      const cur = await this.read(key);
      if (over || cur?.record?.token !== token) return; // released, or taken over
      if (await this.o.driver.putIfVersion(key, this.record(token), cur.version)) schedule();
    };
    const schedule = () => {
      timer = this.o.clock.after(this.ttlMs / 3, () => {
        renew().catch((err: unknown) =>
          this.o.log.warn({ err, key }, 'mirror fetch marker not renewed'),
        );
      });
    };
    schedule();
    return {
      release: async () => {
        over = true;
        timer?.cancel();
        const cur = await this.read(key);
        if (cur?.record?.token === token) await this.o.driver.delete(key);
      },
    };
  }
}
