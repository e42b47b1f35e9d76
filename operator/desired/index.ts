/**
 * desiredState: everything a Registry asks for, computed purely. The reconciler applies the
 * `children` and prunes owned objects of the optional kinds that are not among them.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Registry } from '../types.js';
import { checksum, configYaml, desiredConfigMap } from './config.js';
import { desiredDeployment } from './deployment.js';
import {
  desiredIngress,
  desiredMetricsService,
  desiredNetworkPolicy,
  desiredPodDisruptionBudget,
  desiredService,
  desiredServiceMonitor,
} from './network.js';
import { desiredNodeAccessDaemonSet, desiredNodeService } from './nodeaccess.js';
import { rollingReferences, type KeyRef } from './files.js';
import { desiredSecret } from './secret.js';

export interface DesiredInputs {
  /** httpSecret is the value already stored in the Registry's Secret, if any. */
  httpSecret: string | undefined;
  /** serviceMonitorApi says whether monitoring.coreos.com/v1 ServiceMonitor is served. */
  serviceMonitorApi: boolean;
  /** generate makes a new HTTP secret (injectable for tests). */
  generate?: () => string;
  /** signingKey is the generated token signing key already stored, if any. */
  signingKey?: string;
  /** missing lists referenced Secrets and ConfigMaps (or keys) that do not exist. */
  missing?: readonly string[];
  /**
   * referenced is what the referenced keys the server reads only at start hold now (see
   * rollingReferences), by `Source/name/key`; a missing key is absent. Their digest is in the
   * pod-template checksum, so rotating them rolls the pods.
   */
  referenced?: ReadonlyMap<string, string>;
}

/** refKey is the key of a referenced key in DesiredInputs.referenced. */
export const refKey = (ref: KeyRef): string => `${ref.source}/${ref.name}/${ref.key}`;

/**
 * referencesDigest is a digest of the values of `r`'s rolling references (see
 * rollingReferences), in their fixed order; a missing one counts as missing, not as empty.
 */
export function referencesDigest(r: Registry, values: ReadonlyMap<string, string>): string {
  return checksum(
    ...rollingReferences(r).map((ref) => {
      const v = values.get(refKey(ref));
      return `${refKey(ref)}${v === undefined ? '\u0001missing' : `=${v}`}`;
    }),
  );
}

export type DesiredState =
  | {
      ok: true;
      children: KubernetesObject[];
      /**
       * nodeAccess are the node-access Service and DaemonSet (empty when disabled), applied
       * after `children` and on their own: a refused node port must not stop the registry.
       */
      nodeAccess: KubernetesObject[];
      skipped: string[];
    }
  | { ok: false; reason?: 'InvalidConfig' | 'SecretMissing'; problems: readonly string[] };

/**
 * PRUNABLE lists the kinds a spec change can remove: the optional kinds, and Service and
 * DaemonSet for node access. The always-present children (ConfigMap, Secret, Deployment, the
 * `<name>` Service) are always among the kept ones, so they are only owner-GC'd.
 */
export const PRUNABLE = [
  { apiVersion: 'v1', kind: 'Service', plural: 'services' },
  { apiVersion: 'apps/v1', kind: 'DaemonSet', plural: 'daemonsets' },
  { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', plural: 'poddisruptionbudgets' },
  { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', plural: 'ingresses' },
  { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', plural: 'networkpolicies' },
  { apiVersion: 'monitoring.coreos.com/v1', kind: 'ServiceMonitor', plural: 'servicemonitors' },
] as const;

/**
 * desiredState renders every child of `r`, in apply order (config before the workload that
 * mounts it). It fails when the rendered server config does not validate or a referenced
 * Secret or ConfigMap is missing (nothing is applied then); `skipped`
 * names optional children asked for but not applicable (ServiceMonitor without its API).
 */
export function desiredState(r: Registry, inputs: DesiredInputs): DesiredState {
  const config = configYaml(r);
  if (!config.ok) return { ok: false, problems: config.problems };
  if (inputs.missing && inputs.missing.length > 0)
    return { ok: false, reason: 'SecretMissing', problems: inputs.missing };
  const secret = desiredSecret(r, inputs.httpSecret, inputs.generate, inputs.signingKey);
  // The stored values are in the checksum, so a regenerated secret or key rolls the pods.
  const stored = Object.values(secret.data ?? {}).join('\0');
  const refs = referencesDigest(r, inputs.referenced ?? new Map());
  const deployment = desiredDeployment(r, checksum(config.yaml, stored, refs));
  const children: KubernetesObject[] = [desiredConfigMap(r, config.yaml), secret, deployment];
  children.push(desiredService(r));
  const metricsService = desiredMetricsService(r);
  if (metricsService) children.push(metricsService);
  const pdb = desiredPodDisruptionBudget(r);
  if (pdb) children.push(pdb);
  const ingress = desiredIngress(r);
  if (ingress) children.push(ingress);
  const networkPolicy = desiredNetworkPolicy(r);
  if (networkPolicy) children.push(networkPolicy);
  const skipped: string[] = [];
  const sm = desiredServiceMonitor(r);
  if (sm && inputs.serviceMonitorApi) children.push(sm);
  else if (sm) skipped.push('ServiceMonitor');
  const nodeAccess: KubernetesObject[] = [];
  const nodeService = desiredNodeService(r);
  if (nodeService) nodeAccess.push(nodeService);
  const daemonSet = desiredNodeAccessDaemonSet(r);
  if (daemonSet) nodeAccess.push(daemonSet);
  return { ok: true, children, nodeAccess, skipped };
}
