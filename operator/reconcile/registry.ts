/**
 * reconcileRegistry drives one Registry toward its spec. It is level-triggered: it reads the
 * Registry afresh, computes the desired children purely, applies them, prunes, checks the
 * bucket, and patches the status only when it changed. Problems the user must fix (missing
 * credentials, an unreachable endpoint, an invalid config) end up in conditions and Events and
 * a later requeue, never in an exception loop.
 */
import {
  ApiException,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubernetesObject,
  type V1ConfigMap,
  type V1DaemonSet,
  type V1Deployment,
  type V1Pod,
  type V1Secret,
  type V1Service,
} from '@kubernetes/client-node';
import type { Clock } from '../clock.js';
import { desiredState, PRUNABLE, refKey, type DesiredState } from '../desired/index.js';
import { LABEL_INSTANCE, LABEL_NAME, childNames, selectorString } from '../desired/meta.js';
import { NODE_ACCESS_NAME, nodeAccessNames, nodeAccessOf } from '../desired/nodeaccess.js';
import { referencedFiles, rollingReferences } from '../desired/files.js';
import { httpSecretOf, signingKeyOf } from '../desired/secret.js';
import type { EventSink } from '../events.js';
import { operatorImage, withImage } from '../image.js';
import type { Logger } from '../log.js';
import { endpointAllowed, refusals, type AdmissionPolicy, type Refusal } from '../policy.js';
import {
  computeStatus,
  podProblems,
  refusedStatus,
  runningImage,
  statusChanged,
  transitions,
  unmanagedStatus,
  type NodeAccessObserved,
  type StorageState,
} from '../status.js';
import type { BucketStore, BucketTarget, Credentials } from '../storage.js';
import { FINALIZER, GROUP, PLURAL, VERSION, type Registry, type RegistryStatus } from '../types.js';
import type { ChildApplier } from './apply.js';

/** CoreApi is what the reconciler reads and deletes in the core group. */
export type CoreApi = Pick<
  CoreV1Api,
  | 'readNamespacedSecret'
  | 'readNamespacedConfigMap'
  | 'readNamespacedService'
  | 'deleteNamespacedService'
  | 'listNamespacedPod'
>;
/** AppsApi is what the reconciler reads and deletes in apps/v1. */
export type AppsApi = Pick<
  AppsV1Api,
  | 'readNamespacedDeployment'
  | 'readNamespacedDaemonSet'
  | 'deleteNamespacedDeployment'
  | 'deleteNamespacedDaemonSet'
>;
/** RegistryApi reads a Registry and patches its finalizers and status. */
export type RegistryApi = Pick<
  CustomObjectsApi,
  'getNamespacedCustomObject' | 'patchNamespacedCustomObject' | 'patchNamespacedCustomObjectStatus'
>;

/**
 * ReconcileDeps are the reconciler's narrow roles: the real clients in the controller, a
 * recording fake in unit tests (test/operator/fake-cluster.ts).
 */
export interface ReconcileDeps {
  core: CoreApi;
  apps: AppsApi;
  custom: RegistryApi;
  applier: ChildApplier;
  buckets: BucketStore;
  events: EventSink;
  clock: Clock;
  log: Logger;
  /** serviceMonitorApi says whether monitoring.coreos.com/v1 is served. */
  serviceMonitorApi: () => Promise<boolean>;
  /** storageRetryMs is how soon a Registry whose storage is not ready is looked at again. */
  storageRetryMs?: number;
  /**
   * registryPods returns the Registry's server pods from a cache (the controller's pod
   * informer); without it each pass lists them from the API server.
   */
  registryPods?: (r: Registry) => readonly V1Pod[];
  /**
   * operatorImage is the image Registries without spec.image run (see operator/image.ts).
   * Default: the release image of this version.
   */
  operatorImage?: string;
  /** nodeAccessRetryMs is how soon a refused node-access Service is tried again. Default 60 s. */
  nodeAccessRetryMs?: number;
  /**
   * policy is what the operator accepts (images, S3 endpoints); a Registry asking for more is
   * refused before anything is applied or any endpoint contacted. Default: everything.
   */
  policy?: AdmissionPolicy;
}

export interface ReconcileResult {
  /** requeueAfterMs asks for another pass even without a change (polling outside the cluster). */
  requeueAfterMs?: number;
}

/** apiMessage is the API server's message for a failed request, else the error's text. */
function apiMessage(err: unknown): string {
  const body = (err as { body?: unknown }).body;
  if (typeof body === 'string') {
    try {
      const m = (JSON.parse(body) as { message?: unknown }).message;
      if (typeof m === 'string') return m;
    } catch {
      // not JSON: fall through
    }
  }
  return err instanceof Error ? (err.message.split('\n')[0] ?? err.message) : String(err);
}

const is404 = (err: unknown): boolean => err instanceof ApiException && err.code === 404;

/** orAbsent resolves with what `read` finds, or undefined where the API server says 404. */
async function orAbsent<T>(read: Promise<T>): Promise<T | undefined> {
  try {
    return await read;
  } catch (err) {
    if (is404(err)) return undefined;
    throw err;
  }
}

function readSecret(core: CoreApi, namespace: string, name: string): Promise<V1Secret | undefined> {
  return orAbsent(core.readNamespacedSecret({ name, namespace }));
}

function secretValue(s: V1Secret, key: string): string | undefined {
  const b64 = s.data?.[key];
  return b64 === undefined ? undefined : Buffer.from(b64, 'base64').toString('utf8');
}

function readConfigMap(
  core: CoreApi,
  namespace: string,
  name: string,
): Promise<V1ConfigMap | undefined> {
  return orAbsent(core.readNamespacedConfigMap({ name, namespace }));
}

/**
 * missingFiles checks that every Secret and ConfigMap key the Registry mounts exists, and says
 * which do not (names and keys only: values are never read into a message).
 */
async function missingFiles(deps: ReconcileDeps, r: Registry): Promise<string[]> {
  const ns = r.metadata.namespace;
  const out: string[] = [];
  for (const f of referencedFiles(r)) {
    if (f.generated) continue;
    const obj =
      f.source === 'Secret'
        ? await readSecret(deps.core, ns, f.name)
        : await readConfigMap(deps.core, ns, f.name);
    if (!obj) out.push(`${f.source} ${ns}/${f.name} not found`);
    else if (
      obj.data?.[f.key] === undefined &&
      (obj as V1ConfigMap).binaryData?.[f.key] === undefined
    )
      out.push(`${f.source} ${ns}/${f.name} has no key ${f.key}`);
  }
  return out;
}

/**
 * referencedValues reads the keys the server reads only at start (rollingReferences), for the
 * pod-template checksum; each object is read once. Values stay in memory, never in a message.
 */
async function referencedValues(deps: ReconcileDeps, r: Registry): Promise<Map<string, string>> {
  const ns = r.metadata.namespace;
  const objects = new Map<string, Promise<V1Secret | V1ConfigMap | undefined>>();
  const out = new Map<string, string>();
  for (const ref of rollingReferences(r)) {
    const id = `${ref.source}/${ref.name}`;
    let obj = objects.get(id);
    if (!obj) {
      obj =
        ref.source === 'Secret'
          ? readSecret(deps.core, ns, ref.name)
          : readConfigMap(deps.core, ns, ref.name);
      objects.set(id, obj);
    }
    const o = await obj;
    const v = o?.data?.[ref.key] ?? (o && 'binaryData' in o ? o.binaryData?.[ref.key] : undefined);
    if (v !== undefined) out.set(refKey(ref), v);
  }
  return out;
}

/** target is where the Registry's bucket lives, with the CA bundle if one is referenced. */
async function target(deps: ReconcileDeps, r: Registry): Promise<BucketTarget> {
  const s3 = r.spec.storage.s3;
  let ca: string | undefined;
  if (s3.caBundleSecretRef) {
    const s = await readSecret(deps.core, r.metadata.namespace, s3.caBundleSecretRef.name);
    ca = s ? secretValue(s, s3.caBundleSecretRef.key) : undefined;
  }
  return {
    endpoint: s3.endpoint,
    bucket: s3.bucket,
    region: s3.region,
    pathStyle: s3.pathStyle,
    insecureSkipVerify: s3.insecureSkipVerify,
    ...(ca !== undefined ? { ca } : {}),
  };
}

/** credentials reads the S3 keys from the referenced Secret, or says what is missing. */
async function credentials(deps: ReconcileDeps, r: Registry): Promise<Credentials | StorageState> {
  const ref = r.spec.storage.s3.credentialsSecretRef;
  const ns = r.metadata.namespace;
  const s = await readSecret(deps.core, ns, ref.name);
  if (!s)
    return {
      ready: false,
      reason: 'CredentialsMissing',
      message: `Secret ${ns}/${ref.name} not found`,
    };
  const accessKey = secretValue(s, ref.accessKeyIdKey);
  const secretKey = secretValue(s, ref.secretAccessKeyKey);
  const missing = [
    ...(accessKey ? [] : [ref.accessKeyIdKey]),
    ...(secretKey ? [] : [ref.secretAccessKeyKey]),
  ];
  if (missing.length > 0 || accessKey === undefined || secretKey === undefined)
    return {
      ready: false,
      reason: 'CredentialsMissing',
      message: `Secret ${ns}/${ref.name} has no key ${missing.join(' or ')}`,
    };
  return { accessKey, secretKey };
}

async function setFinalizers(
  deps: ReconcileDeps,
  r: Registry,
  finalizers: string[],
): Promise<void> {
  // JSON patch guarded by resourceVersion: a concurrent writer makes it fail and we retry.
  await deps.custom.patchNamespacedCustomObject(
    {
      group: GROUP,
      version: VERSION,
      namespace: r.metadata.namespace,
      plural: PLURAL,
      name: r.metadata.name,
      body: [
        { op: 'test', path: '/metadata/resourceVersion', value: r.metadata.resourceVersion },
        { op: 'add', path: '/metadata/finalizers', value: finalizers },
      ],
    },
    setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
  );
}

/**
 * podsRemain deletes the Registry's Deployment and node-access DaemonSet and says whether any
 * of their pods are left (node-access pods remove their files from the nodes as they stop).
 */
async function podsRemain(deps: ReconcileDeps, r: Registry): Promise<boolean> {
  const namespace = r.metadata.namespace;
  const gone = (err: unknown) => {
    if (!is404(err)) throw err;
  };
  await deps.apps
    .deleteNamespacedDeployment({
      name: childNames(r).workload,
      namespace,
      propagationPolicy: 'Background',
    })
    .catch(gone);
  await deps.apps
    .deleteNamespacedDaemonSet({
      name: nodeAccessNames(r).daemonSet,
      namespace,
      propagationPolicy: 'Background',
    })
    .catch(gone);
  const pods = await deps.core.listNamespacedPod({
    namespace,
    labelSelector: `${LABEL_INSTANCE}=${r.metadata.name},${LABEL_NAME} in (berth,${NODE_ACCESS_NAME})`,
  });
  return pods.items.length > 0;
}

async function finalize(deps: ReconcileDeps, r: Registry): Promise<ReconcileResult> {
  const finalizers = r.metadata.finalizers ?? [];
  if (!finalizers.includes(FINALIZER)) return {};
  const s3 = r.spec.storage.s3;
  const mayContact = endpointAllowed(deps.policy ?? {}, s3.endpoint);
  if (!mayContact)
    // The credentials are not sent to an endpoint the policy does not allow, not even to
    // delete a bucket: the bucket is left where it is and the Registry goes.
    await deps.events.record(r, {
      type: 'Warning',
      reason: 'NotAllowed',
      action: 'DeleteBucket',
      note: `bucket ${s3.bucket} not deleted: spec.storage.s3.endpoint ${JSON.stringify(s3.endpoint)} is not allowed by the operator`,
    });
  if (mayContact && s3.deletionPolicy === 'Delete' && s3.bucketManagement === 'Managed') {
    const creds = await credentials(deps, r);
    if ('ready' in creds) {
      await deps.events.record(r, {
        type: 'Warning',
        reason: creds.reason,
        action: 'DeleteBucket',
        note: `cannot delete bucket ${s3.bucket}: ${creds.message}`,
      });
      throw new Error(`cannot delete bucket ${s3.bucket}: ${creds.message}`);
    }
    // The registry's pods write to the bucket (their peers entries every second, ADR 0012): a
    // write racing the delete can leave the bucket behind, so they go first.
    if (await podsRemain(deps, r)) return { requeueAfterMs: 1000 };
    await deps.buckets.remove(await target(deps, r), creds);
    await deps.events.record(r, {
      type: 'Normal',
      reason: 'BucketDeleted',
      action: 'DeleteBucket',
      note: `bucket ${s3.bucket} deleted per deletionPolicy Delete`,
    });
    deps.log.info({ registry: r.metadata.name, bucket: s3.bucket }, 'bucket deleted');
  }
  await setFinalizers(
    deps,
    r,
    finalizers.filter((f) => f !== FINALIZER),
  );
  return {};
}

/** listRegistryPods is the Registry's server pods, from the cache when there is one. */
async function listRegistryPods(deps: ReconcileDeps, r: Registry): Promise<readonly V1Pod[]> {
  if (deps.registryPods) return deps.registryPods(r);
  const pods = await deps.core.listNamespacedPod({
    namespace: r.metadata.namespace,
    labelSelector: selectorString(r),
  });
  return pods.items;
}

/**
 * applyNodeAccess applies the node-access Service and DaemonSet. A Service the API server
 * rejects as invalid (node port taken or out of range, cluster IP outside the service CIDR or
 * taken) is the user's to fix: it is returned as `refused`, not thrown, and the DaemonSet is
 * left as it is. A Service whose fixed cluster IP changed is deleted first (clusterIP is
 * immutable). Other errors are thrown.
 */
async function applyNodeAccess(
  deps: ReconcileDeps,
  r: Registry,
  objects: readonly KubernetesObject[],
): Promise<NodeAccessObserved> {
  let daemonSet: V1DaemonSet | undefined;
  for (const obj of objects) {
    if (obj.kind === 'Service') {
      const svc = obj as V1Service;
      const want = svc.spec?.clusterIP;
      if (want !== undefined) {
        const have = await readService(deps, r.metadata.namespace, svc.metadata?.name ?? '');
        const current = have?.spec?.clusterIP;
        if (current !== undefined && current !== '' && current !== want) {
          await deps.core
            .deleteNamespacedService({
              name: svc.metadata?.name ?? '',
              namespace: r.metadata.namespace,
            })
            .catch((err: unknown) => {
              if (!is404(err)) throw err;
            });
          deps.log.info(
            { registry: r.metadata.name, from: current, to: want },
            'node service recreated for a new cluster ip',
          );
        }
      }
      try {
        await deps.applier.apply(svc);
      } catch (err) {
        if (err instanceof ApiException && (err.code === 422 || err.code === 400))
          return { daemonSet: undefined, refused: apiMessage(err) };
        throw err;
      }
    } else {
      const applied = await deps.applier.apply(obj);
      if (obj.kind === 'DaemonSet') daemonSet = applied;
    }
  }
  return { daemonSet };
}

function readService(
  deps: ReconcileDeps,
  namespace: string,
  name: string,
): Promise<V1Service | undefined> {
  return orAbsent(deps.core.readNamespacedService({ name, namespace }));
}

function readDaemonSet(deps: ReconcileDeps, r: Registry): Promise<V1DaemonSet | undefined> {
  const name = nodeAccessNames(r).daemonSet;
  return orAbsent(deps.apps.readNamespacedDaemonSet({ name, namespace: r.metadata.namespace }));
}

function readDeployment(deps: ReconcileDeps, r: Registry): Promise<V1Deployment | undefined> {
  const name = childNames(r).workload;
  return orAbsent(deps.apps.readNamespacedDeployment({ name, namespace: r.metadata.namespace }));
}

/**
 * refuse is a pass over a Registry the policy refuses: nothing is applied, pruned or checked
 * (the endpoint is not contacted); the status names the fields, and a Warning Event says so
 * once per transition.
 */
async function refuse(
  deps: ReconcileDeps,
  r: Registry,
  why: readonly Refusal[],
): Promise<ReconcileResult> {
  const status = refusedStatus(r, why, new Date(deps.clock.now()));
  const { namespace, name } = r.metadata;
  if (!statusChanged(r.status, status)) return {};
  await deps.custom.patchNamespacedCustomObjectStatus(
    {
      group: GROUP,
      version: VERSION,
      namespace,
      plural: PLURAL,
      name,
      body: {
        status: { observedGeneration: status.observedGeneration, conditions: status.conditions },
      },
    },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
  // One Warning per refusal (Degraded turning NotAllowed), not one per condition.
  for (const t of transitions(r.status, status))
    if (t.type === 'Degraded')
      await deps.events.record(r, {
        type: 'Warning',
        reason: t.reason,
        action: t.type,
        note: `${t.type} is ${t.to}: ${t.message}`,
      });
  deps.log.warn(
    { registry: name, namespace, fields: why.map((x) => x.field) },
    'registry refused by policy',
  );
  return {};
}

/**
 * pause is a pass over an Unmanaged Registry: nothing is applied, pruned or checked; only the
 * `Managed` condition (and observedGeneration) is written, once.
 */
async function pause(deps: ReconcileDeps, r: Registry): Promise<ReconcileResult> {
  const status = unmanagedStatus(r, new Date(deps.clock.now()));
  if (!statusChanged(r.status, status)) return {};
  const { namespace, name } = r.metadata;
  await deps.custom.patchNamespacedCustomObjectStatus(
    {
      group: GROUP,
      version: VERSION,
      namespace,
      plural: PLURAL,
      name,
      body: {
        status: { observedGeneration: status.observedGeneration, conditions: status.conditions },
      },
    },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
  for (const t of transitions(r.status, status))
    await deps.events.record(r, {
      type: 'Normal',
      reason: t.reason,
      action: t.type,
      note: `${t.type} is ${t.to}: ${t.message}`,
    });
  deps.log.info({ registry: name, namespace }, 'registry unmanaged, not reconciled');
  return {};
}

/**
 * reconcileRegistry is one pass over the Registry `namespace/name` (see the module comment).
 * It resolves with when to look again; it throws when a child could not be applied, after
 * saying so in the status.
 */
export async function reconcileRegistry(
  deps: ReconcileDeps,
  namespace: string,
  name: string,
): Promise<ReconcileResult> {
  const stored = await readRegistry(deps, namespace, name);
  if (!stored) return {}; // deleted: the garbage collector removes the children
  // An unpinned Registry runs the operator's image, so an operator upgrade upgrades it.
  const r = withImage(stored, deps.operatorImage ?? operatorImage());
  if (r.metadata.deletionTimestamp) return finalize(deps, r);
  if (r.spec.managementState === 'Unmanaged') return pause(deps, r);
  const refused = refusals(r, deps.policy ?? {}, deps.operatorImage ?? operatorImage());
  if (refused.length > 0) return refuse(deps, r, refused);
  // Before any bucket is created; the patch bumps resourceVersion, so start again.
  if (await syncFinalizer(deps, r)) return { requeueAfterMs: 1 };

  const desired = await desiredFor(deps, r);
  // Storage first: it decides StorageReady, but a bad bucket does not stop the children.
  const storage = await ensureStorage(deps, r);
  const applied = await applyDesired(deps, r, desired);
  const { applyError, nodeAccess } = applied;
  const pods = await listRegistryPods(deps, r);
  const image = runningImage(pods);
  const status = computeStatus(r, {
    configProblems: desired.ok ? [] : desired.problems,
    ...(!desired.ok && desired.reason ? { configReason: desired.reason } : {}),
    storage,
    deployment: applied.deployment,
    now: new Date(deps.clock.now()),
    ...(applyError !== undefined ? { applyError: apiMessage(applyError) } : {}),
    podProblems: podProblems(pods),
    ...(image !== undefined ? { image } : {}),
    ...(nodeAccess ? { nodeAccess } : {}),
  });
  if (statusChanged(r.status, status)) await publishStatus(deps, r, status);
  if (applyError !== undefined) throw applyError;
  // Referenced Secrets and ConfigMaps are watched; looking again is a fallback for a watch gap.
  const missingRef = !desired.ok && desired.reason === 'SecretMissing';
  if (!storage.ready || missingRef) return { requeueAfterMs: deps.storageRetryMs ?? 15_000 };
  // A taken node port may be freed by someone else: look again now and then.
  if (nodeAccess?.refused !== undefined && nodeAccessOf(r))
    return { requeueAfterMs: deps.nodeAccessRetryMs ?? 60_000 };
  return {};
}

/** readRegistry reads the Registry afresh; undefined once it is gone. */
async function readRegistry(
  deps: ReconcileDeps,
  namespace: string,
  name: string,
): Promise<Registry | undefined> {
  try {
    return (await deps.custom.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: PLURAL,
      name,
    })) as Registry;
  } catch (err) {
    if (is404(err)) return undefined;
    throw err;
  }
}

/**
 * syncFinalizer adds the finalizer when deleting the Registry must delete its bucket, and
 * removes it otherwise; true when it patched the Registry.
 */
async function syncFinalizer(deps: ReconcileDeps, r: Registry): Promise<boolean> {
  const s3 = r.spec.storage.s3;
  const wantFinalizer = s3.deletionPolicy === 'Delete' && s3.bucketManagement === 'Managed';
  const finalizers = r.metadata.finalizers ?? [];
  if (wantFinalizer === finalizers.includes(FINALIZER)) return false;
  await setFinalizers(
    deps,
    r,
    wantFinalizer ? [...finalizers, FINALIZER] : finalizers.filter((f) => f !== FINALIZER),
  );
  return true;
}

/**
 * desiredFor computes the desired children from the Registry and what they depend on in the
 * cluster: the stored HTTP secret and signing key, the ServiceMonitor API, referenced objects.
 */
async function desiredFor(deps: ReconcileDeps, r: Registry): Promise<DesiredState> {
  const existingSecret = await readSecret(deps.core, r.metadata.namespace, childNames(r).secret);
  return desiredState(r, {
    httpSecret: httpSecretOf(existingSecret),
    signingKey: signingKeyOf(existingSecret),
    serviceMonitorApi: await deps.serviceMonitorApi(),
    missing: await missingFiles(deps, r),
    referenced: await referencedValues(deps, r),
  });
}

/** ensureStorage checks the credentials and the bucket, creating it when it is Managed. */
async function ensureStorage(deps: ReconcileDeps, r: Registry): Promise<StorageState> {
  const s3 = r.spec.storage.s3;
  const creds = await credentials(deps, r);
  const storage: StorageState =
    'ready' in creds
      ? creds
      : await deps.buckets.ensure(await target(deps, r), creds, s3.bucketManagement === 'Managed');
  if (storage.reason === 'BucketCreated') {
    const { namespace, name } = r.metadata;
    deps.log.info({ registry: name, namespace, bucket: s3.bucket }, 'bucket created');
  }
  return storage;
}

/** Applied is what applying the desired children observed. */
interface Applied {
  deployment: V1Deployment | undefined;
  applyError: Error | undefined;
  nodeAccess: NodeAccessObserved | undefined;
}

/**
 * applyDesired applies the desired children, then node access, and prunes the rest. A failed
 * apply is returned, not thrown, so the status can say so first. What was not applied (an
 * invalid config, a failure) is read back as it is in the cluster.
 */
async function applyDesired(
  deps: ReconcileDeps,
  r: Registry,
  desired: DesiredState,
): Promise<Applied> {
  const { namespace, name } = r.metadata;
  const out: Applied = { deployment: undefined, applyError: undefined, nodeAccess: undefined };
  if (desired.ok) {
    try {
      for (const child of desired.children) {
        const applied = await deps.applier.apply(child);
        if (child.kind === 'Deployment') out.deployment = applied;
      }
      if (desired.nodeAccess.length > 0)
        out.nodeAccess = await applyNodeAccess(deps, r, desired.nodeAccess);
      const keep = [...desired.children, ...desired.nodeAccess];
      const pruned = await deps.applier.prune(r, keep, PRUNABLE);
      for (const p of pruned)
        deps.log.info({ registry: name, namespace, child: p }, 'child pruned');
    } catch (err) {
      // Say so in the status before backing off, so a bad child is visible, not a silent loop.
      out.applyError = err instanceof Error ? err : new Error(String(err));
    }
    if (desired.skipped.length > 0)
      deps.log.debug({ registry: name, skipped: desired.skipped }, 'optional children skipped');
  }
  if (!desired.ok || out.applyError !== undefined) out.deployment = await readDeployment(deps, r);
  if (out.nodeAccess === undefined && nodeAccessOf(r))
    out.nodeAccess = { daemonSet: await readDaemonSet(deps, r) };
  return out;
}

/** publishStatus patches a changed status and records an Event per condition transition. */
async function publishStatus(
  deps: ReconcileDeps,
  r: Registry,
  status: RegistryStatus,
): Promise<void> {
  const { namespace, name } = r.metadata;
  // A merge patch keeps keys it does not mention: null removes a node address no longer set.
  const body = {
    status: { ...status, nodeAddress: status.nodeAddress ?? null, image: status.image ?? null },
  };
  await deps.custom.patchNamespacedCustomObjectStatus(
    { group: GROUP, version: VERSION, namespace, plural: PLURAL, name, body },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
  for (const t of transitions(r.status, status)) {
    // The first status has no history: only say what is wrong, and when it is Ready.
    if (t.from === undefined && !t.warning && t.type !== 'Ready') continue;
    await deps.events.record(r, {
      type: t.warning ? 'Warning' : 'Normal',
      reason: t.reason,
      action: t.type,
      note: `${t.type} is ${t.to}${t.message ? `: ${t.message}` : ''}`,
    });
  }
}
