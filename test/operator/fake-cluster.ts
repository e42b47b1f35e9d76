/**
 * FakeCluster is a small in-memory stand-in for the API server behind the reconciler's narrow
 * roles (ReconcileDeps): objects by kind, namespace and name, label-selector lists, server-side
 * apply as "store what was sent", JSON and merge patches of the Registry, 404s as ApiExceptions.
 * Every write is recorded in `calls` (`apply Deployment/images`, `delete Ingress/images`, ...),
 * so tests assert on what the reconciler did, in order. The real Applier runs on it, so pruning
 * is the production code.
 */
import {
  ApiException,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { Applier, type ObjectClient } from '../../operator/reconcile/apply.js';
import type {
  AppsApi,
  CoreApi,
  ReconcileDeps,
  RegistryApi,
} from '../../operator/reconcile/registry.js';
import type { StorageState } from '../../operator/status.js';
import type { Registry } from '../../operator/types.js';
import { FakeClock } from './fake-clock.js';

const notFound = (what: string): ApiException<string> =>
  new ApiException(404, `${what} not found`, JSON.stringify({ message: `${what} not found` }), {});

/** matches says whether `labels` satisfy a selector of `k=v` and `k in (a,b)` terms. */
function matches(
  labels: Record<string, string> | undefined,
  selector: string | undefined,
): boolean {
  if (!selector) return true;
  return selector.split(/,(?![^(]*\))/).every((term) => {
    const inSet = /^(\S+) in \((.*)\)$/.exec(term.trim());
    if (inSet) return inSet[2]!.split(',').includes(labels?.[inSet[1]!] ?? '\0');
    const [k, v] = term.split('=');
    return labels?.[k!.trim()] === v?.trim();
  });
}

export class FakeCluster {
  /** calls records every write the reconciler made, in order. */
  readonly calls: string[] = [];
  /** events are the Events recorded, as `Type/Reason`. */
  readonly events: string[] = [];
  /** buckets are the bucket calls, as `ensure <bucket>` / `remove <bucket>`. */
  readonly buckets: string[] = [];
  /** storage is what the bucket check answers. */
  storage: StorageState = { ready: true, reason: 'BucketExists', message: 'bucket exists' };
  readonly clock = new FakeClock();
  private readonly objects = new Map<string, KubernetesObject>();
  private readonly refusals = new Map<string, { code: number; message: string }>();
  registry: Registry | undefined;

  private static key(kind: string | undefined, ns: string | undefined, name: string | undefined) {
    return `${kind ?? ''}/${ns ?? ''}/${name ?? ''}`;
  }

  /** put stores `obj` as if it existed in the cluster. */
  put<T extends KubernetesObject>(obj: T): T {
    const o = structuredClone(obj);
    this.objects.set(FakeCluster.key(o.kind, o.metadata?.namespace, o.metadata?.name), o);
    return o;
  }

  get(kind: string, namespace: string, name: string): KubernetesObject | undefined {
    return this.objects.get(FakeCluster.key(kind, namespace, name));
  }

  remove(kind: string, namespace: string, name: string): void {
    this.objects.delete(FakeCluster.key(kind, namespace, name));
  }

  /** names lists `Kind/name` of every stored object of `kinds`, sorted. */
  names(...kinds: string[]): string[] {
    return [...this.objects.values()]
      .filter((o) => kinds.includes(o.kind ?? ''))
      .map((o) => `${o.kind}/${o.metadata?.name}`)
      .sort();
  }

  /** refuse makes applying `Kind/name` fail with an ApiException like the API server's. */
  refuse(kind: string, name: string, code: number, message: string): void {
    this.refusals.set(`${kind}/${name}`, { code, message });
  }

  private read<T extends KubernetesObject>(kind: string, namespace: string, name: string): T {
    const o = this.get(kind, namespace, name);
    if (!o) throw notFound(`${kind} ${name}`);
    return structuredClone(o) as T;
  }

  private del(kind: string, namespace: string, name: string): void {
    if (!this.get(kind, namespace, name)) throw notFound(`${kind} ${name}`);
    this.remove(kind, namespace, name);
    this.calls.push(`delete ${kind}/${name}`);
  }

  private list(kind: string, namespace: string | undefined, selector: string | undefined) {
    return [...this.objects.values()]
      .filter(
        (o) =>
          o.kind === kind &&
          (namespace === undefined || o.metadata?.namespace === namespace) &&
          matches(o.metadata?.labels, selector),
      )
      .map((o) => structuredClone(o));
  }

  private readonly objectClient: ObjectClient = {
    patch: async <T extends KubernetesObject>(spec: T): Promise<T> => {
      const id = `${spec.kind}/${spec.metadata?.name}`;
      const refused = this.refusals.get(id);
      if (refused)
        throw new ApiException(
          refused.code,
          refused.message,
          JSON.stringify({ message: refused.message }),
          {},
        );
      this.calls.push(`apply ${id}`);
      const had = this.get(
        spec.kind ?? '',
        spec.metadata?.namespace ?? '',
        spec.metadata?.name ?? '',
      );
      const status = (had as { status?: unknown } | undefined)?.status;
      return this.put({ ...spec, ...(status !== undefined ? { status } : {}) });
    },
    list: async <T extends KubernetesObject>(
      _apiVersion: string,
      kind: string,
      namespace?: string,
      _pretty?: string,
      _exact?: boolean,
      _exportt?: boolean,
      _fieldSelector?: string,
      labelSelector?: string,
    ): Promise<KubernetesListObject<T>> =>
      ({ items: this.list(kind, namespace, labelSelector) }) as KubernetesListObject<T>,
    delete: async (spec: KubernetesObject) => {
      this.del(spec.kind ?? '', spec.metadata?.namespace ?? '', spec.metadata?.name ?? '');
      return {};
    },
  };

  private readonly core: CoreApi = {
    readNamespacedSecret: async ({ name, namespace }) => this.read('Secret', namespace, name),
    readNamespacedConfigMap: async ({ name, namespace }) => this.read('ConfigMap', namespace, name),
    readNamespacedService: async ({ name, namespace }) => this.read('Service', namespace, name),
    deleteNamespacedService: async ({ name, namespace }) => {
      this.del('Service', namespace, name);
      return {};
    },
    listNamespacedPod: async ({ namespace, labelSelector }) => ({
      items: this.list('Pod', namespace, labelSelector),
    }),
  };

  private readonly apps: AppsApi = {
    readNamespacedDeployment: async ({ name, namespace }) =>
      this.read('Deployment', namespace, name),
    readNamespacedDaemonSet: async ({ name, namespace }) => this.read('DaemonSet', namespace, name),
    deleteNamespacedDeployment: async ({ name, namespace }) => {
      this.del('Deployment', namespace, name);
      return {};
    },
    deleteNamespacedDaemonSet: async ({ name, namespace }) => {
      this.del('DaemonSet', namespace, name);
      return {};
    },
  };

  private readonly custom: RegistryApi = {
    getNamespacedCustomObject: async ({ name }) => {
      if (!this.registry || this.registry.metadata.name !== name)
        throw notFound(`Registry ${name}`);
      return structuredClone(this.registry) as object;
    },
    patchNamespacedCustomObject: async ({ body }) => {
      const r = this.registry;
      if (!r) throw notFound('Registry');
      const ops = body as { op: string; path: string; value: unknown }[];
      const add = ops.find((o) => o.op === 'add' && o.path === '/metadata/finalizers');
      r.metadata.finalizers = add?.value as string[];
      this.calls.push(`finalizers ${JSON.stringify(r.metadata.finalizers)}`);
      if (r.metadata.deletionTimestamp && r.metadata.finalizers.length === 0)
        this.registry = undefined;
      return {};
    },
    patchNamespacedCustomObjectStatus: async ({ body }) => {
      const r = this.registry;
      if (!r) throw notFound('Registry');
      const status = (body as { status: Record<string, unknown> }).status;
      const next: Record<string, unknown> = { ...r.status };
      for (const [k, v] of Object.entries(status)) {
        if (v === null) delete next[k];
        else next[k] = v;
      }
      r.status = next;
      this.calls.push('status');
      return {};
    },
  };

  /** deps are the reconciler's roles, all backed by this fake. */
  deps(): ReconcileDeps {
    return {
      core: this.core,
      apps: this.apps,
      custom: this.custom,
      applier: new Applier(this.objectClient),
      buckets: {
        ensure: async (t) => {
          this.buckets.push(`ensure ${t.bucket}`);
          return this.storage;
        },
        remove: async (t) => {
          this.buckets.push(`remove ${t.bucket}`);
        },
      },
      events: {
        record: async (_r, e) => {
          this.events.push(`${e.type}/${e.reason}`);
        },
      },
      clock: this.clock,
      log: {
        debug: () => undefined,
        info: () => undefined,
        warn: () => undefined,
        error: () => undefined,
      },
      serviceMonitorApi: async () => false,
      operatorImage: 'ghcr.io/berth-dev/berth:test',
    };
  }
}
