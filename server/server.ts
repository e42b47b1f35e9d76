import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { immutableTagsRepository } from './auth/immutable.js';
import { FetchLeases } from './mirror/fetch-lease.js';
import { SearchIndex } from './search/index.js';
import { indexingRepository } from './search/repository.js';
import { repairStale } from './search/reindex.js';
import { mirroredRepository, type MirrorDeps } from './mirror/repository.js';
import { Upstreams } from './mirror/upstreams.js';
import { onClientError } from './http/client-error.js';
import { AuthService } from './auth/service.js';
import { systemClock, type Clock, type Timer } from './util/clock.js';
import { serverOptions, watchTls } from './http/tls.js';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import type { BerthConfig } from './config/types.js';
import { kind, type Event } from './events/event.js';
import { EventsRuntime } from './events/runtime.js';
import { errorBody, isRegistryError } from './errors.js';
import { createGarbageCollector, GcScheduler, type GarbageCollector } from './gc/index.js';
import { ConnectionDrain } from './http/drain.js';
import { createApp, toRegistryError } from './http/app.js';
import { checkReady } from './http/readiness.js';
import { observeRequests } from './http/middleware/observe.js';
import { MeteredDriver } from './metrics/driver.js';
import { Metrics, type CountedEvent } from './metrics/metrics.js';
import type { Services } from './http/context.js';
import { observedUploads } from './registry/observed-uploads.js';
import { Registry, type Repository } from './registry/repository.js';
import { SyncService } from './sync/service.js';
import { Tokens } from './registry/token.js';
import { Uploads } from './registry/uploads.js';
import { CachingDriver } from './storage/cache.js';
import { DiskCachingDriver } from './storage/diskcache.js';
import type { StorageDriver } from './storage/driver.js';
import { Paths } from './storage/paths.js';
import { Coherence } from './storage/coherence.js';
import { Peers } from './storage/peers.js';
import { cachedViews, type StorageViews } from './storage/views.js';
import { FilesystemDriver } from './storage/drivers/filesystem.js';
import { InMemoryDriver } from './storage/drivers/inmemory.js';
import { S3Driver } from './storage/drivers/s3.js';
import { createLogger, type Logger } from './util/log.js';

/** MAX_CACHED_KEY: longer keys would make file names past common 255-byte limits. */
const MAX_CACHED_KEY = 200;

/** createDriver builds the configured storage driver. */
export function createDriver(config: BerthConfig): StorageDriver {
  switch (config.storage.driver) {
    case 'filesystem':
      return new FilesystemDriver(config.storage.filesystem.root);
    case 's3':
      return new S3Driver(config.storage.s3);
    case 'inmemory':
      return new InMemoryDriver();
  }
}

/** createServices wires the domain over a driver. */
export function createServices(
  config: BerthConfig,
  driver: StorageDriver,
  log: Logger,
  clock: Clock = systemClock,
): Services {
  const secret = httpSecret(config, log);
  // Cross-cutting concerns wrap: metrics around the driver, events around repositories.
  const metrics = config.metrics.enabled ? new Metrics(config.metrics) : undefined;
  const { storage, peers, coherence } = storageStack(config, driver, { log, clock, metrics });
  const events = eventsRuntime(config, storage.cached, driver, { log, clock, metrics });
  const tokens = new Tokens(secret);
  const uploads = new Uploads(storage, {
    ttlSeconds: config.uploads.ttlSeconds,
    clock,
    log,
    abortStale: driver.abortStaleMultipartUploads && ((d) => driver.abortStaleMultipartUploads!(d)),
    mintId: (repo, startedAt, alg) => tokens.mintId(repo, startedAt, alg),
  });
  const auth = new AuthService(config.auth, { clock, log });
  const search = new SearchIndex(storage, { clock, log, observe: metrics?.searchObserver() });
  const upstreams = new Upstreams(config.mirrors.upstreams, clock);
  const { registry, local } = registries(config, storage, {
    auth,
    search,
    events,
    upstreams,
    uploads,
    log,
    clock,
    metrics,
  });
  const services: Services = {
    config,
    driver: storage.cached,
    log,
    registry,
    uploads: metrics
      ? observedUploads(uploads, (seconds) => metrics.observeUpload(seconds), clock)
      : uploads,
    events,
    search,
    metrics,
    peers,
    upstreams: upstreams.empty ? undefined : upstreams,
    coherence,
    tokens,
    auth,
    clock,
  };
  const wiring = { upstreams, uploads, driver: storage.cached, log, clock, metrics };
  if (local) services.sync = syncService(config, local, wiring);
  // The admin GC report (GET /v2/_berth/gc) dry-runs a collector of its own: runs of one
  // collector never overlap, so sharing the scheduled one would let a report stand in for a run.
  services.gc = createGarbageCollector(config, services);
  return services;
}

/**
 * registries builds the registry the API serves and, when sync jobs are configured, the one
 * they write through. Policy inside search inside events: a refused write records no event
 * and indexes nothing. The mirror outside them all: what it fetches is stored like a push
 * (ADR 0024). Sync writes as a push does but never through the mirror, which would ask the
 * upstream for what is missing (ADR 0027).
 */
function registries(
  config: BerthConfig,
  storage: StorageViews,
  w: Wiring & {
    auth: AuthService;
    search: SearchIndex;
    events: EventsRuntime;
    upstreams: Upstreams;
    uploads: Uploads;
  },
): { registry: Registry; local?: Registry } {
  const { auth, search, events, upstreams, uploads, log, clock, metrics } = w;
  const s3 = config.storage.driver === 's3' ? config.storage.s3 : undefined;
  const mirror = mirrorDeps(uploads, storage.cached, clock, log);
  const pushed = (repo: Repository) =>
    events.decorate(indexingRepository(immutableTagsRepository(repo, auth.policy), search));
  const options = {
    allowSparse: config.validation.allowSparse,
    redirectSeconds: s3?.redirect ? 1200 : undefined,
    sparse: (name: string) => upstreams.target(name) !== undefined,
    cacheObserver: metrics && ((hit: boolean) => metrics.observeCache(hit)),
    clock,
  };
  const registry = new Registry(storage, {
    ...options,
    decorate: (repo) => {
      const target = upstreams.target(repo.name);
      return target ? mirroredRepository(pushed(repo), target, mirror) : pushed(repo);
    },
  });
  const local =
    config.mirrors.sync.length > 0
      ? new Registry(storage, { ...options, decorate: pushed })
      : undefined;
  return { registry, local };
}

/**
 * syncService runs the sync jobs, writing through `local` (see registries).
 */
function syncService(
  config: BerthConfig,
  local: Registry,
  w: Wiring & { upstreams: Upstreams; uploads: Uploads; driver: StorageDriver },
): SyncService {
  const { upstreams, metrics } = w;
  return new SyncService(config.mirrors.sync, {
    driver: w.driver,
    upstream: (name) => upstreams.byName(name),
    mappedTo: (name) => upstreams.target(name)?.upstream.config.name,
    local: (name) => local.repository(name),
    uploads: w.uploads,
    log: w.log.child({ component: 'sync' }),
    clock: w.clock,
    observer: metrics && {
      progress: (job, delta) => metrics.observeSyncProgress(job, delta),
      finished: (job, result, seconds, at) => metrics.observeSyncRun(job, result, seconds, at),
    },
  });
}

/**
 * mirrorDeps is what the pull-through cache writes with: one upstream fetch of a blob at a
 * time in this process (`inflight`) and across the replicas of the storage (`leases`).
 */
function mirrorDeps(
  uploads: Uploads,
  driver: StorageDriver,
  clock: Clock,
  log: Logger,
): MirrorDeps {
  const holder = `${hostname()}:${process.pid}`;
  const leases = new FetchLeases({ driver, clock, log, holder });
  return { uploads, driver, clock, log, inflight: new Map(), leases };
}

/** httpSecret is the configured upload-token secret, or a random one (with a warning). */
function httpSecret(config: BerthConfig, log: Logger): string {
  const secret = config.http.secret;
  if (secret !== undefined && secret !== '') return secret;
  log.warn(
    {},
    'no http.secret configured: upload sessions will not survive a restart or move between replicas',
  );
  return randomBytes(32).toString('hex');
}

/** Wiring is what every wiring step may use: the log, the clock and the metrics when on. */
interface Wiring {
  log: Logger;
  clock: Clock;
  metrics: Metrics | undefined;
}

/**
 * storageStack wraps `raw` as the domain reads it: metered, then the blob disk cache when
 * configured, then the metadata cache, whose cached and fresh views the domain receives;
 * the membership (peers) runs on the raw driver.
 */
function storageStack(
  config: BerthConfig,
  raw: StorageDriver,
  { log, clock, metrics }: Wiring,
): { storage: StorageViews; peers: Peers; coherence?: Coherence } {
  let driver = raw;
  if (metrics) {
    driver = new MeteredDriver(driver, (d, action, seconds) =>
      metrics.observeStorage(d, action, seconds),
    );
  }
  const cache = config.cache;
  if (cache.blobDir !== '') {
    driver = new DiskCachingDriver(driver, {
      dir: cache.blobDir,
      maxBytes: cache.blobMaxGiB * 1024 ** 3,
      cacheable: (key) => Paths.isSegment(key) && key.length <= MAX_CACHED_KEY,
      log,
      observe: metrics && ((hit) => metrics.observeCache(hit, 'blob')),
      onBytes: metrics && ((bytes) => metrics.observeBlobCacheBytes(bytes)),
    });
  }
  // Every process on the storage takes part in the membership (it gates tag writes); only
  // with tagsWhenAlone does it also keep tags while alone.
  // Membership keeps its own clock, monotonicClock: its periods must not jump with the wall clock.
  // With peerListen, each process hears of the others' tag moves (ADR 0025), and its peers
  // entry says where.
  const coherence: Coherence | undefined =
    cache.peerListen === ''
      ? undefined
      : new Coherence(() => peers, {
          listen: cache.peerListen,
          advertise: cache.peerAdvertise,
          invalidate: (key) => caching.invalidate(key),
          log,
        });
  const peers: Peers = new Peers(raw, {
    log,
    onRound: metrics && ((r) => metrics.observePeers(r.peers, r.alone && cache.tagsWhenAlone)),
    endpoint: coherence && (() => coherence.endpoint()),
  });
  const caching: CachingDriver = new CachingDriver(driver, {
    immutable: Paths.immutable,
    ttlMs: cache.ttlSeconds * 1000,
    mutable: Paths.isTag,
    mutableTtlMs: cache.tagTtlSeconds * 1000,
    alone: cache.tagsWhenAlone ? () => peers.keepEpoch() : undefined,
    beforeMutableWrite: () => peers.whenWritable(),
    announce: coherence && ((key) => coherence.announce([key])),
    announced: (key) =>
      Paths.isTag(key) ||
      Paths.isCatalogEntry(key) ||
      (key.endsWith('/') && key.startsWith('repositories/')),
    listable: Paths.listCached,
    listTtlMs: cache.listTtlSeconds * 1000,
    // Every tag and catalog marker written or deleted is announced (above), so tag lists and
    // the catalog are kept like tags.
    listKept: Paths.listCached,
    maxBytes: cache.maxMiB * 1024 * 1024,
    clock,
    observe: metrics && ((kind, hit) => metrics.observeCache(hit, kind)),
  });
  return { storage: cachedViews(caching), peers, coherence };
}

/** eventsRuntime builds the events runtime over `driver`, counted by the metrics when on. */
function eventsRuntime(
  config: BerthConfig,
  driver: StorageDriver,
  raw: StorageDriver,
  { log, clock, metrics }: Wiring,
): EventsRuntime {
  const events = new EventsRuntime(config.notifications, driver, log, {
    listenAddr: config.http.addr,
    clock,
    observerFor: metrics && ((endpoint) => metrics.observer(endpoint)),
  });
  if (metrics) {
    events.emitter.onEvent((e) => metrics.onEvent(counted(e)));
    metrics.watch({
      deliveries: events.notifier.endpoints,
      countUploads: () => countKeys(raw, 'uploads/', 10_000),
    });
  }
  return events;
}

/** counted is an event as the metrics count it. */
function counted(e: Event): CountedEvent {
  return {
    action: e.action,
    repository: e.target.repository,
    type: kind(e),
    bytes: e.target.size ?? 0,
    tagged: e.target.tag !== undefined,
  };
}

/** countKeys counts the names directly below `prefix`, up to `cap`. */
async function countKeys(driver: StorageDriver, prefix: string, cap: number): Promise<number> {
  let n = 0;
  let startAfter: string | undefined;
  while (n < cap) {
    const page = await driver.list(prefix, { startAfter, limit: 1000 });
    n += page.names.length;
    if (!page.truncated || page.names.length === 0) break;
    startAfter = page.names[page.names.length - 1];
  }
  return Math.min(n, cap);
}

export interface RunningServer {
  /** url is the base URL the server listens on, e.g. `http://127.0.0.1:5000`. */
  url: string;
  server: Server;
  services: Services;
  /** debugUrl is the base URL of the debug listener (/healthz, /readyz, /metrics), if any. */
  debugUrl?: string;
  /** gc is the garbage collector (scheduled when `gc.enabled`); its events feed metrics. */
  gc: GarbageCollector;
  /**
   * close stops accepting connections at once, lets in-flight requests finish (bounded by
   * http.shutdownTimeoutSeconds), answers them and any request still arriving on a kept-alive
   * connection with `Connection: close`, and closes a kept-alive connection once it has been
   * idle for a second (ConnectionDrain); open event streams end.
   */
  close(): Promise<void>;
}

/** startDebugServer serves /healthz, /readyz and /metrics on their own listener. */
async function startDebugServer(addr: string, s: Services): Promise<Server> {
  const server = createServer((req, res) => {
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    // Answers as the main listener's one error exit does: what failed goes to the log, the
    // client gets the error's code, never an internal message.
    const fail = (err: unknown) => {
      const e = toRegistryError(err);
      if (e.status >= 500 && !isRegistryError(err))
        s.log.error({ err, path: req.url }, 'debug request failed');
      for (const [k, v] of Object.entries(e.headers)) res.setHeader(k, String(v));
      reply(e.status, errorBody(e));
    };
    if (req.url === '/healthz') return reply(200, { status: 'ok' });
    const metrics = s.metrics;
    if (metrics && req.url === s.config.metrics.path) {
      metrics.exposition().then(({ contentType, body }) => {
        res.writeHead(200, { 'content-type': contentType });
        res.end(body);
      }, fail);
      return;
    }
    if (req.url === '/readyz') {
      checkReady(s).then(() => reply(200, { status: 'ready' }), fail);
      return;
    }
    reply(404, { errors: [{ code: 'NOT_FOUND', message: 'no route for this path' }] });
  });
  const { host, port } = splitAddr(addr);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

function splitAddr(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  return {
    host: addr.slice(0, i).replace(/^\[|\]$/g, '') || '0.0.0.0',
    port: Number(addr.slice(i + 1)),
  };
}

/** SEARCH_REPAIR_MS: how often each process rebuilds search documents marked stale. */
const SEARCH_REPAIR_MS = 30_000;

/**
 * startHousekeeping schedules each process's periodic chores: purging expired upload
 * sessions, and rebuilding the search documents of repositories marked after a missed
 * update (ADR 0023). Failures are logged; the schedule goes on.
 */
function startHousekeeping(config: BerthConfig, services: Services, log: Logger): Timer {
  const timers: Timer[] = [];
  if (config.uploads.purgeIntervalSeconds > 0) {
    timers.push(
      services.clock.every(config.uploads.purgeIntervalSeconds * 1000, () => {
        services.uploads
          .purgeExpired()
          .catch((err: unknown) => log.warn({ err }, 'upload purge failed'));
      }),
    );
  }
  timers.push(
    services.clock.every(SEARCH_REPAIR_MS, () => {
      repairStale(services.driver, services.registry, services.search).catch((err: unknown) =>
        log.warn({ err }, 'search index repair failed'),
      );
    }),
  );
  return { cancel: () => timers.forEach((t) => t.cancel()) };
}

/**
 * startServer listens with the configured address and returns once it accepts
 * connections. Node's request timeouts are lifted so a multi-GB upload is never cut.
 */
export async function startServer(
  config: BerthConfig,
  opts: { log?: Logger; driver?: StorageDriver; clock?: Clock; tlsPollMs?: number } = {},
): Promise<RunningServer> {
  const log = opts.log ?? createLogger(config.log.level);
  const driver = opts.driver ?? createDriver(config);
  const services = createServices(config, driver, log, opts.clock);
  const main = await listenMain(config, services, opts.tlsPollMs);
  const housekeeping = startHousekeeping(config, services, log);
  // The probes answer from now on; /readyz stays 503 until the first peers round is done.
  const debug =
    config.http.debugAddr === undefined
      ? undefined
      : await startDebugServer(config.http.debugAddr, services);
  // Joined before returning: tag writes wait for it, and alone, tags are kept from the start.
  await services.coherence?.start();
  await services.peers.start();
  services.events?.start();
  const gc = createGarbageCollector(config, services);
  const stopSchedules = startSchedules(config, services, gc);
  log.info(
    {
      url: main.url,
      driver: driver.name,
      readOnly: config.readOnly,
      debugAddr: config.http.debugAddr,
    },
    'registry listening',
  );
  return {
    url: main.url,
    server: main.server,
    services,
    debugUrl: debug && `http://127.0.0.1:${(debug.address() as AddressInfo).port}`,
    gc,
    close: async () => {
      housekeeping.cancel();
      await stopSchedules();
      debug?.close();
      await main.close();
      await services.events?.stop();
      await services.peers.stop();
      await services.coherence?.stop();
      await driver.close?.();
    },
  };
}

/**
 * startSchedules starts the background jobs (garbage collection when `gc.enabled`, the sync
 * jobs) and returns what stops them, aborting runs under way.
 */
function startSchedules(
  config: BerthConfig,
  services: Services,
  gc: GarbageCollector,
): () => Promise<void> {
  const gcSchedule = config.gc.enabled
    ? new GcScheduler(gc, {
        intervalSeconds: config.gc.intervalSeconds,
        dryRun: config.gc.dryRun,
        log: services.log,
        clock: services.clock,
      }).start()
    : undefined;
  // A read-only registry writes nothing: its sync jobs only answer for their last run.
  if (!config.readOnly) services.sync?.start();
  return async () => {
    await gcSchedule?.stop();
    await services.sync?.stop();
  };
}

/** MainListener is the client-facing listener: its URL, and a close that drains it. */
interface MainListener {
  url: string;
  server: Server;
  close(): Promise<void>;
}

/**
 * listenMain serves the app on http.addr (HTTPS with http.tls, its certificate reloaded on
 * change) and resolves once it accepts connections. Its close stops accepting at once;
 * in-flight requests finish, each connection ends on a response saying Connection: close
 * or after it stayed idle a moment (ConnectionDrain); open event streams end.
 */
async function listenMain(
  config: BerthConfig,
  services: Services,
  tlsPollMs: number | undefined,
): Promise<MainListener> {
  const { log, metrics } = services;
  const app = createApp(services, { outer: metrics ? [observeRequests(metrics)] : [] });
  const callback = app.callback();
  const tls = config.http.tls;
  const serverOpts = { maxHeaderSize: config.limits.headerBytes };
  // While draining, every response says Connection: close, so a client with a kept-alive
  // connection opens a new one (to another pod) instead of racing the socket's close.
  const inFlight = new Set<ServerResponse>();
  const drain = new ConnectionDrain();
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    drain.track(req, res);
    inFlight.add(res);
    res.on('close', () => inFlight.delete(res));
    void callback(req, res);
  };
  const server = tls
    ? createHttpsServer({ ...serverOpts, ...serverOptions(tls) }, handle)
    : createServer(serverOpts, handle);
  drain.attach(server, tls !== undefined);
  const unwatchTls =
    tls && 'setSecureContext' in server ? watchTls(server, tls, log, tlsPollMs) : undefined;
  server.on(
    'clientError',
    onClientError(log, metrics && ((r, st) => metrics.observeProtocolError(r, st))),
  );
  server.requestTimeout = 0;
  server.timeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 65_000;
  const { host, port } = splitAddr(config.http.addr);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    url: listenUrl(server.address() as AddressInfo, tls !== undefined),
    server,
    close: async () => {
      unwatchTls?.();
      services.events?.endStreams();
      await drain.drain(server, config.http.shutdownTimeoutSeconds * 1000, inFlight);
    },
  };
}

/** listenUrl is the base URL a local client reaches a listener at. */
function listenUrl(a: AddressInfo, tls: boolean): string {
  const host =
    a.family === 'IPv6' ? `[${a.address}]` : a.address === '0.0.0.0' ? '127.0.0.1' : a.address;
  return `${tls ? 'https' : 'http'}://${host}:${a.port}`;
}
