import type { Upstreams } from '../mirror/upstreams.js';
import type { ParameterizedContext } from 'koa';
import type { Clock } from '../util/clock.js';
import type { AuthService, Identity } from '../auth/service.js';
import type { BerthConfig } from '../config/types.js';
import type { EventsRuntime } from '../events/runtime.js';
import type { GarbageCollector } from '../gc/index.js';
import type { Registry } from '../registry/repository.js';
import type { SearchIndex } from '../search/index.js';
import type { Tokens } from '../registry/token.js';
import type { Uploads } from '../registry/uploads.js';
import type { StorageDriver } from '../storage/driver.js';
import type { Coherence } from '../storage/coherence.js';
import type { Peers } from '../storage/peers.js';
import type { Logger } from '../util/log.js';
import type { SyncService } from '../sync/service.js';
import type { ProtocolObserver } from './client-error.js';
import type { RequestObserver } from './middleware/observe.js';

/**
 * MetricsService is what the listeners report to and the debug listener serves: each
 * request's outcome, each request the parser rejected, and the exposition of everything
 * counted (`contentType` and `body` of the scrape response).
 */
export interface MetricsService extends RequestObserver {
  observeProtocolError: ProtocolObserver;
  exposition(): Promise<{ contentType: string; body: string }>;
}

/** Services is what handlers may call: the domain, never storage keys. */
export interface Services {
  config: BerthConfig;
  registry: Registry;
  uploads: Uploads;
  tokens: Tokens;
  driver: StorageDriver;
  log: Logger;
  /** auth authenticates callers and answers what they may do. */
  auth: AuthService;
  clock: Clock;
  /** events is the durable events outbox and its delivery (the events API reads it). */
  events?: EventsRuntime;
  /** search is the search index (the search API reads it; repositories keep it). */
  search: SearchIndex;
  /** metrics is served on the debug listener; handlers never touch it. */
  metrics?: MetricsService;
  /** gc is the collector the admin GC report dry-runs (not the scheduled one). */
  gc?: GarbageCollector;
  /** sync runs the scheduled sync jobs of `mirrors.sync` (ADR 0027), when there are any. */
  sync?: SyncService;
  /** peers is this process's membership of the storage (gates tag writes, ADR 0012). */
  peers: Peers;
  /** upstreams maps repositories to pulled-through registries (`?ns=` requests, ADR 0024). */
  upstreams?: Upstreams;
  /** coherence tells the other replicas of tag changes, when `cache.peerListen` is set (ADR 0025). */
  coherence?: Coherence;
}

export interface State {
  requestId: string;
  log: Logger;
  /** params are the route's captures: name, reference, digest, id. */
  params: Record<string, string>;
  /** route labels the matched route for logs and metrics. */
  route: string;
  /** identity is the authenticated caller (set before dispatch). */
  identity: Identity;
  /**
   * uploadEnded is set by a handler whose request ended an upload session even though it
   * failed (a digest mismatch cancels the session): the session limit stops counting it.
   */
  uploadEnded?: boolean;
}

export type Ctx = ParameterizedContext<State>;

/** Handler is one route's thin function: parse, call one service, set headers. */
export type Handler = (ctx: Ctx, s: Services) => Promise<void>;
