/**
 * Applier only applies and prunes: every write is a server-side apply under the one field
 * manager `berth-operator` (forced, so the operator wins conflicts over the fields it owns),
 * and pruning deletes owned children of the optional kinds that the spec no longer asks for.
 */
import {
  ApiException,
  KubernetesObjectApi,
  PatchStrategy,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY } from '../desired/meta.js';
import { FIELD_MANAGER, type Registry } from '../types.js';

export interface PrunableKind {
  apiVersion: string;
  kind: string;
}

/**
 * ObjectClient is the part of client-node's generic object API the Applier uses: server-side
 * apply, list by label, delete. Tests give it a small in-memory fake.
 */
export type ObjectClient = Pick<KubernetesObjectApi, 'patch' | 'list' | 'delete'>;

/** ChildApplier applies one child and prunes what is no longer wanted (see Applier). */
export interface ChildApplier {
  apply<T extends KubernetesObject>(obj: T): Promise<T>;
  prune(
    r: Registry,
    keep: readonly KubernetesObject[],
    kinds: readonly PrunableKind[],
  ): Promise<string[]>;
}

export class Applier implements ChildApplier {
  private readonly objects: ObjectClient;

  /** Applier talks to the cluster of `kc`, or through `objects` (a fake in tests). */
  constructor(kcOrObjects: KubeConfig | ObjectClient) {
    this.objects =
      'makeApiClient' in kcOrObjects ? KubernetesObjectApi.makeApiClient(kcOrObjects) : kcOrObjects;
  }

  /** apply server-side-applies `obj` and returns the object as the API server now has it. */
  async apply<T extends KubernetesObject>(obj: T): Promise<T> {
    return this.objects.patch(
      obj,
      undefined,
      undefined,
      FIELD_MANAGER,
      true,
      PatchStrategy.ServerSideApply,
    );
  }

  /**
   * prune deletes objects of `kinds` in the Registry's namespace that carry its labels and its
   * controller ownerReference but are not in `keep`. A kind whose API is not served is skipped.
   * Returns the deleted objects as `Kind/name`.
   */
  async prune(
    r: Registry,
    keep: readonly KubernetesObject[],
    kinds: readonly PrunableKind[],
  ): Promise<string[]> {
    const kept = new Set(keep.map((o) => `${o.kind}/${o.metadata?.name}`));
    const selector = `${LABEL_INSTANCE}=${r.metadata.name},${LABEL_MANAGED_BY}=${MANAGED_BY}`;
    const deleted: string[] = [];
    for (const k of kinds) {
      let items: KubernetesObject[];
      try {
        const list = await this.objects.list(
          k.apiVersion,
          k.kind,
          r.metadata.namespace,
          undefined,
          undefined,
          undefined,
          undefined,
          selector,
        );
        items = list.items;
      } catch (err) {
        if (notServed(err)) continue;
        throw err;
      }
      for (const o of items) {
        const owned = o.metadata?.ownerReferences?.some(
          (ref) => ref.controller === true && ref.uid === r.metadata.uid,
        );
        const id = `${k.kind}/${o.metadata?.name}`;
        if (!owned || kept.has(id)) continue;
        try {
          await this.objects.delete({
            apiVersion: k.apiVersion,
            kind: k.kind,
            metadata: { name: o.metadata?.name, namespace: r.metadata.namespace },
          });
          deleted.push(id);
        } catch (err) {
          if (!(err instanceof ApiException && err.code === 404)) throw err;
        }
      }
    }
    return deleted;
  }
}

/** notServed says whether an error means the resource's API does not exist on this cluster. */
export function notServed(err: unknown): boolean {
  if (err instanceof ApiException) return err.code === 404;
  return /not found|unable to find|does not exist/i.test(String(err));
}
