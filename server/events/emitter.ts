import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { currentScope } from '../util/scope.js';
import type { Clock } from '../util/clock.js';
import type { Action, Event, Target } from './event.js';
import type { Outbox, PullBuffer } from './outbox.js';

const BATCH = Symbol('events.batch');

/** EventListener sees every event as it is emitted, in process (metrics count them). */
export type EventListener = (e: Event) => void;

/**
 * Emitter turns registry operations into events and records them:
 * - pulls go to the {@link PullBuffer} (never awaited);
 * - anything else inside an HTTP request joins the request's batch, written to the outbox
 *   as ONE entry after the handler returns and before the response is sent;
 * - anything else outside a request is written to the outbox before `emit` resolves.
 */
export class Emitter {
  private readonly listeners: EventListener[] = [];
  readonly sourceAddr: string;

  constructor(
    private readonly outbox: Outbox,
    private readonly pulls: PullBuffer,
    private readonly clock: Clock,
    readonly includeReferences: boolean,
    listenAddr: string,
  ) {
    const port = listenAddr.slice(listenAddr.lastIndexOf(':') + 1);
    this.sourceAddr = `${hostname()}:${port}`;
  }

  get instanceID(): string {
    return this.outbox.instance;
  }

  onEvent(l: EventListener): void {
    this.listeners.push(l);
  }

  /** make builds an event for the current request (if any). */
  make(action: Action, target: Target): Event {
    const s = currentScope();
    return {
      id: randomUUID(),
      timestamp: new Date(this.clock.now()).toISOString(),
      action,
      target,
      request: {
        id: s?.id ?? '',
        addr: s?.addr ?? '',
        host: s?.host ?? '',
        method: s?.method ?? '',
        useragent: s?.useragent ?? '',
      },
      actor: s?.actor === undefined ? {} : { name: s.actor },
      source: { addr: this.sourceAddr, instanceID: this.outbox.instance },
    };
  }

  /** url links to the target's content as the client addressed this registry. */
  url(repository: string, kind: 'manifests' | 'blobs', digest: string): string | undefined {
    const s = currentScope();
    if (!s || s.host === '') return undefined;
    return `${s.scheme}://${s.host}/v2/${repository}/${kind}/${digest}`;
  }

  /** isGet is true while serving a GET (pull events fire for GETs, not HEADs). */
  isGet(): boolean {
    return currentScope()?.method === 'GET';
  }

  async emit(e: Event): Promise<void> {
    for (const l of this.listeners) l(e);
    if (e.action === 'pull') {
      this.pulls.add(e);
      return;
    }
    const s = currentScope();
    if (!s) {
      await this.outbox.append([e]);
      return;
    }
    let batch = s.bag.get(BATCH) as Event[] | undefined;
    if (!batch) {
      const events: Event[] = [];
      batch = events;
      s.bag.set(BATCH, events);
      s.deferred.push(async () => {
        if (events.length > 0) await this.outbox.append(events);
      });
    }
    batch.push(e);
  }

  /** repositoryDeleted records the deletion of a whole repository. */
  async repositoryDeleted(repository: string): Promise<void> {
    await this.emit(this.make('delete', { repository }));
  }
}
