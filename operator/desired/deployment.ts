import type {
  V1Container,
  V1Deployment,
  V1DeploymentStrategy,
  V1EnvVar,
  V1TopologySpreadConstraint,
  V1Volume,
  V1VolumeMount,
} from '@kubernetes/client-node';
import type { Registry } from '../types.js';
import { SHUTDOWN_SECONDS } from './config.js';
import { referencedFiles } from './files.js';
import {
  BLOB_CACHE_DIR,
  CA_DIR,
  CONFIG_CHECKSUM,
  CONFIG_DIR,
  CONFIG_KEY,
  DEBUG_PORT,
  HTTP_PORT,
  HTTP_SECRET_KEY,
  PEER_PORT,
  childMeta,
  childNames,
  labels,
  selectorLabels,
  TLS_DIR,
  blobCacheGiB,
  peerInvalidation,
} from './meta.js';

/** RUN_AS is the unprivileged uid and gid the server runs as. */
export const RUN_AS = 65532;
/**
 * PRESTOP_SLEEP_SECONDS is how long a terminating pod keeps serving before SIGTERM (the
 * kubelet's native sleep action, no shell needed), so endpoints and kube-proxy rules drop it
 * before it stops accepting.
 */
export const PRESTOP_SLEEP_SECONDS = 5;
/** GRACE_SECONDS is the pod's termination grace: the preStop sleep, the drain, and a margin. */
export const GRACE_SECONDS = PRESTOP_SLEEP_SECONDS + SHUTDOWN_SECONDS + 5;

/** DEFAULT_CPU_REQUEST and DEFAULT_MEMORY_REQUEST are asked for unless spec.resources says
 * otherwise (an HPA on CPU utilisation needs a CPU request). */
export const DEFAULT_CPU_REQUEST = '100m';
export const DEFAULT_MEMORY_REQUEST = '256Mi';

/**
 * defaultResources are the container's requests and limits: spec.resources over defaults, key
 * by key. Ephemeral storage is requested for the blob cache (its size, or 256Mi without one)
 * and limited to the cache's emptyDir limit plus 1 GiB for /tmp, logs and the writable layer,
 * so the scheduler places pods where the cache fits and the kubelet evicts only a runaway pod.
 * A default request is left out where the spec sets only a limit for that resource
 * (Kubernetes then requests the limit, and a default request above the limit is invalid).
 */
export function defaultResources(r: Registry): {
  requests: Record<string, string>;
  limits: Record<string, string>;
} {
  const cacheGiB = blobCacheGiB(r);
  const requests: Record<string, string> = {
    cpu: DEFAULT_CPU_REQUEST,
    memory: DEFAULT_MEMORY_REQUEST,
    'ephemeral-storage': cacheGiB > 0 ? `${cacheGiB}Gi` : '256Mi',
  };
  const limits: Record<string, string> = { 'ephemeral-storage': `${cacheGiB + 2}Gi` };
  const spec = r.spec.resources;
  for (const k of Object.keys(spec?.limits ?? {}))
    if (spec?.requests?.[k] === undefined) delete requests[k];
  return {
    requests: { ...requests, ...spec?.requests },
    limits: { ...limits, ...spec?.limits },
  };
}

/**
 * defaultTopologySpread spreads a Registry's pods across nodes and zones as far as the
 * scheduler can (ScheduleAnyway: never leaves a pod pending for it), counting only the pods
 * of the same revision (matchLabelKeys pod-template-hash), so a rollout is not skewed by the
 * pods it replaces. spec.topologySpreadConstraints replaces it.
 */
export function defaultTopologySpread(r: Registry): V1TopologySpreadConstraint[] {
  return ['kubernetes.io/hostname', 'topology.kubernetes.io/zone'].map((topologyKey) => ({
    maxSkew: 1,
    topologyKey,
    whenUnsatisfiable: 'ScheduleAnyway',
    labelSelector: { matchLabels: selectorLabels(r) },
    matchLabelKeys: ['pod-template-hash'],
  }));
}

/**
 * desiredDeployment runs `berth server` for `r`. `configChecksum` (of the rendered config and
 * the shared secret) goes into the pod template, so a change rolls the pods. Credentials and
 * the HTTP secret reach the server as BERTH_* variables from Secrets, never in the ConfigMap.
 */
export function desiredDeployment(r: Registry, configChecksum: string): V1Deployment {
  const names = childNames(r);
  const { volumes, mounts } = serverVolumes(r);
  const container = serverContainer(r, serverEnv(r), mounts);
  const strategy = updateStrategy(r);
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: childMeta(r, names.workload),
    spec: {
      replicas: r.spec.replicas,
      revisionHistoryLimit: 5,
      selector: { matchLabels: selectorLabels(r) },
      strategy,
      template: {
        metadata: { labels: labels(r), annotations: { [CONFIG_CHECKSUM]: configChecksum } },
        spec: {
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          terminationGracePeriodSeconds: GRACE_SECONDS,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: RUN_AS,
            runAsGroup: RUN_AS,
            fsGroup: RUN_AS,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          containers: [container],
          volumes,
          ...(r.spec.imagePullSecrets ? { imagePullSecrets: r.spec.imagePullSecrets } : {}),
          ...(r.spec.nodeSelector ? { nodeSelector: r.spec.nodeSelector } : {}),
          ...(r.spec.affinity ? { affinity: r.spec.affinity } : {}),
          ...(r.spec.tolerations ? { tolerations: r.spec.tolerations } : {}),
          topologySpreadConstraints: r.spec.topologySpreadConstraints ?? defaultTopologySpread(r),
          ...(r.spec.priorityClassName ? { priorityClassName: r.spec.priorityClassName } : {}),
        },
      },
    },
  } as V1Deployment;
}

/**
 * serverEnv points the server at its config file and passes the HTTP secret and the S3
 * credentials from Secrets.
 */
function serverEnv(r: Registry): V1EnvVar[] {
  const names = childNames(r);
  const s3 = r.spec.storage.s3;
  return [
    { name: 'BERTH_CONFIG', value: `${CONFIG_DIR}/${CONFIG_KEY}` },
    {
      name: 'BERTH_HTTP_SECRET',
      valueFrom: { secretKeyRef: { name: names.secret, key: HTTP_SECRET_KEY } },
    },
    {
      name: 'BERTH_STORAGE_S3_ACCESS_KEY',
      valueFrom: {
        secretKeyRef: {
          name: s3.credentialsSecretRef.name,
          key: s3.credentialsSecretRef.accessKeyIdKey,
        },
      },
    },
    {
      name: 'BERTH_STORAGE_S3_SECRET_KEY',
      valueFrom: {
        secretKeyRef: {
          name: s3.credentialsSecretRef.name,
          key: s3.credentialsSecretRef.secretAccessKeyKey,
        },
      },
    },
  ];
}

/**
 * serverVolumes are the pod's volumes and the container's mounts of them: config, /tmp, the
 * blob cache, the S3 CA bundle, TLS, and one volume per referenced file.
 */
function serverVolumes(r: Registry): { volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  const names = childNames(r);
  const s3 = r.spec.storage.s3;
  const volumes: V1Volume[] = [
    {
      name: 'config',
      configMap: { name: names.config, items: [{ key: CONFIG_KEY, path: CONFIG_KEY }] },
    },
    { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } },
  ];
  const mounts: V1VolumeMount[] = [
    { name: 'config', mountPath: CONFIG_DIR, readOnly: true },
    { name: 'tmp', mountPath: '/tmp' },
  ];
  const cacheGiB = blobCacheGiB(r);
  if (cacheGiB > 0) {
    // The server keeps the folder under blobMaxGiB; the limit leaves it room for its
    // bookkeeping, so the kubelet never evicts the pod for it.
    volumes.push({ name: 'blob-cache', emptyDir: { sizeLimit: `${cacheGiB + 1}Gi` } });
    mounts.push({ name: 'blob-cache', mountPath: BLOB_CACHE_DIR });
  }
  if (s3.caBundleSecretRef) {
    volumes.push({
      name: 'ca',
      secret: {
        secretName: s3.caBundleSecretRef.name,
        items: [{ key: s3.caBundleSecretRef.key, path: 'ca.crt' }],
      },
    });
    mounts.push({ name: 'ca', mountPath: CA_DIR, readOnly: true });
  }
  if (r.spec.tls) {
    volumes.push({ name: 'tls', secret: { secretName: r.spec.tls.secretName } });
    mounts.push({ name: 'tls', mountPath: TLS_DIR, readOnly: true });
  }
  // One volume per referenced file, projected by key and mounted as a directory (never with
  // subPath, which would freeze the file): the kubelet swaps in updated Secret contents.
  for (const f of referencedFiles(r)) {
    const items = [{ key: f.key, path: f.file }];
    volumes.push(
      f.source === 'Secret'
        ? { name: f.volume, secret: { secretName: f.name, items, defaultMode: 0o440 } }
        : { name: f.volume, configMap: { name: f.name, items } },
    );
    mounts.push({ name: f.volume, mountPath: f.dir, readOnly: true });
  }
  return { volumes, mounts };
}

/** serverContainer runs `berth server`, unprivileged, with probes on the debug port. */
function serverContainer(r: Registry, env: V1EnvVar[], mounts: V1VolumeMount[]): V1Container {
  return {
    name: 'berth',
    image: r.spec.image,
    imagePullPolicy: r.spec.imagePullPolicy,
    args: ['server'],
    ports: [
      { name: 'http', containerPort: HTTP_PORT, protocol: 'TCP' },
      { name: 'debug', containerPort: DEBUG_PORT, protocol: 'TCP' },
      ...(peerInvalidation(r)
        ? [{ name: 'peers', containerPort: PEER_PORT, protocol: 'TCP' }]
        : []),
    ],
    env,
    volumeMounts: mounts,
    lifecycle: { preStop: { sleep: { seconds: PRESTOP_SLEEP_SECONDS } } },
    readinessProbe: {
      httpGet: { path: '/readyz', port: 'debug' },
      periodSeconds: 5,
      timeoutSeconds: 2,
      failureThreshold: 3,
    },
    livenessProbe: {
      httpGet: { path: '/healthz', port: 'debug' },
      initialDelaySeconds: 5,
      periodSeconds: 10,
      timeoutSeconds: 2,
      failureThreshold: 3,
    },
    securityContext: {
      runAsNonRoot: true,
      runAsUser: RUN_AS,
      runAsGroup: RUN_AS,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      privileged: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    resources: defaultResources(r),
  };
}

/** updateStrategy is spec.updateStrategy; a rolling update defaults to surge 1, none unavailable. */
function updateStrategy(r: Registry): V1DeploymentStrategy {
  return r.spec.updateStrategy.type === 'Recreate'
    ? { type: 'Recreate' }
    : {
        type: 'RollingUpdate',
        rollingUpdate: {
          maxUnavailable: r.spec.updateStrategy.maxUnavailable ?? 0,
          maxSurge: r.spec.updateStrategy.maxSurge ?? 1,
        },
      };
}
