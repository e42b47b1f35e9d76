/**
 * Controller wires informers to the work queue and the queue to reconcileRegistry: events on
 * a Registry, or on a child it controls, enqueue the Registry's key; workers process keys one
 * at a time per key; failures back off; a resync enqueues every Registry periodically.
 */
import {
  AppsV1Api,
  ApisApi,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
  type V1Pod,
} from '@kubernetes/client-node';
import { backoffDelay, realClock, type Clock } from './clock.js';
import { LABEL_INSTANCE, selectorLabels } from './desired/meta.js';
import type { EventSink } from './events.js';
import { referencedObjects, type ObjectRef } from './desired/files.js';
import { operatorImage } from './image.js';
import { watchResource, type WatchEvent, type Watched } from './informer.js';
import type { Logger } from './log.js';
import type { OperatorMetrics } from './metrics.js';
import type { AdmissionPolicy } from './policy.js';
import { WorkQueue } from './queue.js';
import { Applier } from './reconcile/apply.js';
import { reconcileRegistry, type ReconcileDeps } from './reconcile/registry.js';
import {
  serviceMonitorSource,
  watchApis,
  watchedSources,
  type Source,
  type SourceHandlers,
} from './sources.js';
import type { BucketStore } from './storage.js';
import { GROUP, KIND, PLURAL, type Registry } from './types.js';

export interface ControllerOptions {
  kc: KubeConfig;
  log: Logger;
  metrics: OperatorMetrics;
  buckets: BucketStore;
  events: EventSink;
  clock?: Clock;
  /** workers is the number of concurrent reconciles (different keys only). Default 2. */
  workers?: number;
  /** resyncMs enqueues every Registry this often. Default 5 minutes. */
  resyncMs?: number;
  /** storageRetryMs is how soon storage problems are retried. Default 15 s. */
  storageRetryMs?: number;
  /** operatorImage is what Registries without spec.image run. Default: operatorImage(). */
  operatorImage?: string;
  /** maxBackoffMs caps the per-key retry delay after errors. Default 5 minutes. */
  maxBackoffMs?: number;
  /**
   * namespaces, when non-empty, are the only namespaces watched and reconciled (one informer
   * per namespace and kind, so namespaced Roles suffice). Empty or absent: the whole cluster.
   */
  namespaces?: readonly string[];
  /** policy is what Registries may ask for (see AdmissionPolicy). Default: everything. */
  policy?: AdmissionPolicy;
}

/** DISCOVERY_TIMEOUT_MS bounds an API discovery request, which would otherwise wait minutes. */
const DISCOVERY_TIMEOUT_MS = 10_000;

/** withTimeout settles as `p` does, or rejects once `ms` pass on `clock` first. */
function withTimeout<T>(clock: Clock, p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const cancel = clock.setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms);
    p.then(
      (v) => {
        cancel();
        resolve(v);
      },
      (err: unknown) => {
        cancel();
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

const keyOf = (ns: string | undefined, name: string | undefined): string =>
  `${ns ?? ''}/${name ?? ''}`;

/** ownerKey is the key of the Registry that controls `obj`, if any. */
function ownerKey(obj: KubernetesObject): string | undefined {
  const ref = obj.metadata?.ownerReferences?.find(
    (o) => o.controller === true && o.kind === KIND && o.apiVersion.startsWith(`${GROUP}/`),
  );
  return ref ? keyOf(obj.metadata?.namespace, ref.name) : undefined;
}

export class Controller {
  readonly queue: WorkQueue;
  private readonly clock: Clock;
  /** watches are the informers; an optional one (ServiceMonitors) does not gate synced(). */
  private readonly watches: { name: string; w: Watched<KubernetesObject>; optional?: boolean }[] =
    [];
  private readonly deps: ReconcileDeps;
  private running = false;
  private cancelResync: (() => void) | undefined;
  private cancelDiscovery: (() => void) | undefined;
  private workersDone: Promise<void>[] = [];
  private smCache: { at: number; value: boolean } | undefined;

  constructor(private readonly opts: ControllerOptions) {
    this.clock = opts.clock ?? realClock;
    this.queue = new WorkQueue({ clock: this.clock, maxDelayMs: opts.maxBackoffMs ?? 300_000 });
    const kc = opts.kc;
    const apis = kc.makeApiClient(ApisApi);
    this.deps = {
      core: kc.makeApiClient(CoreV1Api),
      apps: kc.makeApiClient(AppsV1Api),
      custom: kc.makeApiClient(CustomObjectsApi),
      applier: new Applier(kc),
      buckets: opts.buckets,
      events: opts.events,
      clock: this.clock,
      log: opts.log,
      storageRetryMs: opts.storageRetryMs,
      operatorImage: opts.operatorImage ?? operatorImage(),
      ...(opts.policy ? { policy: opts.policy } : {}),
      registryPods: (r) => this.registryPods(r),
      serviceMonitorApi: async () => {
        const now = this.clock.now();
        if (this.smCache && now - this.smCache.at < 60_000) return this.smCache.value;
        const groups = await withTimeout(this.clock, apis.getAPIVersions(), DISCOVERY_TIMEOUT_MS);
        const value = groups.groups.some(
          (g) => g.name === 'monitoring.coreos.com' && g.versions.some((v) => v.version === 'v1'),
        );
        this.smCache = { at: now, value };
        return value;
      },
    };
  }

  /** synced is true when every informer has listed once. */
  synced(): boolean {
    return this.running && this.watches.every((w) => w.optional === true || w.w.synced());
  }

  /** start begins watching and reconciling; it resolves once the caches are synced. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const apis = watchApis(this.opts.kc);
    for (const src of watchedSources(apis, this.handlers())) {
      for (const w of this.watchesOf(src)) this.watches.push({ name: src.name, w });
    }
    await Promise.all(this.watches.map((w) => w.w.start()));
    this.opts.log.info({ informers: this.watches.map((w) => w.name) }, 'caches synced');
    const n = this.opts.workers ?? 2;
    for (let i = 0; i < n; i++) this.workersDone.push(this.worker());
    this.scheduleResync();
    // ServiceMonitors are watched once discovery says their API is served; a failed discovery
    // request is retried. It is optional: readiness never waits for it.
    this.watchServiceMonitors(1, () =>
      this.watchesOf(serviceMonitorSource(apis.custom, this.handlers().owned)),
    );
  }

  /** handlers turn watch events into the keys of the Registries they concern. */
  private handlers(): SourceHandlers {
    const owned = (_t: WatchEvent, o: KubernetesObject) => {
      const k = ownerKey(o);
      if (k) this.enqueue(k);
    };
    return {
      registry: (_t, o) => this.enqueue(keyOf(o.metadata?.namespace, o.metadata?.name)),
      owned,
      referenced: (source) => (t, o) => {
        owned(t, o);
        for (const key of this.referencing(source, o.metadata?.namespace, o.metadata?.name))
          this.enqueue(key);
      },
      pod: (_t, o) => {
        const instance = o.metadata?.labels?.[LABEL_INSTANCE];
        if (instance) this.enqueue(keyOf(o.metadata?.namespace, instance));
      },
    };
  }

  /**
   * watchesOf makes the informers of `src`. Cluster-wide: one informer per kind.
   * Namespace-scoped: one per kind and namespace, on the namespaced paths, so Roles in those
   * namespaces are all the operator needs.
   */
  private watchesOf(src: Source): Watched<KubernetesObject>[] {
    const scopes: (string | undefined)[] =
      this.opts.namespaces && this.opts.namespaces.length > 0
        ? [...this.opts.namespaces]
        : [undefined];
    const { kc, log, metrics } = this.opts;
    return scopes.map((ns) =>
      watchResource<KubernetesObject>({
        kc,
        log,
        clock: this.clock,
        path: `${src.prefix}${ns === undefined ? '' : `/namespaces/${ns}`}/${src.name}`,
        list: () => src.list(ns),
        ...(src.labelSelector !== undefined ? { labelSelector: src.labelSelector } : {}),
        ...(src.metadataOnly ? { metadataOnly: true } : {}),
        onEvent: src.onEvent,
        onError: () => metrics.watchRestarts.inc({ resource: src.name }),
      }),
    );
  }

  /**
   * watchServiceMonitors asks discovery whether monitoring.coreos.com/v1 is served and, if it
   * is, starts the ServiceMonitor watch `make` returns. A failed request is asked again
   * after a capped backoff while the controller runs; an API that is not served is not watched.
   */
  private watchServiceMonitors(attempt: number, make: () => Watched<KubernetesObject>[]): void {
    this.deps.serviceMonitorApi().then(
      (served) => {
        if (!served || !this.running) return;
        for (const w of make()) {
          this.watches.push({ name: 'servicemonitors', w, optional: true });
          void w.start();
        }
      },
      (err: unknown) => {
        if (!this.running) return;
        const delay = backoffDelay(attempt, 1000, 60_000);
        this.opts.log.warn(
          { err: errText(err).split('\n')[0], retryInMs: delay },
          'api discovery failed, servicemonitors not watched yet',
        );
        this.cancelDiscovery = this.clock.setTimeout(() => {
          if (this.running) this.watchServiceMonitors(attempt + 1, make);
        }, delay);
      },
    );
  }

  /** stop ends watching, lets in-flight reconciles finish, and shuts the queue down. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.cancelResync?.();
    this.cancelDiscovery?.();
    for (const w of this.watches.splice(0)) w.w.stop();
    this.queue.shutDown();
    await Promise.all(this.workersDone.splice(0));
  }

  /**
   * referencing lists the keys of the Registries in `namespace` that reference the Secret or
   * ConfigMap `name` (see referencedObjects), from the Registry cache.
   */
  private referencing(
    source: ObjectRef['source'],
    namespace: string | undefined,
    name: string | undefined,
  ): string[] {
    if (namespace === undefined || name === undefined) return [];
    const regs = this.cached(PLURAL, namespace);
    return regs
      .filter((r) => {
        const spec = (r as Partial<Registry>).spec;
        if (!spec?.storage?.s3?.credentialsSecretRef) return false;
        return referencedObjects(r as Registry).some((o) => o.source === source && o.name === name);
      })
      .map((r) => keyOf(namespace, r.metadata?.name));
  }

  /** registryPods are the Registry's server pods as the pod informer last saw them. */
  private registryPods(r: Registry): readonly V1Pod[] {
    const pods = this.cached('pods', r.metadata.namespace);
    const want = Object.entries(selectorLabels(r));
    return pods.filter((p) => want.every(([k, v]) => p.metadata?.labels?.[k] === v));
  }

  /** cached lists what the informers of `name` hold (in `namespace`, else in every scope). */
  private cached(name: string, namespace?: string): KubernetesObject[] {
    return this.watches.filter((w) => w.name === name).flatMap((w) => [...w.w.list(namespace)]);
  }

  private enqueue(key: string): void {
    this.queue.add(key);
    this.opts.metrics.queueDepth.set(this.queue.len());
  }

  private scheduleResync(): void {
    const every = this.opts.resyncMs ?? 300_000;
    this.cancelResync = this.clock.setTimeout(() => {
      if (!this.running) return;
      const regs = this.cached(PLURAL);
      for (const r of regs) this.enqueue(keyOf(r.metadata?.namespace, r.metadata?.name));
      this.scheduleResync();
    }, every);
  }

  private async worker(): Promise<void> {
    const { metrics, log } = this.opts;
    for (;;) {
      const key = await this.queue.get();
      metrics.queueDepth.set(this.queue.len());
      if (key === undefined) return;
      const [namespace = '', name = ''] = key.split('/');
      const end = metrics.reconcileTime.startTimer();
      try {
        const res = await reconcileRegistry(this.deps, namespace, name);
        this.queue.forget(key);
        if (res.requeueAfterMs !== undefined) {
          this.queue.addAfter(key, res.requeueAfterMs);
          metrics.reconcileTotal.inc({ result: 'requeue' });
        } else {
          metrics.reconcileTotal.inc({ result: 'success' });
        }
      } catch (err) {
        const delay = this.queue.addRateLimited(key);
        metrics.reconcileTotal.inc({ result: 'error' });
        metrics.reconcileErrors.inc();
        log.warn(
          { registry: name, namespace, err: errText(err), retryInMs: delay },
          'reconcile failed',
        );
      } finally {
        end();
        this.queue.done(key);
      }
    }
  }
}

function errText(err: unknown): string {
  const body = (err as { body?: unknown }).body;
  if (typeof body === 'string') return `${String(err)}: ${body.slice(0, 500)}`;
  return String(err);
}
