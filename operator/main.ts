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

export async function runOperator(opts: OperatorOptions = {}): Promise<RunningOperator> {
  const kc = opts.kc ?? defaultKubeConfig();
  const log = opts.log ?? jsonLogger((process.env.BERTH_LOG_LEVEL as Level | undefined) ?? 'info');
  const clock = opts.clock ?? realClock;
  const identity =
    opts.identity ?? process.env.POD_NAME ?? `${hostname()}-${randomBytes(3).toString('hex')}`;
  const metrics = new OperatorMetrics();
  const events = opts.events ?? new EventRecorder(kc, identity, log, clock);
  const buckets = opts.buckets ?? new MinioBucketStore();
  const namespaces = opts.namespaces ?? listFromEnv(process.env.BERTH_WATCH_NAMESPACES);
  const policy = opts.policy ?? {
    images: listFromEnv(process.env.BERTH_ALLOWED_IMAGES),
    s3Endpoints: listFromEnv(process.env.BERTH_ALLOWED_S3_ENDPOINTS),
  };

  let controller: Controller | undefined;
  let transition: Promise<void> = Promise.resolve();
  const elector = new LeaderElector({
    kc,
    namespace: opts.leaseNamespace ?? process.env.POD_NAMESPACE ?? 'default',
    name: opts.leaseName ?? 'berth-operator',
    identity,
    clock,
    log,
    leaseDurationSeconds: opts.leaseDurationSeconds,
    renewDeadlineMs: opts.renewDeadlineMs,
    retryPeriodMs: opts.retryPeriodMs,
  });

  // startFailed is set when a leader's controller could not start: it cannot recover in
  // place, so /healthz fails and the kubelet restarts the process (and a standby may lead).
  let startFailed = false;
  const probes = await serveProbes(
    metrics,
    // A standby is ready (it is doing its job: waiting); a leader once its caches are synced.
    () => !elector.isLeader() || (controller?.synced() ?? false),
    opts.probeHost ?? '0.0.0.0',
    opts.probePort ?? Number(process.env.BERTH_OPERATOR_PROBE_PORT ?? 8080),
    () => !startFailed,
  );

  const campaign = elector.run(
    () => {
      metrics.leader.set(1);
      const c = new Controller({
        kc,
        log,
        metrics,
        buckets,
        events,
        clock,
        resyncMs: opts.resyncMs,
        storageRetryMs: opts.storageRetryMs,
        operatorImage: opts.operatorImage,
        namespaces,
        policy,
      });
      controller = c;
      transition = transition.then(() =>
        c.start().catch((err: unknown) => {
          startFailed = true;
          log.error({ err: String(err) }, 'controller failed to start');
        }),
      );
    },
    () => {
      metrics.leader.set(0);
      const c = controller;
      controller = undefined;
      transition = transition.then(() => c?.stop());
    },
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
      await transition;
      await controller?.stop();
      await new Promise<void>((resolve) => probes.server.close(() => resolve()));
    },
  };
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
