import { systemClock, type Clock } from '../util/clock.js';
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { GcConfig } from '../config/types.js';
import type { StorageDriver } from '../storage/driver.js';
import { Paths } from '../storage/paths.js';
import type { Logger } from '../util/log.js';
import { StorageLease } from '../storage/lease.js';
import { plan, planItems } from './plan.js';
import { emptyStats, type GcEvents, type GcReport, type GcStats } from './report.js';
import { restoreNeeded } from './restore.js';
import { compilePolicies, type CompiledPolicy, type RetentionTarget } from './retention.js';
import { GcRun, type RunContext } from './run.js';
import { readAges, readRepository, readSnapshot, RefCache } from './snapshot.js';
import { sweep, type SweepDeps } from './sweep.js';

export {
  GC_KINDS,
  type GcEvents,
  type GcItem,
  type GcKind,
  type GcReport,
  type GcStats,
} from './report.js';
export type { RetentionTarget } from './retention.js';

export interface CollectorOptions {
  /** driver is the store; its `abortStaleMultipartUploads`, if any, runs after each sweep. */
  driver: StorageDriver;
  registry: RetentionTarget;
  log: Logger;
  gc: Pick<GcConfig, 'graceSeconds' | 'leaseSeconds' | 'settleMillis' | 'policies'>;
  /** uploadTtlSeconds is `uploads.ttlSeconds`: sessions older than it plus grace are purged. */
  uploadTtlSeconds: number;
  /** clock reads the time, paces the settle pause and the lease's renewal (systemClock). */
  clock?: Clock;
  /** sleep is the settle pause (default the clock's sleep); tests act during it. */
  sleep?: (ms: number) => Promise<void>;
  /** holder names this process in the lease. */
  holder?: string;
  /** concurrency bounds storage calls in flight. */
  concurrency?: number;
}

/** GcAbortedError stops a run that `abort()` was called on (its checkpoint stays). */
export class GcAbortedError extends Error {
  override readonly name = 'GcAbortedError';
  constructor() {
    super('gc run aborted');
  }
}

/** LeaseLostError stops a run whose lease can no longer be relied on. */
export class LeaseLostError extends Error {
  override readonly name = 'LeaseLostError';
  constructor() {
    super('gc lease lost');
  }
}

/**
 * GarbageCollector runs online garbage collection and retention over a store that replicas
 * keep writing to. One run: mark (read the store in a fixed order, snapshot.ts), plan (decide
 * purely what is unreachable and older than the grace window, plan.ts), then sweep with a
 * re-check of every candidate right before its deletion (sweep.ts). Pointers (tags,
 * manifests, links, descriptors) go first; bytes (segments) named by a deleted pointer wait
 * at least one grace window more, so a reader that saw the pointer just before it went can
 * still link it. Deleted links a concurrent push came to reference are restored after a
 * settle pause (restore.ts). A real run holds the lease `gc/lease/…`; a crash leaves
 * `gc/state` naming the run (run.ts, state.ts), and the next run finishes it.
 * The safety argument is in docs/adr/0007-online-gc.md.
 */
export class GarbageCollector extends EventEmitter<GcEvents> {
  private readonly clock: Clock;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly policies: CompiledPolicy[];
  private readonly lease: StorageLease;
  private readonly cache = new RefCache();
  private readonly concurrency: number;
  private readonly counters = emptyStats();
  private active: Promise<GcReport | undefined> | undefined;
  private readonly holder: string;
  private aborting = false;

  constructor(private readonly opts: CollectorOptions) {
    super();
    this.clock = opts.clock ?? systemClock;
    this.sleep = opts.sleep ?? ((ms) => this.clock.sleep(ms));
    this.policies = compilePolicies(opts.gc.policies);
    this.concurrency = opts.concurrency ?? 16;
    this.holder = opts.holder ?? `${hostname()}/${process.pid}/${randomBytes(4).toString('hex')}`;
    this.lease = new StorageLease(opts.driver, {
      root: Paths.gcLeaseRoot(),
      key: Paths.gcLease,
      holder: this.holder,
      ttlMs: opts.gc.leaseSeconds * 1000,
      clock: this.clock,
    });
  }

  /**
   * abort stops the run in progress at its next storage step (it rejects with
   * GcAbortedError); its checkpoint stays, so the next run finishes the job.
   */
  abort(): void {
    if (this.active) this.aborting = true;
  }

  /** stats returns a copy of the cumulative counters. */
  stats(): GcStats {
    return structuredClone(this.counters);
  }

  /**
   * run does one collection. A dry run reads only and reports what a real run would delete
   * now. A real run resolves undefined without doing anything when another replica holds the
   * lease. Runs in one process never overlap: a call during a run waits for it and returns
   * its report.
   */
  run(opts: { dryRun: boolean }): Promise<GcReport | undefined> {
    if (this.active) return this.active;
    const p = this.runOnce(opts.dryRun).finally(() => {
      this.active = undefined;
      this.aborting = false;
    });
    this.active = p;
    return p;
  }

  private async runOnce(dryRun: boolean): Promise<GcReport | undefined> {
    if (!dryRun && !(await this.lease.acquire())) {
      await this.busy();
      return undefined;
    }
    const runId = `${new Date(this.clock.now()).toISOString().replace(/[:.]/g, '')}-${randomBytes(3).toString('hex')}`;
    this.counters.running = true;
    // Long steps (a big mark) must not let the lease lapse: renew in the background too.
    const keepalive = dryRun
      ? undefined
      : this.clock.every(
          (this.opts.gc.leaseSeconds * 1000) / 4,
          () => void this.lease.ensure().catch(() => undefined),
        );
    try {
      const report = await this.collect(runId, dryRun);
      this.finished(report);
      return report;
    } catch (err) {
      this.counters.failures++;
      this.emit('run-failed', { runId, error: err as Error });
      this.opts.log.error({ runId, err }, 'gc run failed');
      throw err;
    } finally {
      keepalive?.cancel();
      this.counters.running = false;
      delete this.counters.phase;
      if (!dryRun) await this.lease.release().catch(() => undefined);
    }
  }

  private async busy(): Promise<void> {
    this.counters.busy++;
    const holder = (await this.lease.current().catch(() => undefined))?.holder;
    this.opts.log.info({ holder }, 'gc skipped: another replica holds the lease');
    this.emit('busy', { holder });
  }

  private finished(report: GcReport): void {
    const { runId, dryRun } = report;
    if (dryRun) this.counters.dryRuns++;
    else this.counters.runs++;
    this.counters.lastRun = {
      runId,
      dryRun,
      finishedAt: report.finishedAt,
      bytesFreed: report.bytesFreed,
      deleted: report.deleted.length,
    };
    this.emit('run-finished', report);
    this.opts.log.info(
      {
        runId,
        dryRun,
        resumedFrom: report.resumedFrom,
        counts: report.counts,
        bytesFreed: report.bytesFreed,
        skipped: report.skipped.length,
        restored: report.restored.length,
        durationMs: Date.parse(report.finishedAt) - Date.parse(report.startedAt),
      },
      dryRun ? 'gc dry run finished' : 'gc run finished',
    );
  }

  /** guard throws unless the lease may still be relied on (renewing it when due). */
  private async guard(): Promise<void> {
    if (this.aborting) throw new GcAbortedError();
    if (!(await this.lease.ensure()) || !this.lease.valid()) throw new LeaseLostError();
  }

  /** collect is one run's phases: mark, plan, then report (dry run) or sweep. */
  private async collect(runId: string, dryRun: boolean): Promise<GcReport> {
    const { driver, log } = this.opts;
    const run = await GcRun.begin(this.runContext(), runId, dryRun);
    run.phase('mark');
    let snap = await readSnapshot(driver, this.cache, this.concurrency);
    if (!dryRun && run.undo.length > 0) {
      // An interrupted run's deleted links that a manifest now names come back first.
      await restoreNeeded(snap.repos, run.undo, new Map(), this.sweepDeps(), (i) =>
        run.restored(i),
      );
      // Restored links name segments the mark must see.
      if (run.report.restored.length > 0)
        snap = await readSnapshot(driver, this.cache, this.concurrency);
    }
    run.phase('plan');
    const planned = await plan(
      {
        snap,
        policies: this.policies,
        now: run.start,
        cutoff: run.cutoff,
        deferred: run.state.deferred,
        uploadTtlMs: this.opts.uploadTtlSeconds * 1000,
      },
      { ages: (keys) => readAges(driver, keys, this.concurrency), log },
    );
    if (dryRun) for (const item of planItems(planned)) run.planned(item);
    else await sweep(run, planned, this.sweepDeps());
    return run.finish();
  }

  private runContext(): RunContext {
    return {
      driver: this.opts.driver,
      log: this.opts.log,
      clock: this.clock,
      events: this,
      counters: this.counters,
      guard: () => this.guard(),
      holder: this.holder,
      graceSeconds: this.opts.gc.graceSeconds,
    };
  }

  private sweepDeps(): SweepDeps {
    const { driver, registry, log, gc } = this.opts;
    return {
      driver,
      registry,
      log,
      concurrency: this.concurrency,
      clock: this.clock,
      sleep: this.sleep,
      graceSeconds: gc.graceSeconds,
      settleMillis: gc.settleMillis,
      uploadTtlSeconds: this.opts.uploadTtlSeconds,
      reread: (name) => readRepository(driver, name, this.cache, this.concurrency),
    };
  }
}
