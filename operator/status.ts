/**
 * Status computation: pure functions from what the reconciler observed to the Registry's
 * status. lastTransitionTime moves only when a condition's status flips.
 */
import type { V1Condition, V1DaemonSet, V1Deployment, V1Pod } from '@kubernetes/client-node';
import { endpoint, selectorString } from './desired/meta.js';
import { mirrorFor, nodeAccessNames, nodeAccessOf, nodeAddress } from './desired/nodeaccess.js';
import type { ConditionType, IntOrString, Registry, RegistryStatus } from './types.js';

/** StorageState is the outcome of checking (or creating) the bucket. */
export interface StorageState {
  ready: boolean;
  /** reason: BucketExists, BucketCreated, BucketMissing, CredentialsMissing, AccessDenied, EndpointUnreachable, Unknown. */
  reason: string;
  message: string;
}

/** Observed is what one reconcile pass saw. */
export interface Observed {
  /** configProblems is empty when the rendered config validated. */
  configProblems: readonly string[];
  /**
   * configReason is why the config is not valid: InvalidConfig (default) or SecretMissing (a
   * referenced Secret, ConfigMap or key does not exist).
   */
  configReason?: 'InvalidConfig' | 'SecretMissing';
  storage: StorageState;
  /** deployment is the Deployment as last read or applied (undefined: not created yet). */
  deployment: V1Deployment | undefined;
  /** now is the transition time to stamp on conditions that flip. */
  now: Date;
  /** applyError says why applying a child failed in this pass, if it did. */
  applyError?: string;
  /** podProblems are the registry pods' containers stuck waiting (see podProblems). */
  podProblems?: readonly PodProblem[];
  /** nodeAccess is what was seen of node access; ignored when spec.nodeAccess is off. */
  nodeAccess?: NodeAccessObserved;
  /** image is what the registry pods run (see runningImage); undefined when none is ready. */
  image?: string;
}

/** NodeAccessObserved is the node-access DaemonSet, or why its Service was refused. */
export interface NodeAccessObserved {
  daemonSet: V1DaemonSet | undefined;
  /** refused is the API server's message when it rejected the `<name>-node` Service. */
  refused?: string;
}

/** PodProblem is one registry container waiting for a reason a person has to look at. */
export interface PodProblem {
  pod: string;
  container: string;
  image: string;
  /** reason is the Degraded reason: ImagePullFailed, ContainerConfigFailed or ContainerFailing. */
  reason: 'ImagePullFailed' | 'ContainerConfigFailed' | 'ContainerFailing';
  /** waiting is the kubelet's waiting reason, e.g. ImagePullBackOff. */
  waiting: string;
  message: string;
}

const WAITING_REASONS: Record<string, PodProblem['reason']> = {
  ErrImagePull: 'ImagePullFailed',
  ImagePullBackOff: 'ImagePullFailed',
  InvalidImageName: 'ImagePullFailed',
  ErrImageNeverPull: 'ImagePullFailed',
  CreateContainerConfigError: 'ContainerConfigFailed',
  CreateContainerError: 'ContainerFailing',
  RunContainerError: 'ContainerFailing',
  CrashLoopBackOff: 'ContainerFailing',
};

/**
 * podProblems lists the containers of `pods` that are waiting with a reason that will not
 * clear by itself (image pulls, bad container config, crash loops), in pod-name order.
 * Terminating pods are left out: they are on their way out anyway.
 */
export function podProblems(pods: readonly V1Pod[]): PodProblem[] {
  const out: PodProblem[] = [];
  const sorted = [...pods].sort((a, b) =>
    (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''),
  );
  for (const p of sorted) {
    if (p.metadata?.deletionTimestamp) continue;
    for (const c of [
      ...(p.status?.initContainerStatuses ?? []),
      ...(p.status?.containerStatuses ?? []),
    ]) {
      const w = c.state?.waiting;
      const reason = w?.reason === undefined ? undefined : WAITING_REASONS[w.reason];
      if (!w?.reason || reason === undefined) continue;
      const last = c.lastState?.terminated;
      const exit =
        last !== undefined
          ? ` (last exit code ${last.exitCode}${last.reason ? `, ${last.reason}` : ''})`
          : '';
      out.push({
        pod: p.metadata?.name ?? '',
        container: c.name,
        image: c.image,
        reason,
        waiting: w.reason,
        message: `${w.message ?? ''}${exit}`.trim(),
      });
    }
  }
  return out;
}

/** podProblemMessage says what is wrong with the first problem pod, naming spec.image. */
function podProblemMessage(r: Registry, problems: readonly PodProblem[]): string {
  const p = problems[0]!;
  const what =
    p.reason === 'ImagePullFailed'
      ? `spec.image ${JSON.stringify(r.spec.image)} cannot be pulled`
      : p.reason === 'ContainerConfigFailed'
        ? 'the registry container cannot be created'
        : `the registry container keeps failing (spec.image ${JSON.stringify(r.spec.image)})`;
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
  return `${what}: pod ${p.pod} container ${p.container}: ${p.waiting}${p.message ? `: ${p.message}` : ''}${more}`;
}

/**
 * nodeAccessCondition is NodeAccessReady, or undefined when node access is off. A refused
 * Service comes first, then a spec.nodeAccess.mirrorFor host no spec.mirrors upstream maps
 * (the DaemonSet still runs for the Registry's own address and the mapped hosts).
 */
function nodeAccessCondition(r: Registry, o: Observed): Cond | undefined {
  const na = nodeAccessOf(r);
  if (!na) return undefined;
  const refused = o.nodeAccess?.refused;
  if (refused !== undefined) {
    const field =
      na.mode === 'NodePort'
        ? `spec.nodeAccess.nodePort ${na.nodePort ?? ''}`
        : `spec.nodeAccess.clusterIP ${na.clusterIP ?? ''}`;
    return cond(
      'NodeAccessReady',
      false,
      na.mode === 'NodePort' ? 'NodePortRefused' : 'ClusterIPRefused',
      `the API server refused Service ${nodeAccessNames(r).service} for ${field}: ${refused}`,
    );
  }
  const { unmapped } = mirrorFor(r);
  if (unmapped.length > 0)
    return cond(
      'NodeAccessReady',
      false,
      'MirrorNotConfigured',
      `${unmapped.join(', ')}: not in the ns of any spec.mirrors.upstreams entry, so nodes are not pointed at the Registry for it`,
    );
  const ds = o.nodeAccess?.daemonSet;
  if (!ds)
    return cond('NodeAccessReady', false, 'NodesPending', 'the DaemonSet does not exist yet');
  const st = ds.status;
  const desired = st?.desiredNumberScheduled ?? 0;
  const ready = st?.numberReady ?? 0;
  const current = (ds.metadata?.generation ?? 0) <= (st?.observedGeneration ?? -1);
  if (current && desired === 0)
    return cond('NodeAccessReady', false, 'NoNodes', 'no node runs the node-access DaemonSet');
  if (current && ready === desired && (st?.updatedNumberScheduled ?? desired) >= desired)
    return cond(
      'NodeAccessReady',
      true,
      'NodesConfigured',
      `${ready}/${desired} nodes pull from ${nodeAddress(r) ?? ''}`,
    );
  return cond('NodeAccessReady', false, 'NodesPending', `${ready}/${desired} nodes configured`);
}

type Cond = Omit<V1Condition, 'lastTransitionTime' | 'observedGeneration'>;

function cond(type: ConditionType, ok: boolean, reason: string, message: string): Cond {
  return { type, status: ok ? 'True' : 'False', reason, message };
}

/**
 * maxUnavailable resolves the rolling update's maxUnavailable for `want` replicas as the
 * Deployment controller does (percentages round down; with maxSurge also 0 it is 1). The
 * Recreate strategy may take every replica down.
 */
export function maxUnavailable(r: Registry, want: number): number {
  const s = r.spec.updateStrategy;
  if (s.type === 'Recreate') return want;
  const resolve = (v: IntOrString | undefined, dflt: number, up: boolean): number => {
    if (v === undefined) return dflt;
    if (typeof v === 'number') return v;
    const pct = Number(v.replace(/%$/, ''));
    if (!Number.isFinite(pct)) return dflt;
    const n = (pct * want) / 100;
    return up ? Math.ceil(n) : Math.floor(n);
  };
  const unavailable = resolve(s.maxUnavailable, 0, false);
  const surge = resolve(s.maxSurge, 1, true);
  return Math.min(want, unavailable === 0 && surge === 0 ? 1 : unavailable);
}

/**
 * servingNeed is how many ready replicas keep a Registry Available: at least one, and no
 * fewer than the update strategy lets a rollout take down. A Registry that was Ready needs
 * no more than it had then, so scaling up (an HPA adding pods that still start) is not a
 * loss; one that lost replicas below that stays short until it is back to the strategy's
 * minimum, so it does not flap.
 */
export function servingNeed(r: Registry): number {
  const want = r.spec.replicas;
  if (want === 0) return 0;
  const floor = Math.max(1, want - maxUnavailable(r, want));
  const wasReady = r.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
  if (!wasReady) return floor;
  return Math.max(1, Math.min(floor, r.status?.readyReplicas ?? 0));
}

/**
 * runningImage is the image the ready registry pods run (container `berth`, as the pod spec
 * names it); while pods of a rollout run different images, the one most of them run, a tie
 * going to the older pods. Undefined when no pod is ready.
 */
export function runningImage(pods: readonly V1Pod[]): string | undefined {
  const count = new Map<string, { n: number; oldest: string }>();
  for (const p of pods) {
    if (p.metadata?.deletionTimestamp) continue;
    if (!p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) continue;
    const image = p.spec?.containers.find((c) => c.name === 'berth')?.image;
    if (image === undefined) continue;
    const created = new Date(p.metadata?.creationTimestamp ?? 0).toISOString();
    const seen = count.get(image);
    count.set(image, {
      n: (seen?.n ?? 0) + 1,
      oldest: seen && seen.oldest < created ? seen.oldest : created,
    });
  }
  const best = [...count.entries()].sort(
    ([, a], [, b]) => b.n - a.n || a.oldest.localeCompare(b.oldest),
  )[0];
  return best?.[0];
}

/** rollout summarises a Deployment for the conditions. */
export function rollout(
  r: Registry,
  d: V1Deployment | undefined,
): {
  replicas: number;
  ready: number;
  updated: number;
  available: boolean;
  progressing: boolean;
  failure: string | undefined;
} {
  const want = r.spec.replicas;
  const st = d?.status;
  const ready = st?.readyReplicas ?? 0;
  const updated = st?.updatedReplicas ?? 0;
  const replicas = st?.replicas ?? 0;
  const current = (d?.metadata?.generation ?? 0) <= (st?.observedGeneration ?? -1);
  // Not the Deployment's own Available: with maxUnavailable 0 it turns False on a scale-up.
  const available = d !== undefined && ready >= servingNeed(r);
  const specReplicas = d?.spec?.replicas ?? want;
  const progressing =
    d === undefined ||
    !current ||
    specReplicas !== want ||
    updated < want ||
    replicas > want ||
    (st?.availableReplicas ?? 0) < want;
  const failureCond = st?.conditions?.find(
    (c) =>
      (c.type === 'ReplicaFailure' && c.status === 'True') ||
      (c.type === 'Progressing' && c.status === 'False' && c.reason === 'ProgressDeadlineExceeded'),
  );
  return {
    replicas,
    ready,
    updated,
    available,
    progressing,
    failure: failureCond ? `${failureCond.reason ?? ''}: ${failureCond.message ?? ''}` : undefined,
  };
}

/**
 * conditionsFor computes the six conditions (without times) from what was observed, and
 * NodeAccessReady when spec.nodeAccess is enabled. Ready is about the registry serving in the
 * cluster; node access has its own condition (a refused node port also makes it Degraded).
 */
export function conditionsFor(r: Registry, o: Observed): Cond[] {
  const a = assess(r, o);
  const out: Cond[] = [
    a.configOk
      ? cond('ConfigValid', true, 'ConfigRendered', 'the server config validated')
      : cond('ConfigValid', false, a.configReason, o.configProblems.join('; ')),
    cond('StorageReady', o.storage.ready, o.storage.reason, o.storage.message),
    availableCondition(r, o, a.ro),
    progressingCondition(r, a.ro),
  ];
  const nodeCond = nodeAccessCondition(r, o);
  out.push(degradedCondition(o, a, nodeCond));
  out.push(readyCondition(r, o, a, out));
  if (nodeCond) out.push(nodeCond);
  out.push(cond('Managed', true, 'Managed', 'the operator reconciles this Registry'));
  return out;
}

/** Assessment is what several conditions share: the config verdict, rollout and pod trouble. */
interface Assessment {
  configOk: boolean;
  configReason: 'InvalidConfig' | 'SecretMissing';
  ro: ReturnType<typeof rollout>;
  /** podWhy is the reason and message of the worst pod problem, if any. */
  podWhy: [string, string] | undefined;
}

/** assess gathers the findings of `o` that several conditions share. */
function assess(r: Registry, o: Observed): Assessment {
  const problems = o.podProblems ?? [];
  return {
    configOk: o.configProblems.length === 0,
    configReason: o.configReason ?? 'InvalidConfig',
    ro: rollout(r, o.deployment),
    podWhy: problems.length > 0 ? [problems[0]!.reason, podProblemMessage(r, problems)] : undefined,
  };
}

/** availableCondition: enough replicas ready, or why not (none, or no Deployment yet). */
function availableCondition(r: Registry, o: Observed, ro: Assessment['ro']): Cond {
  const want = r.spec.replicas;
  return ro.available
    ? cond('Available', true, 'MinimumReplicasAvailable', `${ro.ready}/${want} replicas ready`)
    : cond(
        'Available',
        false,
        o.deployment ? 'MinimumReplicasUnavailable' : 'DeploymentMissing',
        o.deployment ? `${ro.ready}/${want} replicas ready` : 'the Deployment does not exist yet',
      );
}

/** progressingCondition: a rollout under way, or every replica up to date. */
function progressingCondition(r: Registry, ro: Assessment['ro']): Cond {
  const want = r.spec.replicas;
  return ro.progressing
    ? cond(
        'Progressing',
        true,
        'RollingOut',
        `${ro.updated}/${want} replicas updated, ${ro.ready} ready`,
      )
    : cond('Progressing', false, 'RolloutComplete', `${want} replicas up to date`);
}

/**
 * degradedCondition names the first problem, in this order: the config, an apply failure,
 * storage, pods, a failed rollout, a refused node-access Service or an unmapped mirror host.
 */
function degradedCondition(o: Observed, a: Assessment, nodeCond: Cond | undefined): Cond {
  const nodeRefused =
    nodeCond &&
    (nodeCond.reason === 'NodePortRefused' ||
      nodeCond.reason === 'ClusterIPRefused' ||
      nodeCond.reason === 'MirrorNotConfigured');
  const degradedWhy = !a.configOk
    ? a.configReason === 'SecretMissing'
      ? [a.configReason, `${o.configProblems.join('; ')}; the last valid config stays in use`]
      : ['InvalidConfig', 'the server config is invalid; the last valid one stays in use']
    : o.applyError !== undefined
      ? ['ApplyFailed', o.applyError]
      : !o.storage.ready
        ? [o.storage.reason, o.storage.message]
        : a.podWhy !== undefined
          ? a.podWhy
          : a.ro.failure !== undefined
            ? ['RolloutFailed', a.ro.failure]
            : nodeRefused
              ? [nodeCond.reason, nodeCond.message]
              : undefined;
  return degradedWhy
    ? cond('Degraded', true, degradedWhy[0]!, degradedWhy[1]!)
    : cond('Degraded', false, 'AsExpected', '');
}

/**
 * readyCondition: the registry serves in the cluster. A rollout or a scale-up in flight is not
 * a reason to stop being Ready: enough replicas serve (Available), and Progressing says what
 * is under way. Not ready, it repeats the message of the condition (of `before`) that says why.
 */
function readyCondition(r: Registry, o: Observed, a: Assessment, before: Cond[]): Cond {
  const { ro } = a;
  const ready =
    a.configOk &&
    o.applyError === undefined &&
    o.storage.ready &&
    a.podWhy === undefined &&
    ro.available;
  if (ready) {
    const rolling = ro.progressing ? ` (${ro.ready}/${r.spec.replicas} ready, rolling out)` : '';
    return cond('Ready', true, 'Ready', `serving at ${endpoint(r)}${rolling}`);
  }
  const notReadyReason = !a.configOk
    ? a.configReason
    : o.applyError !== undefined
      ? 'ApplyFailed'
      : !o.storage.ready
        ? o.storage.reason
        : a.podWhy !== undefined
          ? a.podWhy[0]
          : 'Unavailable';
  return cond(
    'Ready',
    false,
    notReadyReason,
    before.find((c) => c.reason === notReadyReason)?.message ?? '',
  );
}

/**
 * unmanagedStatus is the status of a Registry with spec.managementState Unmanaged: the last
 * observations stay as they were (the operator no longer looks after it, so it does not claim
 * anything new), `Managed` turns False and observedGeneration says the spec was seen.
 */
export function unmanagedStatus(r: Registry, now: Date): RegistryStatus {
  const gen = r.metadata.generation ?? 0;
  const prev = r.status?.conditions ?? [];
  const old = prev.find((c) => c.type === 'Managed');
  const managed: V1Condition = {
    type: 'Managed',
    status: 'False',
    reason: 'Unmanaged',
    message:
      'spec.managementState is Unmanaged: the operator applies, prunes and repairs nothing; the other conditions are as last observed',
    observedGeneration: gen,
    lastTransitionTime:
      old?.status === 'False' ? old.lastTransitionTime : (now.toISOString() as unknown as Date),
  };
  return {
    ...r.status,
    observedGeneration: gen,
    conditions: [...prev.filter((c) => c.type !== 'Managed'), managed],
  };
}

/**
 * refusedStatus is the status of a Registry the operator's AdmissionPolicy refuses: ConfigValid
 * and Ready turn False and Degraded True, each with reason NotAllowed and the refusals' messages
 * (which name the spec field); the other conditions stay as last observed, since nothing was
 * applied or checked.
 */
export function refusedStatus(
  r: Registry,
  refusals: readonly { message: string }[],
  now: Date,
): RegistryStatus {
  const gen = r.metadata.generation ?? 0;
  const message = refusals.map((x) => x.message).join('; ');
  const prev = r.status?.conditions ?? [];
  const set: Cond[] = [
    cond('ConfigValid', false, 'NotAllowed', message),
    cond('Degraded', true, 'NotAllowed', `${message}; nothing is applied`),
    cond('Ready', false, 'NotAllowed', message),
    cond('Managed', true, 'Managed', 'the operator reconciles this Registry'),
  ];
  const fresh = set.map((c): V1Condition => {
    const old = prev.find((p) => p.type === c.type);
    const lastTransitionTime =
      old && old.status === c.status
        ? old.lastTransitionTime
        : (now.toISOString() as unknown as Date);
    return { ...c, observedGeneration: gen, lastTransitionTime };
  });
  return {
    ...r.status,
    observedGeneration: gen,
    conditions: [...prev.filter((p) => !set.some((c) => c.type === p.type)), ...fresh],
  };
}

/**
 * computeStatus is the Registry's new status. Conditions keep their previous
 * lastTransitionTime unless their status changed; every condition carries the generation.
 */
export function computeStatus(r: Registry, o: Observed): RegistryStatus {
  const gen = r.metadata.generation ?? 0;
  const prev = new Map((r.status?.conditions ?? []).map((c) => [c.type, c]));
  const conditions: V1Condition[] = conditionsFor(r, o).map((c) => {
    const old = prev.get(c.type);
    const lastTransitionTime =
      old && old.status === c.status
        ? old.lastTransitionTime
        : (o.now.toISOString() as unknown as Date);
    return { ...c, observedGeneration: gen, lastTransitionTime };
  });
  const ro = rollout(r, o.deployment);
  const addr = nodeAddress(r);
  return {
    observedGeneration: gen,
    replicas: ro.replicas,
    readyReplicas: ro.ready,
    selector: selectorString(r),
    endpoint: endpoint(r),
    ...(addr !== undefined ? { nodeAddress: addr } : {}),
    ...(o.image !== undefined ? { image: o.image } : {}),
    storage: {
      bucket: r.spec.storage.s3.bucket,
      managed: r.spec.storage.s3.bucketManagement === 'Managed',
    },
    conditions,
  };
}

/** normalise makes a status comparable: times as ISO strings, keys in a fixed order. */
function normalise(s: RegistryStatus | undefined): string {
  const conds = [...(s?.conditions ?? [])]
    .map((c) => ({
      type: c.type,
      status: c.status,
      reason: c.reason,
      message: c.message,
      observedGeneration: c.observedGeneration,
      lastTransitionTime: new Date(c.lastTransitionTime).toISOString(),
    }))
    .sort((a, b) => a.type.localeCompare(b.type));
  return JSON.stringify({
    observedGeneration: s?.observedGeneration,
    replicas: s?.replicas,
    readyReplicas: s?.readyReplicas,
    selector: s?.selector,
    endpoint: s?.endpoint,
    nodeAddress: s?.nodeAddress,
    image: s?.image,
    storage: s?.storage ? { bucket: s.storage.bucket, managed: s.storage.managed } : undefined,
    conditions: conds,
  });
}

/** statusChanged says whether `next` differs from `prev` (so a patch is needed). */
export function statusChanged(prev: RegistryStatus | undefined, next: RegistryStatus): boolean {
  return normalise(prev) !== normalise(next);
}

/** Transition is one condition whose status changed, for a Kubernetes Event. */
export interface Transition {
  type: string;
  from: string | undefined;
  to: string;
  reason: string;
  message: string;
  /** warning: the new state is a bad one (e.g. StorageReady False, Degraded True). */
  warning: boolean;
}

/** transitions lists the conditions whose status or reason changed between two statuses. */
export function transitions(prev: RegistryStatus | undefined, next: RegistryStatus): Transition[] {
  const old = new Map((prev?.conditions ?? []).map((c) => [c.type, c]));
  const out: Transition[] = [];
  for (const c of next.conditions ?? []) {
    const o = old.get(c.type);
    if (o && o.status === c.status && o.reason === c.reason) continue;
    const bad =
      c.type === 'Degraded' || c.type === 'Progressing' ? c.status === 'True' : c.status !== 'True';
    out.push({
      type: c.type,
      from: o?.status,
      to: c.status,
      reason: c.reason,
      message: c.message,
      // Nodes still starting the node-access pods is progress, not a problem.
      // Pausing a Registry is a decision, not a problem.
      warning:
        bad && c.type !== 'Progressing' && c.type !== 'Managed' && c.reason !== 'NodesPending',
    });
  }
  return out;
}
