/**
 * LeaderElector holds a coordination.k8s.io/v1 Lease so that of several operator replicas
 * exactly one acts. Updates are optimistic (resourceVersion), so two candidates never both
 * believe they hold it; a holder that cannot renew within renewDeadline steps down.
 */
import {
  ApiException,
  CoordinationV1Api,
  type KubeConfig,
  type V1Lease,
} from '@kubernetes/client-node';
import { microTime, realClock, sleep, type Clock } from './clock.js';
import type { Logger } from './log.js';

export interface LeaderOptions {
  kc: KubeConfig;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  clock?: Clock;
  log: Logger;
}

export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private readonly clock: Clock;
  private readonly leaseSeconds: number;
  private readonly renewDeadlineMs: number;
  private readonly retryMs: number;
  private stopped = false;
  private leading = false;

  constructor(private readonly opts: LeaderOptions) {
    this.api = opts.kc.makeApiClient(CoordinationV1Api);
    this.clock = opts.clock ?? realClock;
    this.leaseSeconds = opts.leaseDurationSeconds ?? 15;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.retryMs = opts.retryPeriodMs ?? 2_000;
  }

  isLeader(): boolean {
    return this.leading;
  }

  /**
   * run campaigns until stop(): it calls onStarted when the lease is won and onStopped when it
   * is lost (then campaigns again). Errors talking to the API count as failed renewals.
   */
  async run(onStarted: () => void, onStopped: () => void): Promise<void> {
    let lastRenew = 0;
    while (!this.stopped) {
      let ok = false;
      try {
        ok = await this.tryAcquireOrRenew();
      } catch (err) {
        this.opts.log.warn({ err: String(err) }, 'lease update failed');
      }
      const now = this.clock.now();
      if (ok) {
        lastRenew = now;
        if (!this.leading) {
          this.leading = true;
          this.opts.log.info({ identity: this.opts.identity }, 'became leader');
          onStarted();
        }
      } else if (this.leading && now - lastRenew > this.renewDeadlineMs) {
        this.leading = false;
        this.opts.log.warn({ identity: this.opts.identity }, 'lost leadership');
        onStopped();
      }
      await sleep(this.clock, this.retryMs);
    }
    if (this.leading) {
      this.leading = false;
      await this.release().catch(() => undefined);
      onStopped();
    }
  }

  stop(): void {
    this.stopped = true;
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.opts;
    const now = this.clock.now();
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (!(err instanceof ApiException) || err.code !== 404) throw err;
      await this.api.createNamespacedLease({
        namespace,
        body: {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace },
          spec: {
            holderIdentity: identity,
            leaseDurationSeconds: this.leaseSeconds,
            acquireTime: microTime(now),
            renewTime: microTime(now),
            leaseTransitions: 0,
          },
        },
      });
      return true;
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const renewed = spec.renewTime ? new Date(spec.renewTime).getTime() : 0;
    const expired = renewed + (spec.leaseDurationSeconds ?? this.leaseSeconds) * 1000 < now;
    if (holder !== '' && holder !== identity && !expired) return false;
    const taking = holder !== identity;
    lease.spec = {
      ...spec,
      holderIdentity: identity,
      leaseDurationSeconds: this.leaseSeconds,
      renewTime: microTime(now),
      ...(taking
        ? { acquireTime: microTime(now), leaseTransitions: (spec.leaseTransitions ?? 0) + 1 }
        : {
            acquireTime: spec.acquireTime
              ? microTime(new Date(spec.acquireTime).getTime())
              : microTime(now),
          }),
    };
    // replace carries metadata.resourceVersion: a concurrent writer makes this fail with 409.
    await this.api.replaceNamespacedLease({ name, namespace, body: lease });
    return true;
  }

  /** release empties the holder so a standby takes over without waiting for expiry. */
  private async release(): Promise<void> {
    const { namespace, name, identity } = this.opts;
    const lease = await this.api.readNamespacedLease({ name, namespace });
    if (lease.spec?.holderIdentity !== identity) return;
    lease.spec = {
      ...lease.spec,
      holderIdentity: '',
      renewTime: undefined,
      acquireTime: undefined,
    };
    await this.api.replaceNamespacedLease({ name, namespace, body: lease });
  }
}
