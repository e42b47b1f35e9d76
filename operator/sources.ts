/**
 * The kinds the controller watches, each as a {@link Source}: where it lives in the API, how
 * it is listed in one scope (the cluster or one namespace), and which handler its events go to.
 */
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  NetworkingV1Api,
  PolicyV1Api,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { LABEL_MANAGED_BY, MANAGED_BY } from './desired/meta.js';
import type { ObjectRef } from './desired/files.js';
import { metadataList, type WatchEvent } from './informer.js';
import { GROUP, PLURAL, VERSION } from './types.js';

export type List = Promise<KubernetesListObject<KubernetesObject>>;
export type OnEvent = (t: WatchEvent, o: KubernetesObject) => void;

/** Source is one watched kind: its API prefix and plural, and its list in a scope. */
export interface Source {
  name: string;
  prefix: string;
  list: (namespace: string | undefined) => List;
  labelSelector?: string;
  metadataOnly?: boolean;
  onEvent: OnEvent;
}

/** WatchApis are the API clients the sources list with. */
export interface WatchApis {
  custom: CustomObjectsApi;
  apps: AppsV1Api;
  core: CoreV1Api;
  policy: PolicyV1Api;
  networking: NetworkingV1Api;
}

/** watchApis makes the API clients of every source from `kc`. */
export function watchApis(kc: KubeConfig): WatchApis {
  return {
    custom: kc.makeApiClient(CustomObjectsApi),
    apps: kc.makeApiClient(AppsV1Api),
    core: kc.makeApiClient(CoreV1Api),
    policy: kc.makeApiClient(PolicyV1Api),
    networking: kc.makeApiClient(NetworkingV1Api),
  };
}

/**
 * SourceHandlers say what an event enqueues: `registry` for a Registry itself, `owned` for a
 * child it controls, `referenced` for a Secret or ConfigMap (owned, or referenced by a
 * Registry), `pod` for a server pod (named by its instance label).
 */
export interface SourceHandlers {
  registry: OnEvent;
  owned: OnEvent;
  referenced: (source: ObjectRef['source']) => OnEvent;
  pod: OnEvent;
}

const MANAGED = `${LABEL_MANAGED_BY}=${MANAGED_BY}`;
const sel = { labelSelector: MANAGED };

/** child is one kind of child, labelled as managed: an event enqueues the Registry owning it. */
function child(name: string, prefix: string, list: Source['list'], onEvent: OnEvent): Source {
  return { name, prefix, list, labelSelector: MANAGED, onEvent };
}

/**
 * watchedSources are the kinds watched from the start: Registries, every kind the operator
 * applies (so a deleted or edited child is repaired at once, not at the resync), Secrets and
 * ConfigMaps, and server pods.
 */
export function watchedSources(a: WatchApis, h: SourceHandlers): Source[] {
  return [
    registrySource(a.custom, h.registry),
    ...childSources(a, h.owned),
    ...referencedSources(a.core, h.referenced),
    podSource(a.core, h.pod),
  ];
}

/** childSources watch the kinds of child the operator applies, labelled as managed. */
function childSources(a: WatchApis, owned: OnEvent): Source[] {
  return [
    child(
      'deployments',
      '/apis/apps/v1',
      (namespace) =>
        namespace === undefined
          ? a.apps.listDeploymentForAllNamespaces(sel)
          : a.apps.listNamespacedDeployment({ namespace, ...sel }),
      owned,
    ),
    child(
      'services',
      '/api/v1',
      (namespace) =>
        namespace === undefined
          ? a.core.listServiceForAllNamespaces(sel)
          : a.core.listNamespacedService({ namespace, ...sel }),
      owned,
    ),
    child(
      'daemonsets',
      '/apis/apps/v1',
      (namespace) =>
        namespace === undefined
          ? a.apps.listDaemonSetForAllNamespaces(sel)
          : a.apps.listNamespacedDaemonSet({ namespace, ...sel }),
      owned,
    ),
    child(
      'poddisruptionbudgets',
      '/apis/policy/v1',
      (namespace) =>
        namespace === undefined
          ? a.policy.listPodDisruptionBudgetForAllNamespaces(sel)
          : a.policy.listNamespacedPodDisruptionBudget({ namespace, ...sel }),
      owned,
    ),
    child(
      'ingresses',
      '/apis/networking.k8s.io/v1',
      (namespace) =>
        namespace === undefined
          ? a.networking.listIngressForAllNamespaces(sel)
          : a.networking.listNamespacedIngress({ namespace, ...sel }),
      owned,
    ),
    child(
      'networkpolicies',
      '/apis/networking.k8s.io/v1',
      (namespace) =>
        namespace === undefined
          ? a.networking.listNetworkPolicyForAllNamespaces(sel)
          : a.networking.listNamespacedNetworkPolicy({ namespace, ...sel }),
      owned,
    ),
  ];
}

/** registrySource watches the Registries themselves. */
function registrySource(custom: CustomObjectsApi, onEvent: OnEvent): Source {
  return {
    name: PLURAL,
    prefix: `/apis/${GROUP}/${VERSION}`,
    list: (namespace) =>
      (namespace === undefined
        ? custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })
        : custom.listNamespacedCustomObject({
            group: GROUP,
            version: VERSION,
            plural: PLURAL,
            namespace,
          })) as List,
    onEvent,
  };
}

/**
 * referencedSources watch ConfigMaps and Secrets: the children the operator owns, and the ones
 * a Registry references (S3 credentials, TLS, htpasswd, keys), which are the user's and carry
 * no label of ours. A rotated credential reaches the pod-template checksum at once, not at the
 * next resync. Every one in scope is watched, so only metadata is cached (a change is all that
 * is needed; the reconcile reads the few it uses): no values in memory, and the cache stays
 * small beside large Secrets such as Helm's release records.
 */
function referencedSources(core: CoreV1Api, referenced: SourceHandlers['referenced']): Source[] {
  return [
    {
      name: 'configmaps',
      prefix: '/api/v1',
      list: (namespace) =>
        namespace === undefined
          ? core.listConfigMapForAllNamespaces({}, metadataList())
          : core.listNamespacedConfigMap({ namespace }, metadataList()),
      metadataOnly: true,
      onEvent: referenced('ConfigMap'),
    },
    {
      name: 'secrets',
      prefix: '/api/v1',
      list: (namespace) =>
        namespace === undefined
          ? core.listSecretForAllNamespaces({}, metadataList())
          : core.listNamespacedSecret({ namespace }, metadataList()),
      metadataOnly: true,
      onEvent: referenced('Secret'),
    },
  ];
}

/**
 * podSource watches the server pods. They belong to ReplicaSets, not to the Registry: their
 * instance label names it. A container stuck pulling its image or crash-looping shows in the
 * status within seconds.
 */
function podSource(core: CoreV1Api, onEvent: OnEvent): Source {
  return {
    name: 'pods',
    prefix: '/api/v1',
    list: (namespace) =>
      namespace === undefined
        ? core.listPodForAllNamespaces(sel)
        : core.listNamespacedPod({ namespace, ...sel }),
    labelSelector: MANAGED,
    onEvent,
  };
}

/**
 * serviceMonitorSource watches ServiceMonitors, which only exist where monitoring.coreos.com/v1
 * is served: the controller adds it once discovery says so.
 */
export function serviceMonitorSource(custom: CustomObjectsApi, onEvent: OnEvent): Source {
  return child(
    'servicemonitors',
    '/apis/monitoring.coreos.com/v1',
    (namespace) => {
      const q = { group: 'monitoring.coreos.com', version: 'v1', plural: 'servicemonitors' };
      return (
        namespace === undefined
          ? custom.listClusterCustomObject({ ...q, ...sel })
          : custom.listNamespacedCustomObject({ ...q, namespace, ...sel })
      ) as List;
    },
    onEvent,
  );
}
