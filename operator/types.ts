/**
 * The `Registry` custom resource (berth.dev/v1alpha1) as the operator reads it. Fields the
 * CRD defaults are typed as present; the API server fills them in on every read.
 */
import type { SyncJobConfig } from '../server/config/sync.js';
import type { KubernetesObject, V1Condition } from '@kubernetes/client-node';

export const GROUP = 'berth.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'Registry';
export const PLURAL = 'registries';
/** FIELD_MANAGER is the one server-side-apply field manager the operator writes with. */
export const FIELD_MANAGER = 'berth-operator';
/** FINALIZER guards a Managed bucket until the deletion policy has been carried out. */
export const FINALIZER = 'berth.dev/bucket';

export type IntOrString = number | string;

export interface SecretKeyRef {
  name: string;
  key: string;
}

export interface S3StorageSpec {
  endpoint: string;
  bucket: string;
  region: string;
  prefix?: string;
  pathStyle: boolean;
  insecureSkipVerify: boolean;
  caBundleSecretRef?: SecretKeyRef;
  credentialsSecretRef: { name: string; accessKeyIdKey: string; secretAccessKeyKey: string };
  partSizeMiB: number;
  redirect: boolean;
  bucketManagement: 'Managed' | 'Unmanaged';
  deletionPolicy: 'Retain' | 'Delete';
}

export interface NotificationEndpoint {
  name: string;
  url: string;
  timeoutSeconds: number;
  headers?: Record<string, string>;
}

/** LimitsSpec mirrors the server's `limits` request limits (all optional). */
export interface LimitsSpec {
  headerBytes?: number;
  uploadSessionsPerClient?: number;
  rate?: { requestsPerSecond?: number; burst?: number };
}

/** ConfigMapKeyRef names one key of a ConfigMap in the Registry's namespace. */
export type ConfigMapKeyRef = SecretKeyRef;

export type AuthAction = 'pull' | 'push' | 'delete';

/** AuthSpec is `spec.auth`: the server's `auth` section with files given as references. */
export interface AuthSpec {
  mode: 'none' | 'htpasswd' | 'token';
  htpasswdSecretRef?: SecretKeyRef;
  basicRealm?: string;
  token?: {
    realm?: string;
    service?: string;
    issuer?: string;
    expiresSeconds?: number;
    signingKeySecretRef?: SecretKeyRef;
    external?: { jwksConfigMapRef?: ConfigMapKeyRef; rootCertBundleConfigMapRef?: ConfigMapKeyRef };
    algorithms?: ('ES256' | 'ES384' | 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'EdDSA')[];
  };
  anonymousPull?: string[];
  groups?: { name: string; members: string[] }[];
  rules?: {
    repositories: string[];
    users?: string[];
    groups?: string[];
    robots?: string[];
    actions: AuthAction[];
  }[];
  immutableTags?: { repositories: string[]; tags: string[] }[];
  /** eventsAccess: who reads the events API (the server's `auth.eventsAccess`). */
  eventsAccess?: 'pullable' | 'admins';
  /** admins: users and groups with the admin role (the server's `auth.admins`). */
  admins?: { users?: string[]; groups?: string[] };
}

/**
 * MirrorUpstreamSpec is one `spec.mirrors.upstreams[]` entry: the server's
 * `mirrors.upstreams[]` (ADR 0024) with the password and CA files given as references.
 */
export interface MirrorUpstreamSpec {
  name: string;
  url: string;
  prefix?: string;
  ns?: string[];
  repositories?: string[];
  username?: string;
  /** passwordSecretRef: the key holding the password or token; mounted, its path rendered. */
  passwordSecretRef?: SecretKeyRef;
  /** caBundleSecretRef and caBundleConfigMapRef (at most one): a PEM CA bundle. */
  caBundleSecretRef?: SecretKeyRef;
  caBundleConfigMapRef?: ConfigMapKeyRef;
  insecure?: boolean;
  tagTtlSeconds?: number;
  maxRetries?: number;
  idleTimeoutSeconds?: number;
}

/**
 * MirrorsSpec is `spec.mirrors`: upstream registries pulled through, and sync jobs copying
 * from them ahead of pulls (the server's `mirrors`). A sync job holds no secret, so it is the
 * server's own type, rendered as written (ADR 0027).
 */
export interface MirrorsSpec {
  upstreams?: MirrorUpstreamSpec[];
  sync?: SyncJobConfig[];
}

/** GarbageCollectionSpec is `spec.garbageCollection`, copied to the server's `gc` section. */
export interface GarbageCollectionSpec {
  enabled: boolean;
  intervalSeconds: number;
  graceSeconds: number;
  dryRun: boolean;
  leaseSeconds?: number;
  policies?: {
    repositories: string[];
    keepTags?: { patterns?: string[]; mostRecentlyPushed?: number }[];
    deleteUntaggedAfterSeconds?: number;
    deleteReferrers?: boolean;
  }[];
}

/** NodeRuntime names a container runtime whose registry config `berth node-config` writes. */
export type NodeRuntime = 'containerd' | 'cri-o';

/**
 * NodeAccessSpec is `spec.nodeAccess`: a fixed address on every node (a NodePort reached at
 * `localhost:<nodePort>`, or a fixed ClusterIP) and a DaemonSet that writes the container
 * runtimes' registry config for it, so nodes pull from the Registry without cluster DNS.
 */
export interface NodeAccessSpec {
  enabled: boolean;
  mode: 'NodePort' | 'ClusterIP';
  /** nodePort is required in NodePort mode (30000-32767). */
  nodePort?: number;
  /** clusterIP is required in ClusterIP mode (an IPv4 or IPv6 literal in the service CIDR). */
  clusterIP?: string;
  runtimes: NodeRuntime[];
  containerd: { configPath: string };
  /**
   * mirrorFor lists upstream hosts (e.g. docker.io) for which containerd is pointed at the
   * Registry as a mirror; each must be in the `ns` of a spec.mirrors upstream.
   */
  mirrorFor?: string[];
  crio: { configPath: string };
}

/** LabelSelectorSpec is a Kubernetes label selector (matchLabels and matchExpressions). */
export interface LabelSelectorSpec {
  matchLabels?: Record<string, string>;
  matchExpressions?: {
    key: string;
    operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
    values?: string[];
  }[];
}

/** NetworkPeersSpec says who may reach one port: namespaces by name or label, and addresses. */
export interface NetworkPeersSpec {
  namespaces?: string[];
  namespaceSelector?: LabelSelectorSpec;
  /** ipBlocks are CIDRs (the API server validates them as NetworkPolicy ipBlock.cidr). */
  ipBlocks?: string[];
}

/**
 * NetworkPolicySpec is `spec.networkPolicy`: an opt-in Ingress NetworkPolicy for the Registry's
 * pods. `registry` adds to the Registry's own namespace on the registry port; `metrics` is all
 * that may reach the debug port (the CRD defaults it to the namespace `monitoring`).
 */
export interface NetworkPolicySpec {
  enabled: boolean;
  registry?: NetworkPeersSpec;
  metrics?: NetworkPeersSpec;
}

export interface RegistrySpec {
  /**
   * image pins the Berth image; absent or empty, the Registry runs the operator's own image
   * (operatorImage) and follows it across operator upgrades. The reconciler resolves it
   * (withImage) before rendering, so desired/* and status see it set.
   */
  image?: string;
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  imagePullSecrets?: { name: string }[];
  replicas: number;
  updateStrategy: {
    type: 'RollingUpdate' | 'Recreate';
    maxUnavailable?: IntOrString;
    maxSurge?: IntOrString;
  };
  resources?: {
    limits?: Record<string, string>;
    requests?: Record<string, string>;
  };
  nodeSelector?: Record<string, string>;
  affinity?: Record<string, unknown>;
  tolerations?: Record<string, unknown>[];
  topologySpreadConstraints?: Record<string, unknown>[];
  priorityClassName?: string;
  storage: { s3: S3StorageSpec };
  deleteEnabled: boolean;
  readOnly: boolean;
  /**
   * blobCache sizes each pod's emptyDir of blob copies (ADR 0011): `sizeGiB` 0 turns it
   * off. The API server defaults it to 10.
   */
  blobCache?: { sizeGiB?: number };
  /**
   * tagCache.peerInvalidation keeps tags in memory on every replica, coherent through a
   * direct channel between the pods (ADR 0025): the server's `cache.peerListen` on PEER_PORT.
   * Unset, it is on for a Registry that runs the operator's own image (withImage) and off for
   * a pinned one, whose older server may not know the setting.
   */
  tagCache?: { peerInvalidation?: boolean };
  service: {
    type: 'ClusterIP' | 'NodePort' | 'LoadBalancer';
    port: number;
    annotations?: Record<string, string>;
  };
  ingress?: {
    enabled: boolean;
    className?: string;
    host?: string;
    path: string;
    tlsSecretName?: string;
    annotations?: Record<string, string>;
  };
  podDisruptionBudget: {
    enabled: boolean;
    minAvailable?: IntOrString;
    maxUnavailable?: IntOrString;
  };
  /**
   * tls names a kubernetes.io/tls Secret the server terminates HTTPS with, and optionally a
   * CA bundle that client certificates must chain to (mutual TLS).
   */
  /** networkPolicy: the CRD defaults it to `{enabled: false, ...}`; absent on objects built by hand. */
  networkPolicy?: NetworkPolicySpec;
  tls?: { secretName: string; clientCASecretRef?: SecretKeyRef };
  limits?: LimitsSpec;
  auth?: AuthSpec;
  garbageCollection?: GarbageCollectionSpec;
  mirrors?: MirrorsSpec;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /**
   * managementState Unmanaged pauses reconciling: nothing is applied or pruned and the status
   * keeps its conditions but for `Managed`. The CRD defaults it to Managed.
   */
  managementState?: 'Managed' | 'Unmanaged';
  metrics: {
    enabled: boolean;
    serviceMonitor: { enabled: boolean; interval: string; labels?: Record<string, string> };
  };
  notifications?: { endpoints?: NotificationEndpoint[] };
  configOverrides?: Record<string, unknown>;
  /** nodeAccess: the CRD defaults it to `{enabled: false, ...}`; absent on objects built by hand. */
  nodeAccess?: NodeAccessSpec;
}

export type ConditionType =
  | 'Ready'
  | 'Available'
  | 'Progressing'
  | 'Degraded'
  | 'StorageReady'
  | 'ConfigValid'
  | 'NodeAccessReady'
  | 'Managed';

export interface RegistryStatus {
  observedGeneration?: number;
  replicas?: number;
  readyReplicas?: number;
  selector?: string;
  endpoint?: string;
  /** nodeAddress is what nodes pull from (`localhost:30500`) when spec.nodeAccess is enabled. */
  nodeAddress?: string;
  image?: string;
  storage?: { bucket: string; managed: boolean };
  conditions?: V1Condition[];
}

/** Registry is one `Registry` object as read from the API server (defaults applied). */
export interface Registry extends KubernetesObject {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: NonNullable<KubernetesObject['metadata']> & { name: string; namespace: string };
  spec: RegistrySpec;
  status?: RegistryStatus;
}
