/**
 * runOperator is `berth operator`: it elects a leader on a Lease and, while leading, runs the
 * Registry controller; it always serves /metrics, /healthz and /readyz.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import { realClock, type Clock } from './clock.js';
import { Controller } from './controller.js';
import { EventRecorder, type EventSink } from './events.js';
import { LeaderElector } from './leader.js';
import { jsonLogger, type Level, type Logger } from './log.js';
import { OperatorMetrics, serveProbes } from './metrics.js';
import { listFromEnv, type AdmissionPolicy } from './policy.js';
import { MinioBucketStore, type BucketStore } from './storage.js';

export interface OperatorOptions {
  /** kc is the cluster to talk to; default: in-cluster, else $KUBECONFIG / ~/.kube/config. */
  kc?: KubeConfig;
  /** leaseNamespace holds the leader Lease; default $POD_NAMESPACE, else `default`. */
  leaseNamespace?: string;
  leaseName?: string;
  /** identity names this replica in the Lease; default $POD_NAME or hostname plus a suffix. */
  identity?: string;
  /** probeHost and probePort serve /metrics, /healthz, /readyz; default 0.0.0.0:8080. */
  probeHost?: string;
  probePort?: number;
  log?: Logger;
  clock?: Clock;
  buckets?: BucketStore;
  events?: EventSink;
  resyncMs?: number;
  storageRetryMs?: number;
  /** operatorImage is what Registries without spec.image run; default $BERTH_IMAGE, else the release image. */
  operatorImage?: string;
  /**
   * namespaces limits the operator to these namespaces; default $BERTH_WATCH_NAMESPACES
   * (comma-separated), else the whole cluster.
   */
  namespaces?: readonly string[];
  /**
   * policy is what Registries may ask for; default $BERTH_ALLOWED_IMAGES and
   * $BERTH_ALLOWED_S3_ENDPOINTS (comma-separated globs), each unset allowing everything.
   */
  policy?: AdmissionPolicy;
  leaseDurationSeconds?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
}

export interface RunningOperator {
  /** port is where /metrics, /healthz and /readyz are served. */
  port: number;
  metrics: OperatorMetrics;
  isLeader(): boolean;
  /** stop releases the lease, stops the controller and the probe server. */
  stop(): Promise<void>;
}

function defaultKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}

/** runOperator starts the probe server and the leader election; see {@link RunningOperator}. */
export async function runOperator(opts: OperatorOptions = {}): Promise<RunningOperator> {
  const s = resolveSettings(opts);
  const { kc, log, clock, identity, namespaces, policy } = s;
  const metrics = new OperatorMetrics();
  const elector = leaderElector(opts, s);
  const slot = new ControllerSlot(
    () =>
      new Controller({
        kc,
        log,
        metrics,
        buckets: s.buckets,
        events: s.events,
        clock,
        resyncMs: opts.resyncMs,
        storageRetryMs: opts.storageRetryMs,
        operatorImage: opts.operatorImage,
        namespaces,
        policy,
      }),
    log,
    metrics,
  );
  const probes = await serveProbes(
    metrics,
    // A standby is ready (it is doing its job: waiting); a leader once its caches are synced.
    () => !elector.isLeader() || slot.synced(),
    opts.probeHost ?? '0.0.0.0',
    opts.probePort ?? Number(process.env.BERTH_OPERATOR_PROBE_PORT ?? 8080),
    () => !slot.startFailed,
  );
  const campaign = elector.run(
    () => slot.lead(),
    () => slot.follow(),
  );
  log.info(
    {
      identity,
      port: probes.port,
      namespaces: namespaces.length > 0 ? namespaces : 'all',
      allowedImages: policy.images?.length ?? 0,
      allowedS3Endpoints: policy.s3Endpoints?.length ?? 0,
    },
    'operator started',
  );
  return {
    port: probes.port,
    metrics,
    isLeader: () => elector.isLeader(),
    stop: async () => {
      elector.stop();
      await campaign;
      await slot.stop();
      await new Promise<void>((resolve) => probes.server.close(() => resolve()));
    },
  };
}

/** Settings are the options the controller shares, resolved against the environment. */
interface Settings {
  kc: KubeConfig;
  log: Logger;
  clock: Clock;
  identity: string;
  events: EventSink;
  buckets: BucketStore;
  namespaces: readonly string[];
  policy: AdmissionPolicy;
}

/** resolveSettings fills what `opts` leaves out from the environment, else the defaults. */
function resolveSettings(opts: OperatorOptions): Settings {
  const kc = opts.kc ?? defaultKubeConfig();
  const log = opts.log ?? jsonLogger((process.env.BERTH_LOG_LEVEL as Level | undefined) ?? 'info');
  const clock = opts.clock ?? realClock;
  const identity =
    opts.identity ?? process.env.POD_NAME ?? `${hostname()}-${randomBytes(3).toString('hex')}`;
  return {
    kc,
    log,
    clock,
    identity,
    events: opts.events ?? new EventRecorder(kc, identity, log, clock),
    buckets: opts.buckets ?? new MinioBucketStore(),
    namespaces: opts.namespaces ?? listFromEnv(process.env.BERTH_WATCH_NAMESPACES),
    policy: opts.policy ?? {
      images: listFromEnv(process.env.BERTH_ALLOWED_IMAGES),
      s3Endpoints: listFromEnv(process.env.BERTH_ALLOWED_S3_ENDPOINTS),
    },
  };
}

/** leaderElector campaigns on the operator's Lease, default `$POD_NAMESPACE/berth-operator`. */
function leaderElector(opts: OperatorOptions, s: Settings): LeaderElector {
  return new LeaderElector({
    kc: s.kc,
    namespace: opts.leaseNamespace ?? process.env.POD_NAMESPACE ?? 'default',
    name: opts.leaseName ?? 'berth-operator',
    identity: s.identity,
    clock: s.clock,
    log: s.log,
    leaseDurationSeconds: opts.leaseDurationSeconds,
    renewDeadlineMs: opts.renewDeadlineMs,
    retryPeriodMs: opts.retryPeriodMs,
  });
}

/**
 * ControllerSlot runs a Controller while this replica leads: `lead` starts a new one, `follow`
 * stops it, and each start or stop waits for the one before.
 */
class ControllerSlot {
  private controller: Controller | undefined;
  private transition: Promise<void> = Promise.resolve();
  /**
   * startFailed is set when a leader's controller could not start: it cannot recover in
   * place, so /healthz fails and the kubelet restarts the process (and a standby may lead).
   */
  startFailed = false;

  constructor(
    private readonly make: () => Controller,
    private readonly log: Logger,
    private readonly metrics: OperatorMetrics,
  ) {}

  lead(): void {
    this.metrics.leader.set(1);
    const c = this.make();
    this.controller = c;
    this.transition = this.transition.then(() =>
      c.start().catch((err: unknown) => {
        this.startFailed = true;
        this.log.error({ err: String(err) }, 'controller failed to start');
      }),
    );
  }

  follow(): void {
    this.metrics.leader.set(0);
    const c = this.controller;
    this.controller = undefined;
    this.transition = this.transition.then(() => c?.stop());
  }

  /** synced is true when a controller runs and its caches are synced. */
  synced(): boolean {
    return this.controller?.synced() ?? false;
  }

  /** stop waits for the last start or stop, then stops the controller if one runs. */
  async stop(): Promise<void> {
    await this.transition;
    await this.controller?.stop();
  }
}

/**
 * operatorCommand is `berth operator`: it runs until SIGTERM or SIGINT, then releases the
 * lease and exits 0.
 */
export async function operatorCommand(): Promise<void> {
  const op = await runOperator();
  let stopping = false;
  const shutdown = (): void => {
    if (stopping) return;
    stopping = true;
    op.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}
