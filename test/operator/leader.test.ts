import type { KubeConfig, V1Lease } from '@kubernetes/client-node';
import { describe, expect, it, vi } from 'vitest';
import { FakeClock } from './fake-clock.js';

/** LeaseStore is an in-memory Lease API with resourceVersion checks, like the API server's. */
class LeaseStore {
  lease: V1Lease | undefined;
  rv = 0;
  down = false;
  read(): V1Lease {
    if (this.down) throw new Error('connection refused');
    if (!this.lease) throw Object.assign(new ApiException404(), { code: 404 });
    return structuredClone(this.lease);
  }
  create(body: V1Lease): V1Lease {
    if (this.down) throw new Error('connection refused');
    if (this.lease) throw Object.assign(new Error('exists'), { code: 409 });
    this.lease = { ...body, metadata: { ...body.metadata, resourceVersion: String(++this.rv) } };
    return this.lease;
  }
  replace(body: V1Lease): V1Lease {
    if (this.down) throw new Error('connection refused');
    if (body.metadata?.resourceVersion !== this.lease?.metadata?.resourceVersion)
      throw Object.assign(new Error('conflict'), { code: 409 });
    this.lease = { ...body, metadata: { ...body.metadata, resourceVersion: String(++this.rv) } };
    return this.lease;
  }
}

class ApiException404 extends Error {}
const store = new LeaseStore();

vi.mock('@kubernetes/client-node', () => {
  class ApiException extends Error {
    code = 0;
  }
  class CoordinationV1Api {}
  return { ApiException, CoordinationV1Api };
});

const cn = await import('@kubernetes/client-node');
// The elector tests `instanceof ApiException` for 404: make the store's error one.
Object.setPrototypeOf(ApiException404.prototype, cn.ApiException.prototype);
const { LeaderElector } = await import('../../operator/leader.js');

const kc = {
  makeApiClient: () => ({
    readNamespacedLease: () => Promise.resolve().then(() => store.read()),
    createNamespacedLease: ({ body }: { body: V1Lease }) =>
      Promise.resolve().then(() => store.create(body)),
    replaceNamespacedLease: ({ body }: { body: V1Lease }) =>
      Promise.resolve().then(() => store.replace(body)),
  }),
} as unknown as KubeConfig;
/** current reads the stored Lease (a function, so narrowing in a test does not stick). */
const current = (): V1Lease | undefined => store.lease;
const silent = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

async function tick(clock: FakeClock, ms: number): Promise<void> {
  for (let t = 0; t < ms; t += 100) {
    clock.advance(100);
    for (let i = 0; i < 20; i++) await Promise.resolve();
  }
}

function elector(clock: FakeClock, identity: string) {
  const e = new LeaderElector({
    kc,
    namespace: 'ns',
    name: 'berth-operator',
    identity,
    clock,
    log: silent,
    leaseDurationSeconds: 15,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2_000,
  });
  const events: string[] = [];
  const done = e.run(
    () => events.push('started'),
    () => events.push('stopped'),
  );
  return { e, events, done };
}

describe('leader election on a Lease', () => {
  it('GIVEN two candidates WHEN they campaign THEN exactly one leads; when it stops, the other takes over at once', async () => {
    store.lease = undefined;
    store.down = false;
    const clock = new FakeClock();
    const a = elector(clock, 'a');
    await tick(clock, 100);
    const b = elector(clock, 'b');
    await tick(clock, 6_000);
    expect([a.e.isLeader(), b.e.isLeader()]).toEqual([true, false]);
    expect(current()?.spec?.holderIdentity).toBe('a');
    a.e.stop();
    await tick(clock, 2_100);
    await a.done;
    expect(a.events).toEqual(['started', 'stopped']);
    // Released on stop: b's next retry takes it, without waiting 15 s for expiry.
    expect(b.e.isLeader()).toBe(true);
    expect(current()?.spec?.holderIdentity).toBe('b');
    expect(current()?.spec?.leaseTransitions).toBe(1);
    b.e.stop();
    await tick(clock, 2_100);
    await b.done;
  });

  it('GIVEN a leader that cannot reach the API WHEN the renew deadline passes THEN it steps down', async () => {
    store.lease = undefined;
    store.down = false;
    const clock = new FakeClock();
    const a = elector(clock, 'a');
    await tick(clock, 100);
    expect(a.e.isLeader()).toBe(true);
    store.down = true;
    await tick(clock, 8_000);
    expect(a.e.isLeader()).toBe(true);
    await tick(clock, 4_000);
    expect(a.e.isLeader()).toBe(false);
    expect(a.events).toEqual(['started', 'stopped']);
    store.down = false;
    a.e.stop();
    await tick(clock, 2_100);
    await a.done;
  });

  it('GIVEN a holder that stopped renewing WHEN its lease expires THEN another candidate takes it', async () => {
    store.lease = undefined;
    store.down = false;
    const clock = new FakeClock();
    store.create({
      metadata: { name: 'berth-operator', namespace: 'ns' },
      spec: { holderIdentity: 'gone', leaseDurationSeconds: 15, renewTime: new Date(0) },
    });
    const b = elector(clock, 'b');
    await tick(clock, 10_000);
    expect(b.e.isLeader()).toBe(false);
    await tick(clock, 8_000);
    expect(b.e.isLeader()).toBe(true);
    b.e.stop();
    await tick(clock, 2_100);
    await b.done;
  });
});
