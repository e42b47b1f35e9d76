import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Errors } from '../errors.js';
import { monotonicClock, type Clock, type Timer } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { isNotFound, listAll, type StorageDriver } from './driver.js';
import { Paths } from './paths.js';

export interface PeersOptions {
  /** roundMs: how often this process writes its entry and reads the others' (default 1 s). */
  roundMs?: number;
  /**
   * aloneValidMs: how long after a round started that found this process alone it may keep
   * tags in memory (default 3 s). Must exceed roundMs.
   */
  aloneValidMs?: number;
  /**
   * joinWaitMs: how long a process that found others waits, after its entry is written,
   * before it moves a tag (default 5 s). Must exceed aloneValidMs + roundMs, so that any
   * process keeping tags has listed the newcomer by then.
   */
  joinWaitMs?: number;
  /**
   * deadMs: an entry unchanged for this long, by this process's clock, is a process that
   * stopped; it is deleted (default 15 s). Must exceed 2 × fenceMs.
   */
  deadMs?: number;
  /**
   * fenceMs: a process whose own entry was last written longer ago than this moves no tag
   * until it has joined again (default 5 s), so that others may count it as stopped.
   */
  fenceMs?: number;
  /** writeTimeoutMs: how long a tag write waits for the gate before 503 (default 15 s). */
  writeTimeoutMs?: number;
  /**
   * clock times the rounds, the gate and every period (default monotonicClock): its `now`
   * must not jump.
   */
  clock?: Clock;
  log?: Logger;
  /** onRound hears each round's outcome (metrics). */
  onRound?: (r: { peers: number; alone: boolean }) => void;
}

interface Seen {
  body: string;
  /** since: when this process first read this body. */
  since: number;
}

/**
 * Peers is the membership of the processes serving one storage (ADR 0012). Each process
 * writes `peers/<instance>` every round (a beat counter) and reads the other entries. From
 * that it knows two things, using only its own monotonic clock:
 *
 * - {@link aloneEpoch}: while its latest round, started less than `aloneValidMs` ago, found no
 *   other process, nothing else can move a tag, so tags may be kept in memory. Each such
 *   period has its own number; a value read in one period is never served in another.
 * - {@link whenWritable}: a process moves tags only when everyone who keeps tags must have
 *   seen it. At start (or after a lapse) it writes its entry, then lists: alone, it may
 *   write at once; with others, it waits `joinWaitMs`, longer than any of them can go
 *   without listing. A process whose own entry is older than `fenceMs` writes no tags, so
 *   others may delete its entry once it has not changed for `deadMs`.
 */
export class Peers {
  readonly instance: string;
  private readonly roundMs: number;
  private readonly aloneValidMs: number;
  private readonly joinWaitMs: number;
  private readonly deadMs: number;
  private readonly fenceMs: number;
  private readonly writeTimeoutMs: number;
  private readonly clock: Clock;
  private beat = 0;
  private readonly seen = new Map<string, Seen>();
  /** start of the latest complete round that found this process alone. */
  private aloneSince: number | undefined;
  private epoch = 0;
  /** start of the latest round whose own entry write succeeded. */
  private beatAt: number | undefined;
  /** writableFrom: when tag writes may start (undefined: not joined). */
  private writableFrom: number | undefined;
  private timer: Timer | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private firstRoundDone = false;
  private lastCount = 0;

  constructor(
    private readonly driver: StorageDriver,
    private readonly opts: PeersOptions = {},
  ) {
    this.roundMs = opts.roundMs ?? 1000;
    this.aloneValidMs = opts.aloneValidMs ?? 3000;
    this.joinWaitMs = opts.joinWaitMs ?? 5000;
    this.fenceMs = opts.fenceMs ?? 5000;
    this.deadMs = opts.deadMs ?? 15_000;
    this.writeTimeoutMs = opts.writeTimeoutMs ?? 15_000;
    this.clock = opts.clock ?? monotonicClock;
    this.instance = `${Math.floor(this.clock.now()).toString(36)}-${randomBytes(4).toString('hex')}`;
    if (this.aloneValidMs <= this.roundMs)
      throw new Error('peers: aloneValidMs must exceed roundMs');
    if (this.joinWaitMs <= this.aloneValidMs + this.roundMs)
      throw new Error('peers: joinWaitMs must exceed aloneValidMs + roundMs');
    if (this.deadMs <= 2 * this.fenceMs) throw new Error('peers: deadMs must exceed 2 × fenceMs');
  }

  /** start runs the first round now and then one every roundMs. */
  async start(): Promise<void> {
    this.timer = this.clock.every(this.roundMs, () => void this.round());
    await this.round();
    this.firstRoundDone = true;
  }

  /**
   * started is true once start's first round has finished, whether or not it reached the
   * storage: until then this process does not know who else serves it (readiness waits).
   */
  get started(): boolean {
    return this.firstRoundDone;
  }

  /** stop ends the rounds and removes this process's entry (best effort). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    await this.running?.catch(() => undefined);
    this.endPeriod();
    this.writableFrom = undefined;
    await this.driver.delete(Paths.peer(this.instance)).catch(() => undefined);
  }

  /** count is the number of live processes the latest round found, this one included. */
  get count(): number {
    return this.lastCount;
  }

  /**
   * aloneEpoch is the number of the current period in which this process is known to be the
   * only one on the storage, or undefined when it is not (or no longer) known.
   */
  aloneEpoch(): number | undefined {
    if (this.aloneSince !== undefined && this.clock.now() - this.aloneSince < this.aloneValidMs) {
      return this.epoch;
    }
    this.endPeriod();
    return undefined;
  }

  private endPeriod(): void {
    this.aloneSince = undefined;
  }

  private writable(): boolean {
    const now = this.clock.now();
    return (
      !this.stopped &&
      this.writableFrom !== undefined &&
      now >= this.writableFrom &&
      this.beatAt !== undefined &&
      now - this.beatAt < this.fenceMs
    );
  }

  /**
   * whenWritable resolves (undefined when at once, without a promise) when this process may
   * move a tag; 503 UNAVAILABLE when that does not happen within writeTimeoutMs.
   */
  whenWritable(): Promise<void> | undefined {
    if (this.writable()) return undefined;
    const deadline = this.clock.now() + this.writeTimeoutMs;
    return new Promise<void>((resolve, reject) => {
      const poll = () => {
        if (this.writable()) return resolve();
        if (this.stopped || this.clock.now() >= deadline) {
          return reject(
            Errors.unavailable(
              { reason: 'this replica has not joined the storage yet' },
              { 'Retry-After': '5' },
            ),
          );
        }
        this.clock.after(50, poll);
      };
      poll();
    });
  }

  /** round writes this process's entry and reads the others' (one at a time). */
  round(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.running ??= this.roundOnce().finally(() => (this.running = undefined));
    return this.running;
  }

  private async roundOnce(): Promise<void> {
    const started = this.clock.now();
    const lapsed = this.beatAt === undefined || started - this.beatAt >= this.fenceMs;
    try {
      this.beat++;
      await this.driver.put(
        Paths.peer(this.instance),
        JSON.stringify({ host: hostname(), pid: process.pid, beat: this.beat }),
      );
      const written = this.clock.now();
      const others = await this.others();
      if (this.stopped) return;
      this.beatAt = started;
      this.lastCount = others + 1;
      if (lapsed) this.writableFrom = others === 0 ? written : written + this.joinWaitMs;
      if (others === 0) {
        // The period goes on only if it never lapsed between the two rounds.
        if (this.aloneEpoch() === undefined) this.epoch++;
        this.aloneSince = started;
      } else {
        this.endPeriod();
      }
      this.opts.onRound?.({ peers: this.lastCount, alone: others === 0 });
    } catch (err) {
      this.opts.log?.warn({ err }, 'peers round failed');
      this.opts.onRound?.({ peers: this.lastCount, alone: false });
    }
  }

  /** others reads the other entries and returns how many are live (deleting dead ones). */
  private async others(): Promise<number> {
    const names = await listAll(this.driver, Paths.peersRoot());
    const now = this.clock.now();
    let live = 0;
    const present = new Set<string>();
    // Our entry was just written: missing, someone counted us as stopped meanwhile; a newcomer
    // may not know us, so this round proves nothing.
    if (!names.includes(this.instance)) throw new Error('own peers entry missing after writing it');
    for (const name of names) {
      if (name === this.instance) continue;
      present.add(name);
      let body: string;
      try {
        body = (await this.driver.get(Paths.peer(name))).toString('utf8');
      } catch (err) {
        if (isNotFound(err)) continue;
        throw err;
      }
      const s = this.seen.get(name);
      if (!s || s.body !== body) {
        this.seen.set(name, { body, since: now });
        live++;
        continue;
      }
      if (now - s.since < this.deadMs) {
        live++;
        continue;
      }
      this.opts.log?.info({ peer: name }, 'peer stopped, removing its entry');
      await this.driver.delete(Paths.peer(name));
      this.seen.delete(name);
    }
    for (const name of this.seen.keys()) if (!present.has(name)) this.seen.delete(name);
    return live;
  }
}
