/**
 * watchResource keeps a list+watch cache of one resource with client-node's informer, and
 * restarts it after any error with capped exponential backoff (the library stops on every
 * non-410 error; 410 Gone it handles itself by re-listing). API-server restarts and dropped
 * watches are therefore survived without restarting the operator.
 */
import {
  makeInformer,
  setHeaderOptions,
  type Informer,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type ObjectCache,
} from '@kubernetes/client-node';
import { backoffDelay, realClock, type Clock } from './clock.js';
import type { Logger } from './log.js';

export type WatchEvent = 'add' | 'update' | 'delete';

const metadataAccept = (as: 'PartialObjectMetadata' | 'PartialObjectMetadataList'): string =>
  `application/json;as=${as};g=meta.k8s.io;v=v1`;

/**
 * metadataList asks a generated client's list call for metadata only (a
 * PartialObjectMetadataList: every item's `metadata`, no `data`, `spec` or `status`), as the
 * `list` of a watchResource with `metadataOnly` must.
 */
export const metadataList = (): ReturnType<typeof setHeaderOptions> =>
  setHeaderOptions('Accept', metadataAccept('PartialObjectMetadataList'));

/** withAccept is `kc` with every request it authenticates asking for the media type `accept`. */
function withAccept(kc: KubeConfig, accept: string): KubeConfig {
  const out = Object.create(kc) as KubeConfig;
  out.applySecurityAuthentication = async (ctx) => {
    await kc.applySecurityAuthentication(ctx);
    ctx.setHeaderParam('Accept', accept);
  };
  return out;
}

/**
 * MAX_RESTART_DELAY_MS caps the delay between restarts of a failed watch: long enough not to
 * hammer an API server that is down (kubernetes-client/javascript#1933), short enough that a
 * restarted one is noticed within seconds.
 */
export const MAX_RESTART_DELAY_MS = 5_000;

export interface Watched<T extends KubernetesObject> {
  /** start lists and watches; it resolves once the first list has been delivered. */
  start(): Promise<void>;
  stop(): void;
  /** synced is true once a list has completed. */
  synced(): boolean;
  list(namespace?: string): readonly T[];
  get(name: string, namespace?: string): T | undefined;
  /** restarts counts restarts after errors (for tests and metrics). */
  restarts(): number;
}

export interface WatchOptions<T extends KubernetesObject> {
  kc: KubeConfig;
  /** path is the watch path, e.g. `/apis/apps/v1/deployments`. */
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  labelSelector?: string;
  onEvent: (type: WatchEvent, obj: T) => void;
  log: Logger;
  clock?: Clock;
  /** onError is told about every error (before the restart). */
  onError?: (err: unknown) => void;
  /**
   * metadataOnly watches PartialObjectMetadata: the cache and the events hold each object's
   * metadata only (for Secrets, no values in the operator's memory). `list` must ask for
   * metadata too (metadataList).
   */
  metadataOnly?: boolean;
}

export function watchResource<T extends KubernetesObject>(opts: WatchOptions<T>): Watched<T> {
  const clock = opts.clock ?? realClock;
  const informer: Informer<T> & ObjectCache<T> = makeInformer(
    opts.metadataOnly ? withAccept(opts.kc, metadataAccept('PartialObjectMetadata')) : opts.kc,
    opts.path,
    opts.list,
    opts.labelSelector,
  );
  let stopped = false;
  let synced = false;
  let failures = 0;
  let restarts = 0;
  let cancelRestart: (() => void) | undefined;
  let firstSync: (() => void) | undefined;
  const firstSynced = new Promise<void>((resolve) => (firstSync = resolve));

  informer.on('add', (o) => opts.onEvent('add', o));
  informer.on('update', (o) => opts.onEvent('update', o));
  informer.on('delete', (o) => opts.onEvent('delete', o));
  informer.on('connect', () => {
    synced = true;
    failures = 0;
    firstSync?.();
  });
  informer.on('error', (err: unknown) => {
    if (stopped) return;
    opts.onError?.(err);
    failures++;
    const delay = backoffDelay(failures, 250, MAX_RESTART_DELAY_MS);
    opts.log.warn(
      { path: opts.path, err: String(err).split('\n').slice(0, 3).join(' '), delay },
      'watch failed, restarting',
    );
    cancelRestart?.();
    cancelRestart = clock.setTimeout(() => {
      cancelRestart = undefined;
      if (stopped) return;
      restarts++;
      informer.start().catch(() => {
        // the informer reports the failure through its error event as well
      });
    }, delay);
  });

  return {
    start: async () => {
      stopped = false;
      await informer.start().catch(() => undefined);
      await firstSynced;
    },
    stop: () => {
      stopped = true;
      cancelRestart?.();
      void informer.stop();
    },
    synced: () => synced,
    list: (ns) => informer.list(ns),
    get: (name, ns) => informer.get(name, ns),
    restarts: () => restarts,
  };
}
