/**
 * Names, labels and owner references shared by every child a Registry owns. Pure: the
 * same Registry always yields the same values.
 */
import type { V1ObjectMeta, V1OwnerReference } from '@kubernetes/client-node';
import { API_VERSION, KIND, type Registry } from '../types.js';

export const MANAGED_BY = 'berth-operator';
export const LABEL_NAME = 'app.kubernetes.io/name';
export const LABEL_INSTANCE = 'app.kubernetes.io/instance';
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const LABEL_COMPONENT = 'app.kubernetes.io/component';
/** CONFIG_CHECKSUM is the pod-template annotation that rolls pods when the config changes. */
export const CONFIG_CHECKSUM = 'berth.dev/config-checksum';
/** HTTP_SECRET_KEY is the key of the shared upload-token secret in the `<name>-secret` Secret. */
export const HTTP_SECRET_KEY = 'httpSecret';
/** TOKEN_SIGNING_KEY_KEY holds the generated token signing key (PEM) in the same Secret. */
export const TOKEN_SIGNING_KEY_KEY = 'tokenSigningKey';
/** CONFIG_KEY is the ConfigMap key holding the rendered berth.yaml. */
export const CONFIG_KEY = 'berth.yaml';
export const CONFIG_DIR = '/etc/berth';
export const CA_DIR = '/etc/berth/ca';
export const TLS_DIR = '/etc/berth/tls';
/** BLOB_CACHE_DIR is where each pod's blob cache emptyDir is mounted. */
export const BLOB_CACHE_DIR = '/var/cache/berth/blobs';
/** DEFAULT_BLOB_CACHE_GIB is the CRD's default of spec.blobCache.sizeGiB. */
export const DEFAULT_BLOB_CACHE_GIB = 10;

/** blobCacheGiB is the blob cache size a Registry asks for (0 = none). */
export function blobCacheGiB(r: { spec: { blobCache?: { sizeGiB?: number } } }): number {
  return r.spec.blobCache?.sizeGiB ?? DEFAULT_BLOB_CACHE_GIB;
}
export const HTTP_PORT = 5000;
/** DEBUG_PORT serves /healthz, /readyz and /metrics apart from the registry API. */
export const DEBUG_PORT = 5001;
/** PEER_PORT hears tag invalidations from the other replicas (cache.peerListen, ADR 0025). */
export const PEER_PORT = 5002;

/** peerInvalidation: the Registry's pods keep tags coherent over PEER_PORT. */
export function peerInvalidation(r: {
  spec: { tagCache?: { peerInvalidation?: boolean } };
}): boolean {
  return r.spec.tagCache?.peerInvalidation === true;
}

/** childNames names every child of a Registry; the Deployment, Service and PDB share its name. */
export function childNames(r: Registry): {
  workload: string;
  config: string;
  secret: string;
  metrics: string;
} {
  const n = r.metadata.name;
  return { workload: n, config: `${n}-config`, secret: `${n}-secret`, metrics: `${n}-metrics` };
}

/** selectorLabels select a Registry's pods; they never change for the life of the Registry. */
export function selectorLabels(r: Registry): Record<string, string> {
  return { [LABEL_NAME]: 'berth', [LABEL_INSTANCE]: r.metadata.name };
}

/** selectorString is selectorLabels as a label-selector string (status.selector for scale). */
export function selectorString(r: Registry): string {
  return Object.entries(selectorLabels(r))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

/** labels are put on every child: the selector labels plus managed-by and component. */
export function labels(r: Registry): Record<string, string> {
  return { ...selectorLabels(r), [LABEL_MANAGED_BY]: MANAGED_BY, [LABEL_COMPONENT]: 'registry' };
}

/** ownerReference makes the Registry the controlling owner, so deleting it cascades. */
export function ownerReference(r: Registry): V1OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    name: r.metadata.name,
    uid: r.metadata.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** childMeta is the metadata of a child called `name`. */
export function childMeta(r: Registry, name: string): V1ObjectMeta {
  return {
    name,
    namespace: r.metadata.namespace,
    labels: labels(r),
    ownerReferences: [ownerReference(r)],
  };
}

/** endpoint is the in-cluster URL of the Registry's Service. */
export function endpoint(r: Registry): string {
  const scheme = r.spec.tls ? 'https' : 'http';
  return `${scheme}://${childNames(r).workload}.${r.metadata.namespace}.svc:${r.spec.service.port}`;
}
