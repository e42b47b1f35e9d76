import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { resolveSyncJob, type ResolvedSyncJob, type SyncJobConfig } from '../config/sync.js';
import type { Upstream } from '../mirror/upstreams.js';
import type { Uploads } from '../registry/uploads.js';
import { isNotFound, type StorageDriver } from '../storage/driver.js';
import { StorageLease } from '../storage/lease.js';
import { Paths } from '../storage/paths.js';
import type { Clock, Timer } from '../util/clock.js';
import { parseCron, type Cron } from '../util/cron.js';
import type { Logger } from '../util/log.js';
import type { LocalRepository } from './local.js';
import { syncPass, type SyncCounts, type SyncSummary } from './pass.js';

/** SyncTrigger says what started a run. */
export type SyncTrigger = 'schedule' | 'start' | 'demand' | 'cli';

/** SyncResult is how a run ended: `busy` when another replica held the job's lease. */
export type SyncResult = 'success' | 'failure' | 'busy' | 'aborted';

/**
 * SyncRunRecord is a run as `sync/<job>/run` keeps it: written when the run starts (state
 * `running`) and when it ends. A record left `running` by a process that died is reported as
 * `interrupted` once the job's lease has expired; the next run resumes the job.
 */
export interface SyncRunRecord {
  runId: string;
  job: string;
  trigger: SyncTrigger;
  holder: string;
  state: 'running' | 'interrupted' | SyncResult;
  startedAt: string;
  finishedAt?: string;
  /** resumedFrom is the id of an interrupted run this one took over. */
  resumedFrom?: string;
  summary?: SyncSummary;
  error?: string;
}

/** SyncObserver hears runs and their progress (the metrics). */
export interface SyncObserver {
  progress(job: string, delta: Partial<SyncCounts>): void;
  finished(job: string, result: SyncResult, seconds: number, at: number): void;
}

/** SyncDeps is what the sync service runs on. */
export interface SyncDeps {
  driver: StorageDriver;
  /** upstream finds a configured upstream by name. */
  upstream: (name: string) => Upstream | undefined;
  /** mapped names the upstream a local repository maps to, if any. */
  mappedTo: (local: string) => string | undefined;
  local: (name: string) => LocalRepository;
  uploads: Pick<Uploads, 'oneShot' | 'complete'>;
  log: Logger;
  clock: Clock;
  observer?: SyncObserver;
  /** holder names this process in leases and records. */
  holder?: string;
  /** pass runs one pass of a job (default syncPass); tests give their own. */
  pass?: typeof syncPass;
}

/** SyncJobUnknownError is a run or status asked of a job the config does not name. */
export class SyncJobUnknownError extends Error {
  override readonly name = 'SyncJobUnknownError';
  constructor(readonly job: string) {
    super(`no sync job is named ${JSON.stringify(job)}`);
  }
}

class SyncAbortedError extends Error {
  override readonly name = 'SyncAbortedError';
}

interface Job {
  config: ResolvedSyncJob;
  /** cron is the job's `schedule`, when it has one (it then replaces the interval). */
  cron?: Cron;
  lease: StorageLease;
  timer?: Timer;
  active?: { runId: string; done: Promise<SyncRunRecord>; abort: AbortController };
}

/**
 * SyncService runs the sync jobs of `mirrors.sync` (ADR 0027): each at the times of its cron
 * `schedule` or every `intervalSeconds` (and once at start with `onStart`), or on demand.
 * Every replica schedules every job; a job's lease in storage (`sync/<job>/lease/`) lets
 * one replica run it at a time, the others end their run as `busy`. Runs of one job in one
 * process never overlap: asking for a run while one is under way returns that run. A run's
 * record is kept in storage, so any replica answers for the last run; a run cut by a crash
 * is finished by the next one, since every pass is idempotent.
 */
export class SyncService {
  private readonly jobs = new Map<string, Job>();
  private readonly holder: string;
  private stopped = false;

  constructor(
    configs: readonly SyncJobConfig[],
    private readonly deps: SyncDeps,
  ) {
    this.holder = deps.holder ?? `${hostname()}/${process.pid}/${randomBytes(4).toString('hex')}`;
    for (const c of configs) {
      const config = resolveSyncJob(c);
      const lease = new StorageLease(deps.driver, {
        root: Paths.syncLeaseRoot(config.name),
        key: (epoch) => Paths.syncLease(config.name, epoch),
        holder: this.holder,
        ttlMs: config.leaseSeconds * 1000,
        clock: deps.clock,
      });
      const cron = config.schedule === undefined ? undefined : parseCron(config.schedule);
      this.jobs.set(config.name, { config, cron, lease });
    }
  }

  /** names lists the configured jobs in config order. */
  get names(): string[] {
    return [...this.jobs.keys()];
  }

  /**
   * start schedules every job with a cron schedule or an interval (and runs those with
   * `onStart` now).
   */
  start(): this {
    for (const job of this.jobs.values()) {
      if (job.config.onStart) this.arm(job, 0, 'start');
      else this.armNext(job);
    }
    return this;
  }

  /** armNext schedules the job's next run: its next cron time, or an interval from now. */
  private armNext(job: Job): void {
    const now = this.deps.clock.now();
    const ms = job.cron
      ? job.cron.next(now) - now
      : job.config.intervalSeconds === 0
        ? undefined
        : job.config.intervalSeconds * 1000;
    if (ms !== undefined) this.arm(job, ms, 'schedule');
  }

  private arm(job: Job, ms: number, trigger: SyncTrigger): void {
    if (this.stopped) return;
    job.timer = this.deps.clock.after(ms, () => {
      void this.begin(job, trigger)
        .done.catch(() => undefined)
        .finally(() => this.armNext(job));
    });
  }

  /**
   * trigger starts a run of `name` now, or joins the one under way in this process, and
   * returns its id without waiting for it. Throws SyncJobUnknownError.
   */
  trigger(
    name: string,
    trigger: SyncTrigger = 'demand',
  ): { runId: string; done: Promise<SyncRunRecord> } {
    const job = this.job(name);
    const active = this.begin(job, trigger);
    return { runId: active.runId, done: active.done };
  }

  /** run runs `name` once (or joins the run under way) and resolves with its record. */
  run(name: string, trigger: SyncTrigger = 'cli'): Promise<SyncRunRecord> {
    return this.trigger(name, trigger).done;
  }

  /**
   * status is the job's settings, the run under way in this process if any, and the run
   * record in storage (this or another replica's; `interrupted` when its holder died).
   */
  async status(name: string): Promise<{
    job: ResolvedSyncJob;
    running?: string;
    last?: SyncRunRecord;
  }> {
    const job = this.job(name);
    let last = await this.readRecord(name);
    if (last?.state === 'running' && job.active?.runId !== last.runId) {
      const lease = await job.lease.current();
      if (!lease || lease.expiresAt <= this.deps.clock.now())
        last = { ...last, state: 'interrupted' };
    }
    return { job: job.config, running: job.active?.runId, last };
  }

  /** stop cancels the schedules and aborts runs under way at their next step, then waits. */
  async stop(): Promise<void> {
    this.stopped = true;
    const running: Promise<unknown>[] = [];
    for (const job of this.jobs.values()) {
      job.timer?.cancel();
      if (job.active) {
        job.active.abort.abort();
        running.push(job.active.done);
      }
    }
    await Promise.allSettled(running);
  }

  private job(name: string): Job {
    const job = this.jobs.get(name);
    if (!job) throw new SyncJobUnknownError(name);
    return job;
  }

  private begin(job: Job, trigger: SyncTrigger): NonNullable<Job['active']> {
    if (job.active) return job.active;
    const runId = `${new Date(this.deps.clock.now()).toISOString().replace(/[:.]/g, '')}-${randomBytes(3).toString('hex')}`;
    const abort = new AbortController();
    // A run's promise never rejects (an on-demand run's is not awaited): a storage failure
    // around the pass (the lease, the record) ends it as a failure too.
    const done = this.runOnce(job, runId, trigger, abort.signal)
      .catch((err: unknown): SyncRunRecord => {
        this.deps.log.warn({ err, job: job.config.name, runId }, 'sync run failed');
        this.deps.observer?.finished(job.config.name, 'failure', 0, this.deps.clock.now());
        const at = new Date(this.deps.clock.now()).toISOString();
        return {
          runId,
          job: job.config.name,
          trigger,
          holder: this.holder,
          state: 'failure',
          startedAt: at,
          finishedAt: at,
          error: err instanceof Error ? err.message : String(err),
        };
      })
      .finally(() => {
        job.active = undefined;
      });
    job.active = { runId, done, abort };
    return job.active;
  }

  private async runOnce(
    job: Job,
    runId: string,
    trigger: SyncTrigger,
    signal: AbortSignal,
  ): Promise<SyncRunRecord> {
    const { clock, log } = this.deps;
    const name = job.config.name;
    const started = clock.now();
    const record: SyncRunRecord = {
      runId,
      job: name,
      trigger,
      holder: this.holder,
      state: 'running',
      startedAt: new Date(started).toISOString(),
    };
    if (!(await job.lease.acquire())) {
      log.info({ job: name, runId }, 'sync run skipped: another replica holds the job');
      return this.end(record, 'busy', started, false);
    }
    const keepalive = clock.every((job.config.leaseSeconds * 1000) / 4, () => {
      job.lease
        .ensure()
        .catch((err: unknown) => log.warn({ err, job: name }, 'sync lease renewal failed'));
    });
    try {
      const previous = await this.readRecord(name);
      if (previous?.state === 'running') {
        record.resumedFrom = previous.runId;
        log.warn(
          { job: name, runId, resumedFrom: previous.runId },
          'resuming interrupted sync run',
        );
      }
      await this.writeRecord(record);
      log.info({ job: name, runId, trigger }, 'sync run started');
      const summary = await this.pass(job, signal);
      record.summary = summary;
      return await this.end(
        record,
        summary.errors.length === 0 ? 'success' : 'failure',
        started,
        true,
      );
    } catch (err) {
      record.error = err instanceof Error ? err.message : String(err);
      const result = err instanceof SyncAbortedError ? 'aborted' : 'failure';
      log.warn({ err, job: name, runId }, 'sync run failed');
      // An aborted run stays `running` in storage: the next run resumes it.
      return await this.end(record, result, started, result === 'failure');
    } finally {
      keepalive.cancel();
      await job.lease.release().catch(() => undefined);
    }
  }

  private pass(job: Job, signal: AbortSignal): Promise<SyncSummary> {
    const upstream = this.deps.upstream(job.config.upstream);
    if (!upstream) throw new Error(`no upstream is named ${job.config.upstream}`);
    const name = job.config.name;
    return (this.deps.pass ?? syncPass)(job.config, {
      client: upstream.client,
      prefix: upstream.config.prefix,
      mapped: (local) => this.deps.mappedTo(local) === job.config.upstream,
      local: this.deps.local,
      uploads: this.deps.uploads,
      log: this.deps.log,
      guard: async () => {
        if (signal.aborted) throw new SyncAbortedError('sync run aborted');
        if (!(await job.lease.hold())) throw new Error('sync lease lost');
      },
      progress: (delta) => this.deps.observer?.progress(name, delta),
    });
  }

  private async end(
    record: SyncRunRecord,
    result: SyncResult,
    started: number,
    persist: boolean,
  ): Promise<SyncRunRecord> {
    const now = this.deps.clock.now();
    const out: SyncRunRecord = {
      ...record,
      state: result,
      finishedAt: new Date(now).toISOString(),
    };
    if (persist) await this.writeRecord(out);
    this.deps.observer?.finished(record.job, result, (now - started) / 1000, now);
    this.deps.log.info(
      { job: record.job, runId: record.runId, result, summary: out.summary },
      'sync run finished',
    );
    return out;
  }

  private async readRecord(name: string): Promise<SyncRunRecord | undefined> {
    try {
      return JSON.parse(
        (await this.deps.driver.get(Paths.syncRun(name))).toString('utf8'),
      ) as SyncRunRecord;
    } catch (err) {
      if (isNotFound(err) || err instanceof SyntaxError) return undefined;
      throw err;
    }
  }

  private async writeRecord(record: SyncRunRecord): Promise<void> {
    await this.deps.driver.put(Paths.syncRun(record.job), JSON.stringify(record));
  }
}
