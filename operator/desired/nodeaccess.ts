/**
 * Node access: a Service with a fixed node port or cluster IP, and a DaemonSet that runs
 * `berth node-config` on every node to point the container runtime at it. Pure: the same
 * Registry always yields the same objects.
 */
import type { V1DaemonSet, V1Service, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import type { NodeAccessSpec, Registry } from '../types.js';
import {
  LABEL_COMPONENT,
  LABEL_INSTANCE,
  LABEL_MANAGED_BY,
  LABEL_NAME,
  MANAGED_BY,
  childMeta,
  childNames,
  selectorLabels,
} from './meta.js';

/** NODE_ACCESS_NAME is the `app.kubernetes.io/name` of the node-access pods. */
export const NODE_ACCESS_NAME = 'berth-node-access';
/** NODE_CA_DIR is where the TLS Secret's ca.crt is mounted in the node-access pod. */
export const NODE_CA_DIR = '/etc/berth/node-ca';
/** NODE_ACCESS_GRACE_SECONDS is the node-access pod's termination grace period. */
export const NODE_ACCESS_GRACE_SECONDS = 10;

/** nodeAccessOf is spec.nodeAccess when it is enabled, else undefined. */
export function nodeAccessOf(r: Registry): NodeAccessSpec | undefined {
  const na = r.spec.nodeAccess;
  return na?.enabled === true ? na : undefined;
}

/** nodeAccessNames names the node-access children: `<name>-node` and `<name>-node-access`. */
export function nodeAccessNames(r: Registry): { service: string; daemonSet: string } {
  const w = childNames(r).workload;
  return { service: `${w}-node`, daemonSet: `${w}-node-access` };
}

/**
 * nodeAccessLabels label the DaemonSet and its pods. They differ from the registry pods'
 * selector labels (name `berth`), so no registry Service ever selects a node-access pod, but
 * share the instance and managed-by labels the pruner and the pod informer select on.
 */
export function nodeAccessLabels(r: Registry): Record<string, string> {
  return {
    [LABEL_NAME]: NODE_ACCESS_NAME,
    [LABEL_INSTANCE]: r.metadata.name,
    [LABEL_MANAGED_BY]: MANAGED_BY,
    [LABEL_COMPONENT]: 'node-access',
  };
}

/** nodeAccessSelector selects a Registry's node-access pods. */
export function nodeAccessSelector(r: Registry): Record<string, string> {
  return { [LABEL_NAME]: NODE_ACCESS_NAME, [LABEL_INSTANCE]: r.metadata.name };
}

/**
 * nodeAddress is the `host:port` nodes pull from: `localhost:<nodePort>` in NodePort mode,
 * `<clusterIP>:<spec.service.port>` (IPv6 in brackets) in ClusterIP mode; undefined when node
 * access is off or its address field is missing.
 */
export function nodeAddress(r: Registry): string | undefined {
  const na = nodeAccessOf(r);
  if (!na) return undefined;
  if (na.mode === 'NodePort')
    return na.nodePort === undefined ? undefined : `localhost:${na.nodePort}`;
  if (na.clusterIP === undefined) return undefined;
  const host = na.clusterIP.includes(':') ? `[${na.clusterIP}]` : na.clusterIP;
  return `${host}:${r.spec.service.port}`;
}

/** MirrorFor is spec.nodeAccess.mirrorFor split by whether a spec.mirrors upstream maps it. */
export interface MirrorFor {
  /** hosts are the upstream hosts in the `ns` of a spec.mirrors upstream, in spec order. */
  hosts: string[];
  /** unmapped name the other entries by field, e.g. `spec.nodeAccess.mirrorFor[1] "ghcr.io"`. */
  unmapped: string[];
}

/**
 * mirrorFor checks spec.nodeAccess.mirrorFor against spec.mirrors: containerd names the
 * upstream host in `?ns=`, and only a host in an upstream's `ns` list (compared without
 * case, as the server does) maps to a mirrored repository. Empty when node access is off or
 * containerd is not among its runtimes.
 */
export function mirrorFor(r: Registry): MirrorFor {
  const na = nodeAccessOf(r);
  const out: MirrorFor = { hosts: [], unmapped: [] };
  if (!na || !na.runtimes.includes('containerd')) return out;
  const mapped = new Set(
    (r.spec.mirrors?.upstreams ?? []).flatMap((u) => (u.ns ?? []).map((h) => h.toLowerCase())),
  );
  (na.mirrorFor ?? []).forEach((host, i) => {
    if (mapped.has(host.toLowerCase())) out.hosts.push(host);
    else out.unmapped.push(`spec.nodeAccess.mirrorFor[${i}] ${JSON.stringify(host)}`);
  });
  return out;
}

/**
 * desiredNodeService is the `<name>-node` Service with the fixed node port or cluster IP,
 * selecting the registry pods on port `http`; undefined when node access is off.
 */
export function desiredNodeService(r: Registry): V1Service | undefined {
  const na = nodeAccessOf(r);
  if (!na) return undefined;
  const port = { name: 'http', port: r.spec.service.port, targetPort: 'http', protocol: 'TCP' };
  const spec: V1Service['spec'] =
    na.mode === 'NodePort'
      ? {
          type: 'NodePort',
          selector: selectorLabels(r),
          ports: [{ ...port, ...(na.nodePort !== undefined ? { nodePort: na.nodePort } : {}) }],
        }
      : {
          type: 'ClusterIP',
          selector: selectorLabels(r),
          ...(na.clusterIP !== undefined ? { clusterIP: na.clusterIP } : {}),
          ports: [port],
        };
  const meta = childMeta(r, nodeAccessNames(r).service);
  meta.labels = { ...meta.labels, [LABEL_COMPONENT]: 'node-access' };
  return { apiVersion: 'v1', kind: 'Service', metadata: meta, spec };
}

/**
 * desiredNodeAccessDaemonSet runs `berth node-config` on every node (it tolerates every
 * taint) with the runtimes' host folders mounted at the same paths, so the files it writes
 * name host paths. It runs as root (the folders are root-owned) with no capabilities, no
 * privilege escalation and a read-only root. Undefined when node access is off.
 */
export function desiredNodeAccessDaemonSet(r: Registry): V1DaemonSet | undefined {
  const na = nodeAccessOf(r);
  const address = nodeAddress(r);
  if (!na || address === undefined) return undefined;
  const { args, volumes, mounts } = nodeConfigInvocation(r, na, address);
  const meta = childMeta(r, nodeAccessNames(r).daemonSet);
  meta.labels = nodeAccessLabels(r);
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: meta,
    spec: {
      selector: { matchLabels: nodeAccessSelector(r) },
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } },
      template: {
        metadata: { labels: nodeAccessLabels(r) },
        spec: {
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          terminationGracePeriodSeconds: NODE_ACCESS_GRACE_SECONDS,
          tolerations: [{ operator: 'Exists' }],
          securityContext: { seccompProfile: { type: 'RuntimeDefault' } },
          containers: [
            {
              name: 'node-config',
              image: r.spec.image,
              imagePullPolicy: r.spec.imagePullPolicy,
              args,
              volumeMounts: mounts,
              resources: {
                requests: { cpu: '5m', memory: '32Mi' },
                limits: { memory: '96Mi' },
              },
              securityContext: {
                runAsUser: 0,
                runAsGroup: 0,
                runAsNonRoot: false,
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                privileged: false,
                capabilities: { drop: ['ALL'] },
                seccompProfile: { type: 'RuntimeDefault' },
              },
            },
          ],
          volumes,
          ...(r.spec.imagePullSecrets ? { imagePullSecrets: r.spec.imagePullSecrets } : {}),
        },
      },
    },
  };
}

/**
 * nodeConfigInvocation is the `berth node-config` command line for `r`, with the volumes and
 * mounts its arguments name: each enabled runtime's host folder (mounted at the same path)
 * and, with TLS, the Secret's ca.crt. The upstream hosts of spec.nodeAccess.mirrorFor that
 * a spec.mirrors upstream maps are passed as `--mirror-for` (the others only in the status).
 */
function nodeConfigInvocation(
  r: Registry,
  na: NodeAccessSpec,
  address: string,
): { args: string[]; volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  const args = [
    'node-config',
    '--address',
    address,
    '--scheme',
    r.spec.tls ? 'https' : 'http',
    '--name',
    `${r.metadata.namespace}/${r.metadata.name}`,
  ];
  const volumes: V1Volume[] = [];
  const mounts: V1VolumeMount[] = [];
  const hostDir = (name: string, path: string, flag: string) => {
    volumes.push({ name, hostPath: { path, type: 'DirectoryOrCreate' } });
    mounts.push({ name, mountPath: path });
    args.push(flag, path);
  };
  if (na.runtimes.includes('containerd'))
    hostDir('containerd-config', na.containerd.configPath, '--containerd-dir');
  const mirrors = mirrorFor(r).hosts;
  if (mirrors.length > 0) args.push('--mirror-for', mirrors.join(','));
  if (na.runtimes.includes('cri-o')) hostDir('crio-config', na.crio.configPath, '--crio-dir');
  if (r.spec.tls) {
    // Optional: a Secret from a public CA may have no ca.crt; the runtime then trusts the system.
    volumes.push({
      name: 'ca',
      secret: {
        secretName: r.spec.tls.secretName,
        items: [{ key: 'ca.crt', path: 'ca.crt' }],
        optional: true,
      },
    });
    mounts.push({ name: 'ca', mountPath: NODE_CA_DIR, readOnly: true });
    args.push('--ca-file', `${NODE_CA_DIR}/ca.crt`);
  }
  return { args, volumes, mounts };
}
