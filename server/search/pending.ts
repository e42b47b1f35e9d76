import { isNotFound, listAll, type StorageDriver } from '../storage/driver.js';
import { Paths } from '../storage/paths.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';

/** REFRESH_MS: a mark held this long is written again, so no replica takes it for orphaned. */
export const PENDING_REFRESH_MS = 15_000;
/** PENDING_ORPHAN_MS: a mark not written for this long is repaired by any process. */
export const PENDING_ORPHAN_MS = 60_000;

/** Hold is one repository's mark while updates this process queued for it are not stored. */
interface Hold {
  holders: number;
  written: Promise<void>;
  at: number;
}

/** PendingMark is a mark found in storage with its time, for the repair pass. */
export interface PendingMark {
  repository: string;
  key: string;
  modified: number;
}

/**
 * PendingMarks keeps `search-pending/<name>@<instance>` (ADR 0023 addendum): while an update
 * this process queued for a repository is not stored, the repository's mark is in storage,
 * written before the write it follows is acknowledged. When the last queued update is
 * stored, the mark is deleted; when one fails, it stays (and `kept` keeps later releases
 * from deleting it) for the repair pass, which rebuilds any repository whose mark has not
 * been written for PENDING_ORPHAN_MS: a process that died with queued updates, or one
 * whose update failed. A live holder writes its mark again every PENDING_REFRESH_MS.
 */
export class PendingMarks {
  private readonly held = new Map<string, Hold>();
  /** releasing: per repository, the deletion of its mark under way; a new hold waits for it. */
  private readonly releasing = new Map<string, Promise<void>>();
  private readonly kept = new Set<string>();

  constructor(
    private readonly driver: StorageDriver,
    readonly instance: string,
    private readonly clock: Clock,
    private readonly log?: Logger,
  ) {}

  /**
   * hold resolves once `repository`'s mark is in storage, and returns the hold to release
   * when the update it covers is stored (or failed). Rejects when the mark cannot be
   * written: then nothing is held.
   */
  async hold(repository: string): Promise<Hold> {
    const now = this.clock.now();
    let h = this.held.get(repository);
    if (!h) {
      const before = this.releasing.get(repository) ?? Promise.resolve();
      h = { holders: 0, at: now, written: before.then(() => this.write(repository)) };
      this.held.set(repository, h);
    } else if (now - h.at >= PENDING_REFRESH_MS) {
      h.at = now;
      h.written = h.written.then(() => this.write(repository));
    }
    h.holders++;
    const hold = h;
    try {
      await hold.written;
      return hold;
    } catch (err) {
      hold.holders--;
      // A failed write holds nothing: the next hold writes the mark again.
      if (this.held.get(repository) === hold) this.held.delete(repository);
      throw err;
    }
  }

  /**
   * release ends one hold. `stored` tells whether its update was stored; if not, the mark
   * stays for the repair pass. The last hold of a repository deletes its mark.
   */
  release(repository: string, hold: Hold, stored: boolean): void {
    hold.holders--;
    if (!stored) this.kept.add(repository);
    if (hold.holders > 0 || this.held.get(repository) !== hold) return;
    this.held.delete(repository);
    if (this.kept.has(repository)) return;
    const key = Paths.searchPending(repository, this.instance);
    const before = this.releasing.get(repository) ?? Promise.resolve();
    const done: Promise<void> = before
      .then(() => this.driver.delete(key))
      .catch((err: unknown) =>
        this.log?.warn({ err, repository }, 'search pending mark not removed'),
      )
      .finally(() => {
        if (this.releasing.get(repository) === done) this.releasing.delete(repository);
      });
    this.releasing.set(repository, done);
  }

  /** settled resolves once every mark deletion under way has ended. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.releasing.values()]);
  }

  /** orphans lists the marks of any process not written for PENDING_ORPHAN_MS. */
  async orphans(): Promise<PendingMark[]> {
    const out: PendingMark[] = [];
    const now = this.clock.now();
    for (const entry of await listAll(this.driver, Paths.searchPendingRoot())) {
      const parsed = Paths.searchPendingOf(entry);
      if (!parsed) continue;
      const key = Paths.searchPendingRoot() + entry;
      const modified = await this.modified(key);
      if (modified !== undefined && now - modified >= PENDING_ORPHAN_MS) {
        out.push({ repository: parsed.repository, key, modified });
      }
    }
    return out;
  }

  /**
   * clear deletes a repaired mark unless it was written again since it was listed (its
   * holder is alive and has queued more). Resolves true when it is gone.
   */
  async clear(mark: PendingMark): Promise<boolean> {
    const own = mark.key === Paths.searchPending(mark.repository, this.instance);
    if (own && this.held.has(mark.repository)) return false;
    const modified = await this.modified(mark.key);
    if (modified === undefined) return true;
    if (modified !== mark.modified) return false;
    await this.driver.delete(mark.key);
    if (own) this.kept.delete(mark.repository);
    return true;
  }

  private async write(repository: string): Promise<void> {
    const key = Paths.searchPending(repository, this.instance);
    await this.driver.put(key, JSON.stringify({ at: this.clock.now() }));
  }

  private async modified(key: string): Promise<number | undefined> {
    try {
      return (await this.driver.stat(key)).modified.getTime();
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }
}

export type { Hold as PendingHold };
