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
  /**
   * onRound hears each round's outcome (metrics): how many processes it found, and whether
   * this one keeps tags in memory after it ({@link keepEpoch}).
   */
  onRound?: (r: { peers: number; alone: boolean }) => void;
  /**
   * endpoint is where this process hears invalidations from the others (ADR 0025), written in
   * its entry; undefined: it has none, so it keeps tags only while alone and other processes
   * keep none while it is there.
   */
  endpoint?: () => Endpoint | undefined;
}

/** Endpoint is a process's invalidation listener: its URL and the token it expects. */
export interface Endpoint {
  url: string;
  token: string;
}

/** PeerView is the others a round found: when it started, and their endpoints. */
export interface PeerView {
  /** started: when the round that found them started (this process's clock). */
  started: number;
  /** peers: the live others; endpoint undefined for a process that has none. */
  peers: { instance: string; endpoint?: Endpoint }[];
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
  private lastView: PeerView | undefined;
  /** revocation: the body of `peers-epoch` this period started with ('' when absent). */
  private revocation: string | undefined;

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
   * keepEpoch is the number of the current period in which this process may serve tags from
   * memory, or undefined when it may not: alone on the storage (ADR 0012), or, with an
   * endpoint, among others that all have one and so tell it of every tag they move, once
   * joined (ADR 0025). A period ends when a round lapses, an other without an endpoint
   * appears, or `peers-epoch` changes (a writer could not reach someone).
   */
  keepEpoch(): number | undefined {
    if (this.aloneSince !== undefined && this.clock.now() - this.aloneSince < this.aloneValidMs) {
      if (this.lastCount === 1 || this.writable()) return this.epoch;
    }
    this.endPeriod();
    return undefined;
  }

  /** aloneEpoch is {@link keepEpoch} (its name from ADR 0012). */
  aloneEpoch(): number | undefined {
    return this.keepEpoch();
  }

  /**
   * view is the others found by the latest complete round, if it started less than
   * `aloneValidMs` ago (a writer must tell each of them of a tag it moved); else undefined.
   */
  view(): PeerView | undefined {
    const v = this.lastView;
    if (!v || this.clock.now() - v.started >= this.aloneValidMs) return undefined;
    return v;
  }

  /**
   * revokeAll makes every other process stop trusting the tags it keeps, for a writer that
   * could not tell all of them: it changes `peers-epoch`, then waits `aloneValidMs`, by which
   * time each of them has read the new value in a round or seen its period lapse.
   */
  async revokeAll(): Promise<void> {
    await this.driver.put(Paths.peersEpoch(), randomBytes(16).toString('hex'));
    await new Promise<void>((resolve) => this.clock.after(this.aloneValidMs, resolve));
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
      const endpoint = this.opts.endpoint?.();
      await this.driver.put(
        Paths.peer(this.instance),
        JSON.stringify({ host: hostname(), pid: process.pid, beat: this.beat, endpoint }),
      );
      const written = this.clock.now();
      const view = await this.others(started);
      const revocation = await this.readRevocation();
      if (this.stopped) return;
      const others = view.peers.length;
      // A process that left (stopped, or counted out) may have written a tag without telling
      // anyone (killed between the write and its announcement): what was kept is dropped.
      const left = this.lastView?.peers.some(
        (p) => !view.peers.some((q) => q.instance === p.instance),
      );
      this.beatAt = started;
      this.lastCount = others + 1;
      this.lastView = view;
      if (lapsed) this.writableFrom = others === 0 ? written : written + this.joinWaitMs;
      const keeps =
        others === 0 ||
        (endpoint !== undefined && view.peers.every((p) => p.endpoint !== undefined));
      if (keeps) {
        // The period goes on only if it never lapsed between the two rounds and nobody
        // revoked the kept tags meanwhile.
        if (this.keepEpoch() === undefined || revocation !== this.revocation || left) this.epoch++;
        this.revocation = revocation;
        this.aloneSince = started;
      } else {
        this.endPeriod();
      }
      // What the round reports is whether tags are served from memory now: a newcomer among
      // others keeps nothing until it has joined, though its round found everyone with an
      // endpoint.
      const keeping = keeps && (others === 0 || this.writable());
      this.opts.onRound?.({ peers: this.lastCount, alone: keeping });
    } catch (err) {
      this.opts.log?.warn({ err }, 'peers round failed');
      this.opts.onRound?.({ peers: this.lastCount, alone: false });
    }
  }

  private async readRevocation(): Promise<string> {
    try {
      return (await this.driver.get(Paths.peersEpoch())).toString('utf8');
    } catch (err) {
      if (isNotFound(err)) return '';
      throw err;
    }
  }

  /** others reads the other entries and returns the live ones (deleting dead ones). */
  private async others(started: number): Promise<PeerView> {
    const names = await listAll(this.driver, Paths.peersRoot());
    const now = this.clock.now();
    const live: PeerView['peers'] = [];
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
      if (!s || s.body !== body) this.seen.set(name, { body, since: now });
      if (!s || s.body !== body || now - s.since < this.deadMs) {
        live.push({ instance: name, endpoint: endpointOf(body) });
        continue;
      }
      this.opts.log?.info({ peer: name }, 'peer stopped, removing its entry');
      await this.driver.delete(Paths.peer(name));
      this.seen.delete(name);
    }
    for (const name of this.seen.keys()) if (!present.has(name)) this.seen.delete(name);
    return { started, peers: live };
  }
}

/** endpointOf reads the endpoint out of an entry's body (undefined: none, or not ours). */
function endpointOf(body: string): Endpoint | undefined {
  try {
    const e = (JSON.parse(body) as { endpoint?: Partial<Endpoint> }).endpoint;
    if (typeof e?.url === 'string' && typeof e.token === 'string') {
      return { url: e.url, token: e.token };
    }
  } catch {
    // An entry that is not JSON has no endpoint.
  }
  return undefined;
}
