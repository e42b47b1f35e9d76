import {
  collectDefaultMetrics,
  Counter,
  Gauge,
  Histogram,
  Registry as PromRegistry,
} from 'prom-client';
import type { MetricsConfig } from '../config/types.js';
import { GlobSet } from '../util/glob.js';

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

/** FinishedRequest is how one HTTP request ended, as the registry_http_* metrics count it. */
export interface FinishedRequest {
  /** route is the matched route's name; its dashes become underscores in the handler label. */
  route: string;
  method: string;
  status: number;
  requestBytes: number;
  responseBytes: number;
  /** storageCalls counts the driver calls made for the request (undefined: not observed). */
  storageCalls: number | undefined;
}

/** CountedEvent is one emitted registry event, as the per-repository counters count it. */
export interface CountedEvent {
  action: 'push' | 'pull' | 'mount' | 'delete';
  repository: string;
  /** type is what the event is about: `manifest`, `blob`, `tag` or `repository`. */
  type: string;
  /** bytes is the size of the manifest or blob (0 when the event names none). */
  bytes: number;
  /** tagged is true when the event names a tag. */
  tagged: boolean;
}

/** SyncProgress is one step of a sync run, as the sync counters add it up. */
export interface SyncProgress {
  tagsCopied?: number;
  tagsUnchanged?: number;
  manifestsCopied?: number;
  manifestsSkipped?: number;
  blobsCopied?: number;
  blobsSkipped?: number;
  bytes?: number;
}

/** NotificationCounter hears one endpoint's deliveries (the notification counters). */
export interface NotificationCounter {
  /** attempt: one HTTP attempt finished (status undefined: no answer). */
  attempt(status: number | undefined, ok: boolean): void;
  /** delivered: an event reached the receiver. */
  delivered(): void;
  /** dead: an event was given up on. */
  dead(): void;
}

/** EndpointBacklog is one notification endpoint, as the scrape-time gauges read it. */
export interface EndpointBacklog {
  readonly name: string;
  /** backlog counts undelivered entries (capped) and the oldest one's age in ms. */
  backlog(): Promise<{ entries: number; oldestMs: number | undefined }>;
  readonly retry: { readonly breakerOpen: boolean };
}

/**
 * Metrics owns every Prometheus metric of one server (its own registry, so servers in one
 * process do not share counters). It knows none of the layers it watches: each method takes
 * plain values or a small input type declared here, and the server wiring adapts each layer's
 * observer to it. Nothing below the server wiring imports prom-client. Names are documented
 * in docs/metrics.md.
 */
export class Metrics {
  readonly registry = new PromRegistry();
  private readonly repoLabels = new Set<string>();
  private readonly allow: GlobSet;

  private readonly httpRequests = new Counter<'handler' | 'code' | 'method'>({
    name: 'registry_http_requests_total',
    help: 'Total number of HTTP requests made.',
    labelNames: ['handler', 'code', 'method'],
    registers: [this.registry],
  });
  private readonly protocolErrors = new Counter<'reason'>({
    name: 'berth_http_protocol_errors_total',
    help: 'Requests rejected by the HTTP parser before routing, by parser error code.',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  private readonly httpDuration = new Histogram<'handler' | 'method'>({
    name: 'registry_http_request_duration_seconds',
    help: 'The HTTP request latencies in seconds (until the handler returned).',
    labelNames: ['handler', 'method'],
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  private readonly httpRequestSize = new Histogram<'handler'>({
    name: 'registry_http_request_size_bytes',
    help: 'The HTTP request sizes in bytes (Content-Length).',
    labelNames: ['handler'],
    buckets: SIZE_BUCKETS,
    registers: [this.registry],
  });
  private readonly httpResponseSize = new Histogram<'handler'>({
    name: 'registry_http_response_size_bytes',
    help: 'The HTTP response sizes in bytes.',
    labelNames: ['handler'],
    buckets: SIZE_BUCKETS,
    registers: [this.registry],
  });
  private readonly httpInFlight = new Gauge<'handler'>({
    name: 'registry_http_in_flight_requests',
    help: 'The in-flight HTTP requests.',
    labelNames: ['handler'],
    registers: [this.registry],
  });
  private readonly storageSeconds = new Histogram<'driver' | 'action'>({
    name: 'registry_storage_action_seconds',
    help: 'The number of seconds that the storage action takes.',
    labelNames: ['driver', 'action'],
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  private readonly storageCalls = new Histogram<'handler'>({
    name: 'berth_http_storage_calls_per_request',
    help: 'Storage driver calls made while serving one request.',
    labelNames: ['handler'],
    buckets: CALL_BUCKETS,
    registers: [this.registry],
  });
  private readonly notifEvents = new Counter<'type' | 'endpoint'>({
    name: 'registry_notifications_events_total',
    help: 'The number of total events (type: Events, Successes, Failures, Errors).',
    labelNames: ['type', 'endpoint'],
    registers: [this.registry],
  });
  private readonly notifPending = new Gauge<'endpoint'>({
    name: 'registry_notifications_pending_total',
    help: 'The gauge of pending events in queue (undelivered outbox entries).',
    labelNames: ['endpoint'],
    registers: [this.registry],
    collect: () => this.backlog(),
  });
  private readonly notifStatus = new Counter<'code' | 'endpoint'>({
    name: 'registry_notifications_status_total',
    help: 'The number of delivery attempts by HTTP status.',
    labelNames: ['code', 'endpoint'],
    registers: [this.registry],
  });
  private readonly outboxDepth = new Gauge<'endpoint'>({
    name: 'berth_events_outbox_depth',
    help: 'Outbox entries not yet delivered to the endpoint (capped at 1000).',
    labelNames: ['endpoint'],
    registers: [this.registry],
    collect: () => this.backlog(),
  });
  private readonly oldestUndelivered = new Gauge<'endpoint'>({
    name: 'berth_events_oldest_undelivered_seconds',
    help: 'Age of the oldest outbox entry not yet delivered to the endpoint (0 when none).',
    labelNames: ['endpoint'],
    registers: [this.registry],
    collect: () => this.backlog(),
  });
  private readonly deadLetters = new Counter<'endpoint'>({
    name: 'berth_events_dead_letters_total',
    help: 'Events given up on and written to the dead-letter record.',
    labelNames: ['endpoint'],
    registers: [this.registry],
  });
  private readonly breakerOpen = new Gauge<'endpoint'>({
    name: 'berth_events_breaker_open',
    help: '1 while the endpoint circuit breaker is open.',
    labelNames: ['endpoint'],
    registers: [this.registry],
    collect: () => this.backlog(),
  });
  private readonly eventsEmitted = new Counter<'action'>({
    name: 'berth_events_emitted_total',
    help: 'Events emitted by this process, by action.',
    labelNames: ['action'],
    registers: [this.registry],
  });
  private readonly pushes = new Counter<'repository' | 'type'>({
    name: 'berth_repository_pushes_total',
    help: 'Manifests and blobs pushed (type: manifest, blob), per repository (bounded).',
    labelNames: ['repository', 'type'],
    registers: [this.registry],
  });
  private readonly pushedBytes = new Counter<'repository'>({
    name: 'berth_repository_pushed_bytes_total',
    help: 'Bytes of manifests and blobs pushed, per repository (bounded).',
    labelNames: ['repository'],
    registers: [this.registry],
  });
  private readonly pulls = new Counter<'repository' | 'type'>({
    name: 'berth_repository_pulls_total',
    help: 'Manifest GETs and whole-blob GETs (type: manifest, blob), per repository (bounded).',
    labelNames: ['repository', 'type'],
    registers: [this.registry],
  });
  private readonly pulledBytes = new Counter<'repository'>({
    name: 'berth_repository_pulled_bytes_total',
    help: 'Bytes of manifests and whole blobs pulled, per repository (bounded).',
    labelNames: ['repository'],
    registers: [this.registry],
  });
  private readonly deletes = new Counter<'repository' | 'type'>({
    name: 'berth_repository_deletes_total',
    help: 'Deletes (type: manifest, tag, blob, repository), per repository (bounded).',
    labelNames: ['repository', 'type'],
    registers: [this.registry],
  });
  private readonly cacheRequests = new Counter({
    name: 'registry_storage_cache_requests_total',
    help: 'The number of cache requests received.',
    labelNames: ['cache'],
    registers: [this.registry],
  });
  private readonly cacheHits = new Counter({
    name: 'registry_storage_cache_hits_total',
    help: 'The number of cache requests that hit.',
    labelNames: ['cache'],
    registers: [this.registry],
  });
  private readonly searchMisses = new Counter({
    name: 'berth_search_index_missed_total',
    help: 'Writes whose search document update failed after the write was stored: the repository was marked for repair (ADR 0023).',
    registers: [this.registry],
  });
  private readonly searchRepairs = new Counter({
    name: 'berth_search_index_repaired_total',
    help: 'Repositories whose search document a repair pass rebuilt after a missed update.',
    registers: [this.registry],
  });
  private readonly blobCacheBytes = new Gauge({
    name: 'berth_blob_cache_bytes',
    help: "Bytes of blob data kept in this process's blob cache folder (cache.blobDir).",
    registers: [this.registry],
  });
  private readonly peers = new Gauge({
    name: 'berth_storage_peers',
    help: "Processes serving this storage, this one included, as this process's last membership round found them (peers/).",
    registers: [this.registry],
  });
  private readonly tagsKept = new Gauge({
    name: 'berth_tags_kept',
    help: '1 while this process is alone on the storage and keeps tag reads in memory (cache.tagsWhenAlone).',
    registers: [this.registry],
  });
  private readonly uploadsInProgress = new Gauge({
    name: 'berth_upload_sessions_in_progress',
    help: 'Upload sessions saved in storage (all replicas): from their first bytes until purged if cancelled, counted at scrape time (capped at 10000).',
    registers: [this.registry],
    collect: async () => {
      if (this.countUploads) this.uploadsInProgress.set(await this.countUploads());
    },
  });
  private readonly uploadDuration = new Histogram({
    name: 'berth_upload_session_duration_seconds',
    help: 'Time from upload start to commit of committed upload sessions.',
    buckets: UPLOAD_BUCKETS,
    registers: [this.registry],
  });

  private readonly syncRuns = new Counter<'job' | 'result'>({
    name: 'berth_sync_runs_total',
    help: 'Sync runs by job and result (success, failure, busy: another replica ran it, aborted).',
    labelNames: ['job', 'result'],
    registers: [this.registry],
  });
  private readonly syncTags = new Counter<'job' | 'outcome'>({
    name: 'berth_sync_tags_total',
    help: 'Tags a sync run copied (moved or new) or found unchanged.',
    labelNames: ['job', 'outcome'],
    registers: [this.registry],
  });
  private readonly syncManifests = new Counter<'job' | 'outcome'>({
    name: 'berth_sync_manifests_total',
    help: 'Manifests a sync run copied or skipped (already stored).',
    labelNames: ['job', 'outcome'],
    registers: [this.registry],
  });
  private readonly syncBlobs = new Counter<'job' | 'outcome'>({
    name: 'berth_sync_blobs_total',
    help: 'Blobs a sync run copied or skipped (already stored).',
    labelNames: ['job', 'outcome'],
    registers: [this.registry],
  });
  private readonly syncBytes = new Counter<'job'>({
    name: 'berth_sync_bytes_total',
    help: 'Blob bytes a sync run copied.',
    labelNames: ['job'],
    registers: [this.registry],
  });
  private readonly syncLastSuccess = new Gauge<'job'>({
    name: 'berth_sync_last_success_timestamp_seconds',
    help: 'When the last successful sync run of a job in this process ended (Unix seconds).',
    labelNames: ['job'],
    registers: [this.registry],
  });
  private readonly syncDuration = new Histogram<'job' | 'result'>({
    name: 'berth_sync_run_duration_seconds',
    help: 'Duration of sync runs that did work (not busy).',
    labelNames: ['job', 'result'],
    buckets: [1, 5, 15, 60, 300, 900, 3600, 10800],
    registers: [this.registry],
  });

  private deliveries: EndpointBacklog[] = [];
  private countUploads: (() => Promise<number>) | undefined;

  constructor(
    private readonly cfg: MetricsConfig,
    opts: { processMetrics?: boolean } = {},
  ) {
    this.allow = new GlobSet(cfg.repositories);
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
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

  /**
   * requestStarted starts observing one HTTP request (in flight from now); the function it
   * returns records the registry_http_* metrics once the request has ended.
   */
  requestStarted(): (r: FinishedRequest) => void {
    const started = process.hrtime.bigint();
    this.httpInFlight.inc({ handler: 'all' });
    return (r) => {
      const handler = r.route.replaceAll('-', '_');
      this.httpInFlight.dec({ handler: 'all' });
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      this.httpRequests.inc({ handler, code: String(r.status), method: r.method });
      this.httpDuration.observe({ handler, method: r.method }, seconds);
      this.httpRequestSize.observe({ handler }, r.requestBytes);
      this.httpResponseSize.observe({ handler }, r.responseBytes);
      if (r.storageCalls !== undefined) this.storageCalls.observe({ handler }, r.storageCalls);
    };
  }

  /** onEvent counts pushes, pulls and deletes per repository. */
  onEvent(e: CountedEvent): void {
    this.eventsEmitted.inc({ action: e.action });
    const repository = this.repository(e.repository);
    const { type, bytes } = e;
    switch (e.action) {
      case 'push':
        if (e.tagged) return; // a tag on an already pushed manifest
        this.pushes.inc({ repository, type });
        this.pushedBytes.inc({ repository }, bytes);
        return;
      case 'pull':
        this.pulls.inc({ repository, type });
        this.pulledBytes.inc({ repository }, bytes);
        return;
      case 'delete':
        this.deletes.inc({ repository, type });
        return;
      case 'mount':
        return;
    }
  }

  /** observer is the notification counter of one endpoint. */
  observer(endpoint: string): NotificationCounter {
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
  watch(o: { deliveries?: EndpointBacklog[]; countUploads?: () => Promise<number> }): void {
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

  /** observeStorage records one storage call's duration (the metered driver's observer). */
  observeStorage(driver: string, action: string, seconds: number): void {
    this.storageSeconds.observe({ driver, action }, seconds);
  }

  /** searchObserver counts missed search document updates and repaired repositories. */
  searchObserver(): (what: 'missed' | 'repaired') => void {
    return (what) => (what === 'missed' ? this.searchMisses : this.searchRepairs).inc();
  }

  /** observeBlobCacheBytes records the bytes kept in this process's blob cache folder. */
  observeBlobCacheBytes(bytes: number): void {
    this.blobCacheBytes.set(bytes);
  }

  /** observePeers records a membership round: live processes, and whether tags are kept. */
  observePeers(peers: number, tagsKept: boolean): void {
    this.peers.set(peers);
    this.tagsKept.set(tagsKept ? 1 : 0);
  }

  /** observeUpload records a committed upload session's duration, start to commit. */
  observeUpload(seconds: number): void {
    this.uploadDuration.observe(seconds);
  }

  /** observeSyncProgress adds one step of a sync run of `job` to the sync counters. */
  observeSyncProgress(job: string, d: SyncProgress): void {
    if (d.tagsCopied) this.syncTags.inc({ job, outcome: 'copied' }, d.tagsCopied);
    if (d.tagsUnchanged) this.syncTags.inc({ job, outcome: 'unchanged' }, d.tagsUnchanged);
    if (d.manifestsCopied) this.syncManifests.inc({ job, outcome: 'copied' }, d.manifestsCopied);
    if (d.manifestsSkipped) this.syncManifests.inc({ job, outcome: 'skipped' }, d.manifestsSkipped);
    if (d.blobsCopied) this.syncBlobs.inc({ job, outcome: 'copied' }, d.blobsCopied);
    if (d.blobsSkipped) this.syncBlobs.inc({ job, outcome: 'skipped' }, d.blobsSkipped);
    if (d.bytes) this.syncBytes.inc({ job }, d.bytes);
  }

  /** observeSyncRun counts a finished sync run; `at` is when it ended (ms since the epoch). */
  observeSyncRun(job: string, result: string, seconds: number, at: number): void {
    this.syncRuns.inc({ job, result });
    if (result !== 'busy') this.syncDuration.observe({ job, result }, seconds);
    if (result === 'success') this.syncLastSuccess.set({ job }, at / 1000);
  }

  /** exposition renders the registry in the Prometheus text format. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
