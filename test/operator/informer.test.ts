import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { describe, expect, it, vi } from 'vitest';
import { FakeClock } from './fake-clock.js';

/** FakeInformer stands in for client-node's informer: the test fires its events. */
class FakeInformer {
  starts = 0;
  stops = 0;
  handlers = new Map<string, ((arg?: unknown) => void)[]>();
  on(verb: string, cb: (arg?: unknown) => void): void {
    this.handlers.set(verb, [...(this.handlers.get(verb) ?? []), cb]);
  }
  emit(verb: string, arg?: unknown): void {
    for (const h of this.handlers.get(verb) ?? []) h(arg);
  }
  start(): Promise<void> {
    this.starts++;
    return Promise.resolve();
  }
  stop(): Promise<void> {
    this.stops++;
    return Promise.resolve();
  }
  list(): KubernetesObject[] {
    return [];
  }
  get(): undefined {
    return undefined;
  }
}

let fake: FakeInformer;
vi.mock('@kubernetes/client-node', () => ({
  makeInformer: () => {
    fake = new FakeInformer();
    return fake;
  },
}));

const { watchResource } = await import('../../operator/informer.js');
const silent = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

function watched(clock: FakeClock, seen: string[] = []) {
  return watchResource<KubernetesObject>({
    kc: {} as KubeConfig,
    path: '/apis/berth.dev/v1alpha1/registries',
    list: () => Promise.resolve({ items: [], metadata: {} }),
    onEvent: (t, o) => seen.push(`${t}:${o.metadata?.name}`),
    log: silent,
    clock,
  });
}

describe('watchResource', () => {
  it('GIVEN a started watch WHEN the first list connects THEN start resolves and it is synced', async () => {
    const w = watched(new FakeClock());
    const started = w.start();
    expect(w.synced()).toBe(false);
    fake.emit('connect');
    await started;
    expect(w.synced()).toBe(true);
  });

  it('GIVEN add, update and delete events WHEN fired THEN they reach the handler in order', () => {
    const seen: string[] = [];
    watched(new FakeClock(), seen);
    fake.emit('add', { metadata: { name: 'a' } });
    fake.emit('update', { metadata: { name: 'a' } });
    fake.emit('delete', { metadata: { name: 'a' } });
    expect(seen).toEqual(['add:a', 'update:a', 'delete:a']);
  });

  it('GIVEN repeated watch errors WHEN the clock advances THEN it restarts with doubling delays, capped, and a connect resets them', () => {
    const clock = new FakeClock();
    const w = watched(clock);
    const delays: number[] = [];
    for (let i = 0; i < 7; i++) {
      const before = fake.starts;
      fake.emit('error', new Error('connection reset'));
      let waited = 0;
      while (fake.starts === before) {
        clock.advance(50);
        waited += 50;
      }
      delays.push(waited);
    }
    expect(delays).toEqual([250, 500, 1000, 2000, 4000, 5000, 5000]);
    expect(w.restarts()).toBe(7);
    fake.emit('connect');
    fake.emit('error', new Error('again'));
    clock.advance(249);
    expect(w.restarts()).toBe(7);
    clock.advance(1);
    expect(w.restarts()).toBe(8);
  });

  it('GIVEN a pending restart WHEN the watch is stopped THEN it does not restart', () => {
    const clock = new FakeClock();
    const w = watched(clock);
    fake.emit('error', new Error('boom'));
    w.stop();
    clock.advance(60_000);
    expect(fake.starts).toBe(0);
    expect(fake.stops).toBe(1);
  });
});
