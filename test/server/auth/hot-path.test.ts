import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StorageDriver } from '../../../server/storage/driver.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { authConfig } from '../../support/auth.js';
import { Client, image, type Built } from '../../support/image.js';
import { startTestRegistry, type TestRegistry } from '../../support/server.js';

/**
 * counting wraps a driver and counts every method call (a small partial decorator), except
 * those of work that runs on timers of its own: membership rounds (`peers/`), the events
 * outbox's buffered flushes (`events/`) and the upload purger (`uploads/`).
 */
const HOUSEKEEPING = ['peers/', 'events/', 'uploads/'];

function counting(d: StorageDriver): { driver: StorageDriver; calls: () => string[] } {
  const seen: string[] = [];
  const driver = new Proxy(d, {
    get(target, prop, receiver) {
      const v: unknown = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        const key = args[0];
        if (!(typeof key === 'string' && HOUSEKEEPING.some((p) => key.startsWith(p))))
          seen.push(`${String(prop)} ${String(key)}`);
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { driver, calls: () => [...seen] };
}

describe('auth on the hot path', () => {
  const regs: { reg: TestRegistry; calls: () => string[] }[] = [];
  let img: Built;
  beforeAll(async () => {
    img = image().layer(64).build();
    const shared = new InMemoryDriver();
    for (const auth of [undefined, authConfig('htpasswd').anonymous('public/**').build()]) {
      const c = counting(shared);
      // Two processes on one store: the first is alone until its next round, and would
      // keep tags meanwhile; both read tags from storage here, so the counts compare.
      const cache = { tagsWhenAlone: false };
      const reg = await startTestRegistry({
        driver: c.driver,
        config: auth ? { auth, cache } : { cache },
      });
      regs.push({ reg, calls: c.calls });
    }
    // Both registries serve one store; push through the one without auth.
    await new Client((p, i) => regs[0]!.reg.fetch(p, i)).push('public/app', 'v1', img);
  });
  afterAll(async () => {
    for (const { reg } of regs) await reg.close();
  });

  it('GIVEN an anonymous-allowed repository WHEN pulling a manifest and a blob THEN auth adds no storage call', async () => {
    const [open, guarded] = regs as [(typeof regs)[0], (typeof regs)[0]];
    const pull = async (r: TestRegistry) => {
      expect((await r.fetch('/v2/public/app/manifests/v1')).status).toBe(200);
      expect((await r.fetch(`/v2/public/app/blobs/${img.blobs[0]!.digest}`)).status).toBe(200);
    };
    await pull(open.reg); // warm caches equally
    await pull(guarded.reg);
    const a0 = open.calls().length;
    const b0 = guarded.calls().length;
    await pull(open.reg);
    await pull(guarded.reg);
    const byOpen = open.calls().slice(a0).sort();
    expect(byOpen.length).toBeGreaterThan(0);
    expect(guarded.calls().slice(b0).sort()).toEqual(byOpen);
  });
});
