/** Service, PodDisruptionBudget, Ingress, NetworkPolicy and ServiceMonitor for a Registry. */
import type {
  KubernetesObject,
  V1Ingress,
  V1NetworkPolicy,
  V1NetworkPolicyIngressRule,
  V1NetworkPolicyPeer,
  V1PodDisruptionBudget,
  V1Service,
} from '@kubernetes/client-node';
import type { NetworkPeersSpec, Registry } from '../types.js';
import {
  DEBUG_PORT,
  HTTP_PORT,
  LABEL_COMPONENT,
  PEER_PORT,
  childMeta,
  childNames,
  peerInvalidation,
  selectorLabels,
} from './meta.js';

/**
 * desiredService exposes the registry port as `http` on spec.service.port: what clients use,
 * and nothing else (the debug port is on desiredMetricsService).
 */
export function desiredService(r: Registry): V1Service {
  const meta = childMeta(r, childNames(r).workload);
  if (r.spec.service.annotations) meta.annotations = r.spec.service.annotations;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta,
    spec: {
      type: r.spec.service.type,
      selector: selectorLabels(r),
      ports: [{ name: 'http', port: r.spec.service.port, targetPort: 'http', protocol: 'TCP' }],
    },
  };
}

/** METRICS_COMPONENT is the component label of the `<name>-metrics` Service. */
export const METRICS_COMPONENT = 'metrics';
/**
 * JOB_LABEL on the metrics Service names the Prometheus job (the ServiceMonitor's jobLabel),
 * so the job stays `<name>` as it was when the registry Service carried the metrics port.
 */
export const JOB_LABEL = 'berth.dev/job';

/**
 * desiredMetricsService is `<name>-metrics`, a ClusterIP Service for the debug port (`/metrics`,
 * `/healthz`, `/readyz`) that the ServiceMonitor scrapes, apart from the client-facing Service
 * so that exposing the registry (NodePort, LoadBalancer, Ingress) never exposes the debug port.
 * Undefined when metrics are off.
 */
export function desiredMetricsService(r: Registry): V1Service | undefined {
  if (!r.spec.metrics.enabled) return undefined;
  const meta = childMeta(r, childNames(r).metrics);
  meta.labels = {
    ...meta.labels,
    [LABEL_COMPONENT]: METRICS_COMPONENT,
    [JOB_LABEL]: r.metadata.name,
  };
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta,
    spec: {
      type: 'ClusterIP',
      selector: selectorLabels(r),
      ports: [{ name: 'metrics', port: DEBUG_PORT, targetPort: 'debug', protocol: 'TCP' }],
    },
  };
}

/**
 * desiredPodDisruptionBudget limits voluntary evictions; undefined when disabled. Without a
 * bound in the spec it allows one pod down at a time. It never blocks a node drain at one
 * replica (a single pod cannot stay available through one anyway): there it allows one pod
 * down whatever the bound. Pods that are not ready may always be evicted
 * (unhealthyPodEvictionPolicy AlwaysAllow), so a crash-looping pod never holds a drain.
 */
export function desiredPodDisruptionBudget(r: Registry): V1PodDisruptionBudget | undefined {
  const pdb = r.spec.podDisruptionBudget;
  if (!pdb.enabled) return undefined;
  const bound =
    r.spec.replicas <= 1
      ? { maxUnavailable: 1 }
      : pdb.minAvailable !== undefined
        ? { minAvailable: pdb.minAvailable }
        : { maxUnavailable: pdb.maxUnavailable ?? 1 };
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: childMeta(r, childNames(r).workload),
    spec: {
      selector: { matchLabels: selectorLabels(r) },
      ...bound,
      unhealthyPodEvictionPolicy: 'AlwaysAllow',
    },
  };
}

/** desiredIngress routes spec.ingress.host to the Service; undefined when disabled. */
export function desiredIngress(r: Registry): V1Ingress | undefined {
  const ing = r.spec.ingress;
  if (!ing?.enabled || ing.host === undefined) return undefined;
  const meta = childMeta(r, childNames(r).workload);
  // Large layer uploads: lift the common body-size limits of ingress controllers.
  meta.annotations = { 'nginx.ingress.kubernetes.io/proxy-body-size': '0', ...ing.annotations };
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: meta,
    spec: {
      ...(ing.className ? { ingressClassName: ing.className } : {}),
      ...(ing.tlsSecretName ? { tls: [{ hosts: [ing.host], secretName: ing.tlsSecretName }] } : {}),
      rules: [
        {
          host: ing.host,
          http: {
            paths: [
              {
                path: ing.path,
                pathType: 'Prefix',
                backend: { service: { name: childNames(r).workload, port: { name: 'http' } } },
              },
            ],
          },
        },
      ],
    },
  };
}

/**
 * desiredServiceMonitor scrapes /metrics of the Service for the Prometheus operator; undefined
 * unless metrics and the ServiceMonitor are both enabled. The caller applies it only when the
 * monitoring.coreos.com/v1 API exists.
 */
export function desiredServiceMonitor(r: Registry): KubernetesObject | undefined {
  const m = r.spec.metrics;
  if (!m.enabled || !m.serviceMonitor.enabled) return undefined;
  const meta = childMeta(r, childNames(r).workload);
  meta.labels = { ...meta.labels, ...m.serviceMonitor.labels };
  return {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'ServiceMonitor',
    metadata: meta,
    spec: {
      jobLabel: JOB_LABEL,
      selector: { matchLabels: { ...selectorLabels(r), [LABEL_COMPONENT]: METRICS_COMPONENT } },
      endpoints: [{ port: 'metrics', path: '/metrics', interval: m.serviceMonitor.interval }],
    },
  } as KubernetesObject;
}

/** NAMESPACE_NAME_LABEL is the label the API server puts on every namespace, with its name. */
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

/**
 * networkPeers are the NetworkPolicy peers for `spec`, plus the namespaces `always` (each name
 * once, sorted): one peer for the named namespaces, one for the selector, one per CIDR.
 */
function networkPeers(
  spec: NetworkPeersSpec | undefined,
  always: string[] = [],
): V1NetworkPolicyPeer[] {
  const names = [...new Set([...always, ...(spec?.namespaces ?? [])])].sort();
  const peers: V1NetworkPolicyPeer[] = [];
  if (names.length > 0)
    peers.push({
      namespaceSelector: {
        matchExpressions: [{ key: NAMESPACE_NAME_LABEL, operator: 'In', values: names }],
      },
    });
  if (spec?.namespaceSelector) peers.push({ namespaceSelector: spec.namespaceSelector });
  for (const cidr of spec?.ipBlocks ?? []) peers.push({ ipBlock: { cidr } });
  return peers;
}

/**
 * desiredNetworkPolicy is `<name>`, an Ingress-only NetworkPolicy for the Registry's server
 * pods; undefined unless spec.networkPolicy.enabled. The registry port admits the Registry's
 * own namespace and `registry`'s peers; the debug port admits `metrics`' peers only. A port
 * without peers gets no rule at all (a rule without `from` would admit everyone), so nothing
 * reaches it but what the network plugin always lets through (the node's own kubelet probes).
 * With tagCache.peerInvalidation, the peer port admits the Registry's own pods only.
 * Egress is not restricted.
 */
export function desiredNetworkPolicy(r: Registry): V1NetworkPolicy | undefined {
  const np = r.spec.networkPolicy;
  if (!np?.enabled) return undefined;
  const rules = [
    { port: HTTP_PORT, from: networkPeers(np.registry, [r.metadata.namespace]) },
    { port: DEBUG_PORT, from: networkPeers(np.metrics) },
    ...(peerInvalidation(r)
      ? [{ port: PEER_PORT, from: [{ podSelector: { matchLabels: selectorLabels(r) } }] }]
      : []),
  ].filter((rule) => rule.from.length > 0);
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: childMeta(r, childNames(r).workload),
    spec: {
      podSelector: { matchLabels: selectorLabels(r) },
      policyTypes: ['Ingress'],
      // `_from`: client-node's name for `from`; its serializer drops a key named `from`, and a
      // rule without peers would admit everyone.
      ingress: rules.map((rule): V1NetworkPolicyIngressRule => ({
        ports: [{ protocol: 'TCP', port: rule.port }],
        _from: rule.from,
      })),
    },
  };
}
