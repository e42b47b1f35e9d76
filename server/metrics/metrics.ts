import type { Middleware } from 'koa';
import {
  collectDefaultMetrics,
  Counter,
  Gauge,
  Histogram,
  Registry as PromRegistry,
} from 'prom-client';
import type { MetricsConfig } from '../config/types.js';
import type { EndpointDelivery } from '../events/delivery.js';
import type { Event } from '../events/event.js';
import { kind } from '../events/event.js';
import type { DeliveryObserver } from '../events/sinks.js';
import { GlobSet } from '../util/glob.js';
import type { Ctx } from '../http/context.js';
import type { Uploads } from '../registry/uploads.js';
import { currentScope } from '../util/scope.js';

/** OTHER is the repository label of every repository past the cardinality bound. */
export const OTHER_REPOSITORY = '_other';

const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** SIZE_BUCKETS: 1 KiB … 4 GiB, doubling (distribution's request/response size buckets). */
const SIZE_BUCKETS = Array.from({ length: 23 }, (_, i) => 1024 * 2 ** i);
const CALL_BUCKETS = [1, 2, 3, 5, 8, 13, 21, 34, 55, 89];
const UPLOAD_BUCKETS = [0.1, 0.5, 1, 5, 15, 60, 300, 1800, 3600, 43200];

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  202: 'Accepted',
  204: 'No Content',
  400: 'Bad Request',
  404: 'Not Found',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

/**
 * Metrics owns every Prometheus metric of one server (its own registry, so servers in one
 * process do not share counters) and adapts the observers of the layers it watches: HTTP
 * middleware, the storage decorator, delivery observers, event listener. Nothing below the
 * server wiring imports prom-client. Names are documented in docs/metrics.md.
 */
export class Metrics {
  readonly registry = new PromRegistry();
  private readonly repoLabels = new Set<string>();
  private readonly allow: GlobSet;

  readonly httpRequests: Counter<'handler' | 'code' | 'method'>;
  readonly protocolErrors: Counter<'reason'>;
  readonly httpDuration: Histogram<'handler' | 'method'>;
  readonly httpRequestSize: Histogram<'handler'>;
  readonly httpResponseSize: Histogram<'handler'>;
  readonly httpInFlight: Gauge<'handler'>;
  readonly storageSeconds: Histogram<'driver' | 'action'>;
  readonly storageCalls: Histogram<'handler'>;
  readonly notifEvents: Counter<'type' | 'endpoint'>;
  readonly notifPending: Gauge<'endpoint'>;
  readonly notifStatus: Counter<'code' | 'endpoint'>;
  readonly outboxDepth: Gauge<'endpoint'>;
  readonly oldestUndelivered: Gauge<'endpoint'>;
  readonly deadLetters: Counter<'endpoint'>;
  readonly breakerOpen: Gauge<'endpoint'>;
  readonly eventsEmitted: Counter<'action'>;
  readonly pushes: Counter<'repository' | 'type'>;
  readonly pushedBytes: Counter<'repository'>;
  readonly pulls: Counter<'repository' | 'type'>;
  readonly pulledBytes: Counter<'repository'>;
  readonly deletes: Counter<'repository' | 'type'>;
  readonly cacheRequests: Counter;
  readonly cacheHits: Counter;
  readonly blobCacheBytes: Gauge;
  private readonly peers: Gauge;
  private readonly tagsKept: Gauge;
  readonly uploadsInProgress: Gauge;
  readonly uploadDuration: Histogram;

  private deliveries: EndpointDelivery[] = [];
  private countUploads: (() => Promise<number>) | undefined;

  constructor(
    private readonly cfg: MetricsConfig,
    opts: { processMetrics?: boolean } = {},
  ) {
    this.allow = new GlobSet(cfg.repositories);
    const registers = [this.registry];
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
    this.httpRequests = new Counter({
      name: 'registry_http_requests_total',
      help: 'Total number of HTTP requests made.',
      labelNames: ['handler', 'code', 'method'],
      registers,
    });
    this.protocolErrors = new Counter({
      name: 'berth_http_protocol_errors_total',
      help: 'Requests rejected by the HTTP parser before routing, by parser error code.',
      labelNames: ['reason'],
      registers,
    });
    this.httpDuration = new Histogram({
      name: 'registry_http_request_duration_seconds',
      help: 'The HTTP request latencies in seconds (until the handler returned).',
      labelNames: ['handler', 'method'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.httpRequestSize = new Histogram({
      name: 'registry_http_request_size_bytes',
      help: 'The HTTP request sizes in bytes (Content-Length).',
      labelNames: ['handler'],
      buckets: SIZE_BUCKETS,
      registers,
    });
    this.httpResponseSize = new Histogram({
      name: 'registry_http_response_size_bytes',
      help: 'The HTTP response sizes in bytes.',
      labelNames: ['handler'],
      buckets: SIZE_BUCKETS,
      registers,
    });
    this.httpInFlight = new Gauge({
      name: 'registry_http_in_flight_requests',
      help: 'The in-flight HTTP requests.',
      labelNames: ['handler'],
      registers,
    });
    this.storageSeconds = new Histogram({
      name: 'registry_storage_action_seconds',
      help: 'The number of seconds that the storage action takes.',
      labelNames: ['driver', 'action'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.storageCalls = new Histogram({
      name: 'berth_http_storage_calls_per_request',
      help: 'Storage driver calls made while serving one request.',
      labelNames: ['handler'],
      buckets: CALL_BUCKETS,
      registers,
    });
    this.notifEvents = new Counter({
      name: 'registry_notifications_events_total',
      help: 'The number of total events (type: Events, Successes, Failures, Errors).',
      labelNames: ['type', 'endpoint'],
      registers,
    });
    this.notifPending = new Gauge({
      name: 'registry_notifications_pending_total',
      help: 'The gauge of pending events in queue (undelivered outbox entries).',
      labelNames: ['endpoint'],
      registers,
      collect: () => this.backlog(),
    });
    this.notifStatus = new Counter({
      name: 'registry_notifications_status_total',
      help: 'The number of delivery attempts by HTTP status.',
      labelNames: ['code', 'endpoint'],
      registers,
    });
    this.outboxDepth = new Gauge({
      name: 'berth_events_outbox_depth',
      help: 'Outbox entries not yet delivered to the endpoint (capped at 1000).',
      labelNames: ['endpoint'],
      registers,
      collect: () => this.backlog(),
    });
    this.oldestUndelivered = new Gauge({
      name: 'berth_events_oldest_undelivered_seconds',
      help: 'Age of the oldest outbox entry not yet delivered to the endpoint (0 when none).',
      labelNames: ['endpoint'],
      registers,
      collect: () => this.backlog(),
    });
    this.deadLetters = new Counter({
      name: 'berth_events_dead_letters_total',
      help: 'Events given up on and written to the dead-letter record.',
      labelNames: ['endpoint'],
      registers,
    });
    this.breakerOpen = new Gauge({
      name: 'berth_events_breaker_open',
      help: '1 while the endpoint circuit breaker is open.',
      labelNames: ['endpoint'],
      registers,
      collect: () => this.backlog(),
    });
    this.eventsEmitted = new Counter({
      name: 'berth_events_emitted_total',
      help: 'Events emitted by this process, by action.',
      labelNames: ['action'],
      registers,
    });
    this.pushes = new Counter({
      name: 'berth_repository_pushes_total',
      help: 'Manifests and blobs pushed (type: manifest, blob), per repository (bounded).',
      labelNames: ['repository', 'type'],
      registers,
    });
    this.pushedBytes = new Counter({
      name: 'berth_repository_pushed_bytes_total',
      help: 'Bytes of manifests and blobs pushed, per repository (bounded).',
      labelNames: ['repository'],
      registers,
    });
    this.pulls = new Counter({
      name: 'berth_repository_pulls_total',
      help: 'Manifest GETs and whole-blob GETs (type: manifest, blob), per repository (bounded).',
      labelNames: ['repository', 'type'],
      registers,
    });
    this.pulledBytes = new Counter({
      name: 'berth_repository_pulled_bytes_total',
      help: 'Bytes of manifests and whole blobs pulled, per repository (bounded).',
      labelNames: ['repository'],
      registers,
    });
    this.deletes = new Counter({
      name: 'berth_repository_deletes_total',
      help: 'Deletes (type: manifest, tag, blob, repository), per repository (bounded).',
      labelNames: ['repository', 'type'],
      registers,
    });
    this.cacheRequests = new Counter({
      name: 'registry_storage_cache_requests_total',
      help: 'The number of cache requests received.',
      labelNames: ['cache'],
      registers,
    });
    this.cacheHits = new Counter({
      name: 'registry_storage_cache_hits_total',
      help: 'The number of cache requests that hit.',
      labelNames: ['cache'],
      registers,
    });
    this.blobCacheBytes = new Gauge({
      name: 'berth_blob_cache_bytes',
      help: "Bytes of blob data kept in this process's blob cache folder (cache.blobDir).",
      registers,
    });
    this.peers = new Gauge({
      name: 'berth_storage_peers',
      help: "Processes serving this storage, this one included, as this process's last membership round found them (peers/).",
      registers,
    });
    this.tagsKept = new Gauge({
      name: 'berth_tags_kept',
      help: '1 while this process is alone on the storage and keeps tag reads in memory (cache.tagsWhenAlone).',
      registers,
    });
    this.uploadsInProgress = new Gauge({
      name: 'berth_upload_sessions_in_progress',
      help: 'Upload sessions saved in storage (all replicas): from their first bytes until purged if cancelled, counted at scrape time (capped at 10000).',
      registers,
      collect: async () => {
        if (this.countUploads) this.uploadsInProgress.set(await this.countUploads());
      },
    });
    this.uploadDuration = new Histogram({
      name: 'berth_upload_session_duration_seconds',
      help: 'Time from upload start to commit of committed upload sessions.',
      buckets: UPLOAD_BUCKETS,
      registers,
    });
  }

  private scrape: Promise<void> | undefined;

  /**
   * backlog is the collect hook of every backlog gauge: prom-client collects metrics
   * concurrently, so one storage read per scrape is shared by all of them.
   */
  private backlog(): Promise<void> {
    this.scrape ??= this.collectBacklog().finally(() => (this.scrape = undefined));
    return this.scrape;
  }

  /** collectBacklog reads each endpoint's backlog from storage (at scrape time). */
  private async collectBacklog(): Promise<void> {
    for (const d of this.deliveries) {
      const b = await d.backlog().catch(() => undefined);
      if (!b) continue;
      this.outboxDepth.set({ endpoint: d.name }, b.entries);
      this.notifPending.set({ endpoint: d.name }, b.entries);
      this.oldestUndelivered.set({ endpoint: d.name }, (b.oldestMs ?? 0) / 1000);
      this.breakerOpen.set({ endpoint: d.name }, d.retry.breakerOpen ? 1 : 0);
    }
  }

  /**
   * repository bounds per-repository label values: allow-listed repositories (globs) and the
   * first `repositoryLimit` distinct repositories this process sees get their own value;
   * every other repository is counted as `_other`.
   */
  repository(name: string): string {
    if (this.repoLabels.has(name)) return name;
    if (this.allow.matches(name)) {
      this.repoLabels.add(name);
      return name;
    }
    const own = [...this.repoLabels].filter((n) => !this.allow.matches(n)).length;
    if (own < this.cfg.repositoryLimit) {
      this.repoLabels.add(name);
      return name;
    }
    return OTHER_REPOSITORY;
  }

  /**
   * observeProtocolError counts a request the HTTP parser rejected before routing: in
   * registry_http_requests_total (handler `protocol_error`) with the status answered, and by
   * the parser's error code.
   */
  observeProtocolError(reason: string, status: number | undefined): void {
    this.protocolErrors.inc({ reason });
    if (status !== undefined)
      this.httpRequests.inc({ handler: 'protocol_error', code: String(status), method: 'unknown' });
  }

  /** middleware records the registry_http_* metrics; it must wrap the error exit. */
  middleware(): Middleware {
    return async (ctx, next) => {
      const c = ctx as Ctx;
      const started = process.hrtime.bigint();
      this.httpInFlight.inc({ handler: 'all' });
      try {
        await next();
      } finally {
        const handler = c.state.route.replaceAll('-', '_');
        this.httpInFlight.dec({ handler: 'all' });
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        this.httpRequests.inc({ handler, code: String(c.status), method: c.method });
        this.httpDuration.observe({ handler, method: c.method }, seconds);
        this.httpRequestSize.observe({ handler }, Number(c.get('content-length')) || 0);
        this.httpResponseSize.observe({ handler }, c.response.length ?? 0);
        const scope = currentScope();
        if (scope) this.storageCalls.observe({ handler }, scope.storageCalls);
      }
    };
  }

  /** onEvent counts pushes, pulls and deletes per repository (an Emitter listener). */
  onEvent(e: Event): void {
    this.eventsEmitted.inc({ action: e.action });
    const repository = this.repository(e.target.repository);
    const type = kind(e);
    const size = e.target.size ?? 0;
    switch (e.action) {
      case 'push':
        if (e.target.tag !== undefined) return; // a tag on an already pushed manifest
        this.pushes.inc({ repository, type });
        this.pushedBytes.inc({ repository }, size);
        return;
      case 'pull':
        this.pulls.inc({ repository, type });
        this.pulledBytes.inc({ repository }, size);
        return;
      case 'delete':
        this.deletes.inc({ repository, type });
        return;
      case 'mount':
        return;
    }
  }

  /** observer adapts one endpoint's delivery to the notification metrics. */
  observer(endpoint: string): DeliveryObserver {
    return {
      attempt: (status, ok) => {
        if (status !== undefined)
          this.notifStatus.inc({ code: `${status} ${STATUS_TEXT[status] ?? ''}`.trim(), endpoint });
        if (status === undefined) this.notifEvents.inc({ type: 'Errors', endpoint });
        else if (!ok) this.notifEvents.inc({ type: 'Failures', endpoint });
      },
      delivered: () => {
        this.notifEvents.inc({ type: 'Events', endpoint });
        this.notifEvents.inc({ type: 'Successes', endpoint });
      },
      dead: () => {
        this.notifEvents.inc({ type: 'Events', endpoint });
        this.deadLetters.inc({ endpoint });
      },
    };
  }

  /** watch registers what the scrape-time gauges read. */
  watch(o: { deliveries?: EndpointDelivery[]; countUploads?: () => Promise<number> }): void {
    if (o.deliveries) {
      this.deliveries = o.deliveries;
      for (const d of o.deliveries) {
        this.deadLetters.inc({ endpoint: d.name }, 0);
        for (const type of ['Events', 'Successes', 'Failures', 'Errors'])
          this.notifEvents.inc({ type, endpoint: d.name }, 0);
      }
    }
    if (o.countUploads) this.countUploads = o.countUploads;
  }

  /**
   * observeCache counts one lookup of an in-process cache: `repository` (catalog markers),
   * `object` (descriptors and manifests), `tag` (tag reads; a hit shared another read's
   * storage call or was kept: `cache.tagTtlSeconds`, or alone), `list` (catalog and tag pages) or
   * `blob` (blob bytes read from the blob cache folder).
   */
  observeCache(
    hit: boolean,
    cache: 'repository' | 'object' | 'tag' | 'list' | 'blob' = 'repository',
  ): void {
    this.cacheRequests.inc({ cache });
    if (hit) this.cacheHits.inc({ cache });
  }

  /** observePeers records a membership round: live processes, and whether tags are kept. */
  observePeers(peers: number, tagsKept: boolean): void {
    this.peers.set(peers);
    this.tagsKept.set(tagsKept ? 1 : 0);
  }

  observeUpload(seconds: number): void {
    this.uploadDuration.observe(seconds);
  }

  /** exposition renders the registry in the Prometheus text format. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/**
 * meteredUploads decorates the upload service: a completion also records the session's
 * duration (start to commit). Everything else is delegated unchanged.
 */
export function meteredUploads(
  uploads: Uploads,
  metrics: Metrics,
  clock: { now(): number },
): Uploads {
  const decorated = Object.create(uploads) as Uploads;
  decorated.complete = async (state, digest, linker, last) => {
    const desc = await uploads.complete(state, digest, linker, last);
    metrics.observeUpload(Math.max(0, clock.now() - state.startedAt) / 1000);
    return desc;
  };
  return decorated;
}
