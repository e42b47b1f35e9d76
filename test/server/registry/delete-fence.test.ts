import { afterEach, describe, expect, it } from 'vitest';
import { Errors, isRegistryError } from '../../../server/errors.js';
import { GarbageCollector } from '../../../server/gc/collector.js';
import { parseDigest, type Digest } from '../../../server/registry/reference.js';
import { Registry } from '../../../server/registry/repository.js';
import type { StorageDriver } from '../../../server/storage/driver.js';
import { FilesystemDriver } from '../../../server/storage/drivers/filesystem.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { Paths } from '../../../server/storage/paths.js';
import { silentLogger } from '../../../server/util/log.js';
import { image, type Built } from '../../support/image.js';
import { ciHeaders, ciClient, immutableConfig } from '../../support/immutable-race.js';
import { startTestRegistry, type TestRegistry } from '../../support/server.js';
import { ClockedDriver, TestStore } from '../../support/store.js';
import { directViews } from '../../../server/storage/views.js';
import { scratchDir } from '../../support/scratch.js';

const GRACE = 600;

function collector(store: TestStore) {
  return new GarbageCollector({
    driver: store.driver,
    registry: store.registry,
    log: silentLogger,
    gc: {
      graceSeconds: GRACE,
      leaseSeconds: 60,
      settleMillis: 0,
      policies: [{ repositories: ['app'], deleteUntaggedAfterSeconds: 60 }],
    },
    uploadTtlSeconds: 12 * 3600,
    clock: store.driver.clock,
    sleep: async () => undefined,
    holder: 'test',
  });
}

const refuseTagged = (tag: string) => Errors.denied({ tag }, undefined, `tagged ${tag}`);

/** settled is the state after a race: does the manifest exist, and where does `v1` point? */
async function settled(registry: Registry, repo: string, digest: Digest) {
  const r = registry.repository(repo);
  return {
    manifest: await r.has(digest),
    v1: await r.resolve('v1').then(
      (d) => d.value,
      () => undefined,
    ),
  };
}

describe('conditional manifest deletes are fenced against concurrent pushes', () => {
  const regs: TestRegistry[] = [];
  afterEach(async () => {
    await Promise.all(regs.splice(0).map((r) => r.close()));
  });

  it('GIVEN an untagged manifest retention condemns WHEN it is pushed again and tagged right after the collector checked it THEN the collector keeps it: the manifest and the tag stay', async () => {
    const store = new TestStore();
    const m = image().layer(64).build();
    await store.push('app', m);
    store.driver.advance(GRACE + 120);
    const digest = parseDigest(m.digest);
    const key = Paths.manifest('app', digest);
    let pushed: Promise<void> | undefined;
    let sweeping = false;
    store.driver.before = (op, k) => {
      // The collector reads the manifest once more right before it deletes it.
      if (sweeping && op === 'get' && k === key && pushed === undefined) {
        pushed = store.push('app', m, 'v1');
        return pushed;
      }
    };
    const gc = collector(store);
    gc.on('phase', ({ phase }) => (sweeping = phase === 'manifests'));

    const report = await gc.run({ dryRun: false });

    expect(pushed).toBeDefined();
    expect(report!.deleted.filter((i) => i.kind === 'manifest')).toEqual([]);
    expect(report!.skipped.map((i) => ('digest' in i ? i.digest : undefined))).toContain(m.digest);
    expect(await settled(store.registry, 'app', digest)).toEqual({
      manifest: true,
      v1: m.digest,
    });
    await store.pull('app', 'v1');
    expect(store.driver.keys().filter((k) => k.includes('/_deleting/'))).toEqual([]);
  });

  it('GIVEN a conditional delete past its checks WHEN the manifest is pushed and tagged while it removes it THEN the push waits for it and then writes again: the manifest and the tag stay', async () => {
    const store = new TestStore();
    const m = image().layer(64).build();
    await store.push('app', m);
    const digest = parseDigest(m.digest);
    const key = Paths.manifest('app', digest);
    let pushing: Promise<void> | undefined;
    store.driver.beforeDelete = async (k) => {
      if (k !== key || pushing !== undefined) return;
      const repo = store.registry.repository('app');
      pushing = repo.put(m.body, m.mediaType).then(() => repo.tag('v1', digest));
      // The push writes the manifest and the tag before this delete goes on.
      await new Promise((resolve) => setTimeout(resolve, 10));
    };

    await store.registry
      .repository('app')
      .delete(digest, { protect: refuseTagged, unchangedSince: store.driver.now + 1 });
    await pushing;

    expect(pushing).toBeDefined();
    expect(await settled(store.registry, 'app', digest)).toEqual({
      manifest: true,
      v1: m.digest,
    });
    await store.pull('app', 'v1');
  });

  it('GIVEN a fence left by a deleter that died WHEN the manifest is pushed THEN the push does not wait for it', async () => {
    const store = new TestStore();
    const m = image().layer(64).build();
    const digest = parseDigest(m.digest);
    await store.driver.put(
      Paths.deleteFence('app', digest),
      JSON.stringify({ at: store.driver.now - 31_000 }),
    );
    const waits: number[] = [];
    const registry = new Registry(directViews(store.driver), {
      allowSparse: true,
      clock: store.driver.clock,
      pause: async (ms) => void waits.push(ms),
    });

    await registry.repository('app').put(m.body, m.mediaType);
    await registry.repository('app').tag('v1', digest);

    expect(waits).toEqual([]);
    expect(await settled(registry, 'app', digest)).toEqual({ manifest: true, v1: m.digest });
  });

  it('GIVEN a live fence WHEN a tag write meets it THEN it waits, and once the fence is gone it writes again', async () => {
    const store = new TestStore();
    const m = image().layer(64).build();
    const digest = parseDigest(m.digest);
    const fence = Paths.deleteFence('app', digest);
    const waits: number[] = [];
    const registry = new Registry(directViews(store.driver), {
      allowSparse: true,
      clock: store.driver.clock,
      pause: async (ms) => {
        waits.push(ms);
        if (waits.length === 3) await store.driver.delete(fence);
      },
    });
    await registry.repository('app').put(m.body, m.mediaType);
    await store.driver.put(fence, JSON.stringify({ at: store.driver.now }));

    await registry.repository('app').tag('v1', digest);

    expect(waits).toEqual([1, 2, 4]);
    expect(await settled(registry, 'app', digest)).toEqual({ manifest: true, v1: m.digest });
  });

  it('GIVEN an immutable-tag repository WHEN a manifest delete and a re-push of it to an immutable tag interleave after the delete began THEN the pushed tag survives whenever the push got 201', async () => {
    const driver = new ClockedDriver();
    const reg = await startTestRegistry({ config: immutableConfig(), driver });
    regs.push(reg);
    const c = ciClient(reg);
    const m = image().layer(32).build();
    expect((await c.push('prod/app', 'build-1', m)).status).toBe(201);
    const tagsOf = Paths.tagsOfRoot('prod/app', parseDigest(m.digest));
    const fence = Paths.deleteFence('prod/app', parseDigest(m.digest));
    let push: Promise<number> | undefined;
    let sawFence!: () => void;
    const fenceSeen = new Promise<void>((resolve) => (sawFence = resolve));
    driver.before = async (op, key) => {
      if (op === 'get' && key === fence) sawFence();
      // The delete lists the manifest's tags: the push of an immutable tag runs right then.
      if (op === 'list' && key === tagsOf && push === undefined) {
        push = c.pushManifest('prod/app', 'v1', m).then(async (r) => {
          await r.arrayBuffer();
          return r.status;
        });
        await Promise.race([push, fenceSeen]);
      }
    };

    const del = await reg.fetch(`/v2/prod/app/manifests/${m.digest}`, {
      method: 'DELETE',
      headers: ciHeaders,
    });
    const pushed = await push!;

    expect(pushed).toBe(201);
    expect([202, 403]).toContain(del.status);
    const got = await reg.fetch('/v2/prod/app/manifests/v1', { headers: ciHeaders });
    expect(got.status).toBe(200);
    expect(got.headers.get('docker-content-digest')).toBe(m.digest);
  });

  for (const [name, make] of [
    ['in-memory', () => new InMemoryDriver()],
    ['filesystem', () => new FilesystemDriver(scratchDir('berth-fence-'))],
  ] as const) {
    it(`GIVEN the ${name} driver WHEN 40 rounds of a conditional delete race a push and tag of the same manifest THEN a push that succeeded is never lost, and no fence is left`, async () => {
      const driver: StorageDriver = make();
      const registry = new Registry(directViews(driver), { allowSparse: true });
      for (let round = 0; round < 40; round++) {
        const m: Built = image().layer(16).build();
        const digest = parseDigest(m.digest);
        const repo = registry.repository('app');
        await repo.put(m.body, m.mediaType);
        const jitter = () => new Promise((r) => setTimeout(r, Math.random() * 3));

        const [del, push] = await Promise.allSettled([
          jitter().then(() => repo.delete(digest, { protect: refuseTagged })),
          jitter().then(async () => {
            await repo.put(m.body, m.mediaType);
            await repo.tag('v1', digest);
          }),
        ]);

        if (del.status === 'rejected') {
          expect(isRegistryError(del.reason) && del.reason.code).toBe('DENIED');
        }
        if (push.status === 'fulfilled') {
          expect(await settled(registry, 'app', digest)).toEqual({
            manifest: true,
            v1: m.digest,
          });
        }
        await repo.untag('v1').catch(() => undefined);
      }
      const fences = await driver.list('repositories/app/_deleting/');
      expect(fences.names).toEqual([]);
    });
  }
});
