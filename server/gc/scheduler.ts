import { systemClock, type Clock, type Timer } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import type { GarbageCollector } from './collector.js';

export interface SchedulerOptions {
  intervalSeconds: number;
  dryRun: boolean;
  log: Logger;
  /** clock times the runs (default systemClock). */
  clock?: Clock;
}

/**
 * GcScheduler runs a collector every `intervalSeconds` inside the server. Every replica
 * schedules runs; the lease lets one of them work at a time and the others skip. A failed
 * run is logged and the schedule continues.
 */
export class GcScheduler {
  private timer: Timer | undefined;
  private stopped = false;
  private current: Promise<unknown> | undefined;

  constructor(
    private readonly gc: GarbageCollector,
    private readonly opts: SchedulerOptions,
  ) {}

  /** start schedules the first run one interval from now. Returns this. */
  start(): this {
    this.schedule();
    return this;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = (this.opts.clock ?? systemClock).after(this.opts.intervalSeconds * 1000, () => {
      this.current = this.gc
        .run({ dryRun: this.opts.dryRun })
        .catch((err: unknown) => this.opts.log.warn({ err }, 'scheduled gc run failed'))
        .finally(() => {
          this.current = undefined;
          this.schedule();
        });
    });
  }

  /**
   * stop cancels the schedule and aborts a run in progress at its next step (the run's
   * checkpoint stays, so the next run on any replica finishes it), then waits for it.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    if (this.current) {
      this.gc.abort();
      await this.current;
    }
  }
}
