import { listAll, type StorageDriver } from '../storage/driver.js';
import { Paths } from '../storage/paths.js';
import type { StorageViews } from '../storage/views.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { decodeDescriptor, type Segment } from './blobs.js';
import type { Algorithm } from './reference.js';
import type { UploadRecords } from './upload-records.js';
import { cancelled, expired, type Committed, type Saved } from './upload-state.js';

/**
 * COMMIT_GRACE_MS is how long after its claim a commit may still be linking: the purge
 * leaves a `committed` record younger than this alone, whatever the session's age.
 */
const COMMIT_GRACE_MS = 5 * 60 * 1000;

export interface UploadPurgeOptions {
  ttlSeconds: number;
  clock: Clock;
  log: Logger;
  /** abortStale aborts backend multipart uploads older than a date (S3). */
  abortStale?: (olderThan: Date) => Promise<number>;
}

/**
 * UploadPurge removes expired upload sessions. A session that was mid-commit keeps the bytes
 * a blob descriptor already points to; every record it ends is first made a tombstone by a
 * compare-and-set, so a request that read the record before can no longer use it.
 */
export class UploadPurge {
  private readonly driver: StorageDriver;

  constructor(
    private readonly storage: StorageViews,
    private readonly records: UploadRecords,
    private readonly opts: UploadPurgeOptions,
  ) {
    this.driver = storage.cached;
  }

  /**
   * run removes sessions older than the TTL with their bytes, and aborts the backend's
   * unfinished multipart uploads of the same age; returns how many records went. Safe on
   * every replica.
   */
  async run(): Promise<number> {
    let purged = 0;
    let startAfter: string | undefined;
    for (;;) {
      const page = await this.driver.list(Paths.uploadsRoot(), { startAfter, limit: 1000 });
      for (const id of page.names) {
        const record = await this.records.read(id).catch(() => undefined);
        if (!record || !expired(record, this.opts.clock.now(), this.opts.ttlSeconds)) continue;
        if (record.phase !== 'cancelled' && !(await this.retire(record))) continue;
        await this.records.remove(id);
        purged++;
      }
      if (!page.truncated) break;
      startAfter = page.names[page.names.length - 1];
    }
    if (this.opts.abortStale) {
      await this.opts.abortStale(new Date(this.opts.clock.now() - this.opts.ttlSeconds * 1000));
    }
    if (purged > 0) this.opts.log.info({ purged }, 'expired uploads purged');
    return purged;
  }

  /**
   * retire ends an expired session for the purge; false leaves it to the next round. A
   * claim younger than COMMIT_GRACE_MS may still be linking (its commit passed `get` just
   * before the session expired). The tombstone, which keeps the claim, goes first: a
   * request that read the record before it can no longer save, claim or cancel it. Then,
   * unless a descriptor names them, the session's bytes go, with those of a closing
   * request that never recorded them (claimed in their names).
   */
  private async retire(record: Saved | Committed): Promise<boolean> {
    const claimedAt = record.phase === 'committed' ? record.claim.at : undefined;
    if (claimedAt !== undefined && this.opts.clock.now() - claimedAt < COMMIT_GRACE_MS)
      return false;
    if (!(await this.records.swap(record, cancelled(record))).won) return false;
    const claimed = await this.claimedSegments(record.id);
    if (!(await this.inUse(record, claimed)))
      await discard(this.driver, [...record.segments, ...claimed]);
    return true;
  }

  /**
   * inUse reports whether a descriptor names the session's bytes: one of the digests it
   * was claimed as (saved, or in a segment's name) whose global or repository descriptor
   * points into the session's segments. Those bytes then belong to the blob.
   */
  private async inUse(record: Saved | Committed, claimed: Segment[]): Promise<boolean> {
    const claims = new Set<string>();
    if (record.phase === 'committed') claims.add(record.claim.digest);
    for (const seg of claimed) claims.add(Paths.segmentClaim(seg.key)!);
    for (const claim of claims) {
      const [alg, hex] = claim.split(':') as [Algorithm, string];
      const digest = { algorithm: alg, hex, value: claim };
      for (const key of [Paths.blob(digest), Paths.layer(record.repo, digest)]) {
        const desc = await this.storage.fresh.get(key).then(decodeDescriptor, () => undefined);
        if (desc?.segments.some((s) => s.key.startsWith(Paths.segmentsOf(record.id)))) return true;
      }
    }
    return false;
  }

  /** claimedSegments lists the session's segments that carry a claim in their names. */
  private async claimedSegments(id: string): Promise<Segment[]> {
    const names = await listAll(this.driver, Paths.segmentsOf(id));
    return names
      .filter((n) => Paths.segmentClaim(n) !== undefined)
      .map((n) => ({ key: Paths.segmentEntry(id, n), size: 0 }));
  }
}

/**
 * discard deletes the segments given, and nothing else: any other bytes under a session's
 * id are either a blob's (an earlier completion through the same Location) or garbage
 * collection's to judge.
 */
export async function discard(driver: StorageDriver, segments: Segment[]): Promise<void> {
  const keys = segments.map((seg) => seg.key);
  for (let i = 0; i < keys.length; i += 16) {
    await Promise.all(keys.slice(i, i + 16).map((key) => driver.delete(key)));
  }
}
