import { randomBytes } from 'node:crypto';
import { isNotFound, type StorageDriver } from '../storage/driver.js';
import { Paths } from '../storage/paths.js';
import type { Logger } from '../util/log.js';
import type { Clock, Timer } from '../util/clock.js';
import type { Event } from './event.js';

/**
 * Position names one event in the outbox: the entry (object) holding it and its index in
 * that entry's batch. As a string: `<entry>.<index>`. Positions sort like the outbox.
 */
export interface Position {
  entry: string;
  index: number;
}

export function formatPosition(p: Position): string {
  return `${p.entry}.${p.index}`;
}

/** parsePosition reads `<entry>.<index>`; undefined when malformed. */
export function parsePosition(s: string): Position | undefined {
  const m = /^(\d{13}-[0-9a-f]{8}-\d{8})\.(\d{1,6})$/.exec(s);
  return m ? { entry: m[1]!, index: Number(m[2]) } : undefined;
}

/** Positioned is an event read back from the outbox, with where it was found. */
export interface Positioned {
  position: Position;
  event: Event;
}

interface EntryBody {
  events: Event[];
}

/**
 * Outbox is the durable, ordered record of events in storage. Each `append` is ONE small
 * object holding a batch (the events of one request, or a flush of buffered pulls), keyed
 * `<ms>-<instance>-<seq>` so that the listing order is the order entries were started in.
 *
 * Ordering contract: entries of one process sort in append order. Entries of different
 * replicas sort by their start time; a reader that skips entries younger than its settle
 * window sees them all, in that order, unless a write takes longer than the window.
 */
export class Outbox {
  /** instance is this process's writer id (changes on every start). */
  readonly instance = randomBytes(4).toString('hex');
  private seq = 0;
  private lastMs = 0;

  private readonly queue: {
    events: Event[];
    done: (entry: string) => void;
    fail: (err: unknown) => void;
  }[] = [];
  private writing = 0;

  constructor(
    private readonly driver: StorageDriver,
    readonly clock: Clock,
    /**
     * writers is how many entries may be written at once; appends beyond wait and are
     * written together (one: measured best for concurrent pushes, see ADR 0005).
     */
    private readonly writers = 1,
  ) {}

  private nextEntry(): string {
    const ms = Math.max(this.clock.now(), this.lastMs);
    this.lastMs = ms;
    this.seq = (this.seq + 1) % 1e8;
    return `${String(ms).padStart(13, '0')}-${this.instance}-${String(this.seq).padStart(8, '0')}`;
  }

  /**
   * append writes `events` into the outbox; resolves with their entry once it is durable.
   * Appends made while `writers` entries are being written wait and are then written
   * together as one entry (group commit): under concurrency one storage write carries many
   * requests' events, and an append never waits for more than one write before its own.
   * The events of one append stay together and in order.
   */
  append(events: Event[]): Promise<string> {
    return new Promise<string>((done, fail) => {
      this.queue.push({ events, done, fail });
      if (this.writing < this.writers) void this.write();
    });
  }

  private async write(): Promise<void> {
    this.writing++;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0);
        const entry = this.nextEntry();
        const body: EntryBody = { events: batch.flatMap((b) => b.events) };
        try {
          await this.driver.put(Paths.eventsLogEntry(entry), JSON.stringify(body));
          for (const b of batch) b.done(entry);
        } catch (err) {
          for (const b of batch) b.fail(err);
        }
      }
    } finally {
      this.writing--;
    }
  }

  /**
   * read returns up to `limit` events after `after` (exclusive; undefined = from the
   * beginning), skipping entries started after `until` (ms) when given.
   */
  async read(
    after: Position | undefined,
    limit: number,
    until?: number,
  ): Promise<{ items: Positioned[]; more: boolean }> {
    const items: Positioned[] = [];
    let startAfter: string | undefined;
    // The entry of `after` may hold more events after its index.
    if (after) {
      const first = await this.entry(after.entry);
      for (let i = after.index + 1; i < first.length && items.length < limit; i++)
        items.push({ position: { entry: after.entry, index: i }, event: first[i]! });
      if (items.length === limit) return { items, more: true };
      startAfter = after.entry;
    }
    for (;;) {
      const page = await this.driver.list(Paths.eventsLogRoot(), { startAfter, limit: 100 });
      for (const name of page.names) {
        if (until !== undefined && Number(name.slice(0, 13)) > until) return { items, more: true };
        const events = await this.entry(name);
        for (let i = 0; i < events.length; i++) {
          if (items.length === limit) return { items, more: true };
          items.push({ position: { entry: name, index: i }, event: events[i]! });
        }
      }
      if (!page.truncated || page.names.length === 0) return { items, more: false };
      startAfter = page.names[page.names.length - 1];
    }
  }

  /** end is the position of the last event in the outbox (names are listed, one entry read). */
  async end(): Promise<Position | undefined> {
    let last: string | undefined;
    let startAfter: string | undefined;
    for (;;) {
      const page = await this.driver.list(Paths.eventsLogRoot(), { startAfter, limit: 1000 });
      last = page.names[page.names.length - 1] ?? last;
      if (!page.truncated || page.names.length === 0) break;
      startAfter = last;
    }
    if (last === undefined) return undefined;
    const events = await this.entry(last);
    return { entry: last, index: Math.max(0, events.length - 1) };
  }

  /**
   * prune deletes entries started before `before` (ms) and sorting before `keepFrom` (the
   * first entry some consumer still needs; undefined: no limit). Returns the number deleted.
   */
  async prune(before: number, keepFrom: string | undefined): Promise<number> {
    let n = 0;
    for (;;) {
      const page = await this.driver.list(Paths.eventsLogRoot(), { limit: 1000 });
      const doomed = page.names.filter(
        (name) => Number(name.slice(0, 13)) < before && (keepFrom === undefined || name < keepFrom),
      );
      for (const name of doomed) await this.driver.delete(Paths.eventsLogEntry(name));
      n += doomed.length;
      if (doomed.length < page.names.length || !page.truncated || doomed.length === 0) return n;
    }
  }

  private async entry(name: string): Promise<Event[]> {
    try {
      const body = JSON.parse(
        (await this.driver.get(Paths.eventsLogEntry(name))).toString('utf8'),
      ) as EntryBody;
      return Array.isArray(body.events) ? body.events : [];
    } catch (err) {
      if (isNotFound(err)) return [];
      throw err;
    }
  }
}

/**
 * PullBuffer collects pull events in memory and writes them to the outbox in batches, so the
 * pull path never waits on a write. Buffered pulls are lost if the process dies before a
 * flush (pulls are statistics; pushes and deletes are never buffered).
 */
export class PullBuffer {
  private events: Event[] = [];
  private timer: Timer | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly outbox: Outbox,
    private readonly log: Logger,
    private readonly maxBuffered = 10_000,
  ) {}

  add(e: Event): void {
    if (this.events.length >= this.maxBuffered) return;
    this.events.push(e);
  }

  /** flush writes what is buffered as one entry; concurrent flushes run one after another. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      if (this.events.length === 0) return;
      const batch = this.events;
      this.events = [];
      await this.outbox.append(batch).catch((err: unknown) => {
        this.log.warn({ err, events: batch.length }, 'pull events flush failed');
        this.events = [...batch, ...this.events].slice(0, this.maxBuffered);
      });
    });
    return this.flushing;
  }

  start(intervalMs: number): void {
    this.timer = this.outbox.clock.every(intervalMs, () => void this.flush());
  }

  async stop(): Promise<void> {
    this.timer?.cancel();
    await this.flush();
  }
}
