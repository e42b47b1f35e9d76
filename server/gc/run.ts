import type { Clock } from '../util/clock.js';
import type { EventEmitter } from 'node:events';
import type { StorageDriver } from '../storage/driver.js';
import type { Logger } from '../util/log.js';
import {
  emptyCounts,
  inPlanOrder,
  type GcEvents,
  type GcItem,
  type GcReport,
  type GcStats,
  type RestoredItem,
} from './report.js';
import {
  forgetDue,
  loadState,
  saveState,
  type GcState,
  type RunCheckpoint,
  type UndoEntry,
} from './state.js';

/** CHECKPOINT_EVERY is how many deletions a sweep phase makes between checkpoints. */
const CHECKPOINT_EVERY = 200;

/** RunContext is what a run reports through and stores with; the collector owns it. */
export interface RunContext {
  driver: StorageDriver;
  log: Logger;
  clock: Clock;
  /** events hears the run's start, phases, deletions, skips and restores. */
  events: Pick<EventEmitter<GcEvents>, 'emit'>;
  /** counters are the collector's cumulative counters, which the run adds to. */
  counters: GcStats;
  /** guard throws unless the run may go on (not aborted, the lease still held). */
  guard: () => Promise<void>;
  /** holder names this process in the checkpoint. */
  holder: string;
  graceSeconds: number;
}

/**
 * GcRun is one run in progress: its report, the counters and events it feeds, and (in a real
 * run) its checkpoint in `gc/state`, which it writes only after `guard` passed. A crash leaves
 * the checkpoint naming the run; the next run resumes from it (see docs/adr/0007-online-gc.md).
 */
export class GcRun {
  readonly report: GcReport;
  private sinceCheckpoint = 0;

  private constructor(
    private readonly ctx: RunContext,
    /** state is `gc/state` as this run keeps it: its checkpoint and the deferrals. */
    readonly state: GcState,
    /** start is when the run started (ms, the collector's clock). */
    readonly start: number,
    /** cutoff is `start` minus the grace window: nothing modified since is a candidate. */
    readonly cutoff: number,
    report: GcReport,
  ) {
    this.report = report;
  }

  /**
   * begin starts run `id`: it reads `gc/state`, and a real run records itself there as in
   * phase `mark`, taking over the undo log of a run it resumes.
   */
  static async begin(ctx: RunContext, id: string, dryRun: boolean): Promise<GcRun> {
    const start = ctx.clock.now();
    const cutoff = start - ctx.graceSeconds * 1000;
    const state = await loadState(ctx.driver);
    const resumed = state.run;
    if (resumed && !dryRun)
      ctx.log.warn(
        { runId: id, resumedFrom: resumed.id, phase: resumed.phase, holder: resumed.holder },
        'resuming interrupted gc run',
      );
    ctx.events.emit('run-started', { runId: id, dryRun, resumedFrom: resumed?.id });
    const run = new GcRun(ctx, state, start, cutoff, {
      runId: id,
      dryRun,
      resumedFrom: resumed?.id,
      startedAt: new Date(start).toISOString(),
      finishedAt: '',
      cutoff: new Date(cutoff).toISOString(),
      deleted: [],
      skipped: [],
      restored: [],
      counts: emptyCounts(),
      bytesFreed: 0,
      multipartAborted: 0,
    });
    if (!dryRun) {
      state.run = {
        id,
        holder: ctx.holder,
        startedAt: start,
        phase: 'mark',
        deleted: 0,
        bytesFreed: 0,
        // An interrupted run's undo log survives until this run's post-check covered it.
        undo: resumed?.undo ?? [],
      };
      await run.save();
    }
    return run;
  }

  get id(): string {
    return this.report.runId;
  }

  /** record is this run's own checkpoint in `gc/state` (a dry run has none). */
  private get record(): RunCheckpoint | undefined {
    return this.report.dryRun ? undefined : this.state.run;
  }

  /** undo is the undo log of a real run: the links it (or the run it resumes) is deleting. */
  get undo(): UndoEntry[] {
    return this.record?.undo ?? [];
  }

  set undo(entries: UndoEntry[]) {
    if (this.record) this.record.undo = entries;
  }

  /** guard throws unless the run may go on (not aborted, the lease still held). */
  guard(): Promise<void> {
    return this.ctx.guard();
  }

  /** phase announces the step the run is in. */
  phase(phase: string): void {
    this.ctx.counters.phase = phase;
    this.ctx.events.emit('phase', { runId: this.id, phase });
  }

  /**
   * checkpoint records the phase and progress in the checkpoint, and writes it when forced
   * or every CHECKPOINT_EVERY calls.
   */
  async checkpoint(phase: string, force = false): Promise<void> {
    const run = this.record!;
    run.phase = phase;
    run.deleted = this.report.deleted.length;
    run.bytesFreed = this.report.bytesFreed;
    if (force || ++this.sinceCheckpoint >= CHECKPOINT_EVERY) {
      this.sinceCheckpoint = 0;
      await this.save();
    }
  }

  /** save writes `gc/state` once the guard passed. */
  async save(): Promise<void> {
    await this.guard();
    await saveState(this.ctx.driver, this.state);
  }

  /** planned reports an item a dry run would delete. */
  planned(item: GcItem): void {
    this.report.deleted.push(item);
    this.report.counts[item.kind]++;
    this.report.bytesFreed += item.bytes;
  }

  /** deleted reports an item the sweep deleted. */
  deleted(item: GcItem): void {
    this.planned(item);
    const { counters, events, log } = this.ctx;
    counters.deleted[item.kind]++;
    counters.bytesFreed += item.bytes;
    events.emit('deleted', item);
    log.debug({ runId: this.id, ...item }, 'gc deleted');
  }

  /** skipped reports a candidate the re-check right before its deletion kept. */
  skipped(item: GcItem): void {
    this.report.skipped.push(item);
    const { counters, events, log } = this.ctx;
    counters.skipped++;
    events.emit('skipped', item);
    log.debug({ runId: this.id, ...item }, 'gc kept a candidate after re-check');
  }

  /** restored reports a deletion put back because a concurrent push came to need it. */
  restored(item: RestoredItem): void {
    this.report.restored.push(item);
    const { counters, events, log } = this.ctx;
    counters.restored++;
    events.emit('restored', item);
    log.warn({ ...item }, 'gc restored a deletion a concurrent push needed');
  }

  /** close ends a real run's checkpoint: it forgets the run and the deferrals that are due. */
  async close(): Promise<void> {
    const now = this.ctx.clock.now();
    forgetDue(this.state, now);
    delete this.state.run;
    this.state.last = {
      id: this.id,
      finishedAt: now,
      deleted: this.report.deleted.length,
      bytesFreed: this.report.bytesFreed,
    };
    await this.save();
  }

  /** finish completes the report: deletions (made concurrently) in plan order, the end time. */
  finish(): GcReport {
    this.report.deleted.sort(inPlanOrder);
    this.report.finishedAt = new Date(this.ctx.clock.now()).toISOString();
    return this.report;
  }
}
