import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Registry } from '../../../server/registry/repository.js';
import type { StorageDriver } from '../../../server/storage/driver.js';
import { FilesystemDriver } from '../../../server/storage/drivers/filesystem.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import {
  fixture,
  mulberry32,
  race,
  randomOps,
  runOp,
  tagViolations,
  tmpLeft,
  type Fixture,
  type TagOp,
} from '../../support/tag-race.js';
import { directViews } from '../../../server/storage/views.js';
import { scratchDir } from '../../support/scratch.js';

const immediate = () => Promise.resolve();

async function pushAll(registry: Registry, f: Fixture): Promise<void> {
  for (const m of f.manifests) await registry.repository(f.repo).put(m.body, m.mediaType);
}

/**
 * scheduled wraps a driver so that every call waits for the fast-check scheduler to let
 * it through: the scheduler then picks the interleaving of all concurrent requests.
 */
function scheduled(inner: StorageDriver, s: fc.Scheduler): StorageDriver {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function' || prop === 'snapshot') return v;
      return async (...args: unknown[]) => {
        await s.schedule(Promise.resolve(), `${String(prop)} ${String(args[0])}`);
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

describe('tag races', () => {
  it('GIVEN two replicas on one filesystem folder WHEN hundreds of racing tag moves, untags, manifest deletes and pushes run THEN no request fails, every tag invariant holds and no temporary file is left', async () => {
    const root = scratchDir('berth-tagrace-');
    const replicas = [0, 1].map(
      () =>
        new Registry(directViews(new FilesystemDriver(root)), {
          allowSparse: true,
          pause: immediate,
        }),
    );
    const f = fixture('race/fs', 4, 3);
    await pushAll(replicas[0]!, f);

    const failures = await race(replicas, f, randomOps(f, 600, mulberry32(15)), 24);

    expect(failures).toEqual([]);
    expect(await tagViolations(new FilesystemDriver(root), f)).toEqual([]);
    expect(await tmpLeft(root)).toEqual([]);
  });

  it('GIVEN one tag moved concurrently between manifests WHEN the manifest it ends on is deleted THEN the tag is gone and pushing that manifest again does not bring it back', async () => {
    const driver = new InMemoryDriver();
    const registry = new Registry(directViews(driver), { allowSparse: true, pause: immediate });
    const f = fixture('race/one', 3, 1);
    await pushAll(registry, f);
    const moves: TagOp[] = Array.from({ length: 60 }, (_, i) => ({
      kind: 'move',
      tag: 0,
      manifest: i % 3,
    }));

    expect(await race([registry], f, moves, 12)).toEqual([]);
    const repo = registry.repository(f.repo);
    const final = await repo.resolve('t0');
    await repo.delete(final);
    const m = f.manifests.find((x) => x.digest.value === final.value)!;
    await repo.put(m.body, m.mediaType);

    await expect(repo.resolve('t0')).rejects.toMatchObject({ code: 'MANIFEST_UNKNOWN' });
    expect((await repo.list(undefined, 10)).items).toEqual([]);
    expect(await tagViolations(driver, f)).toEqual([]);
  });

  it('GIVEN random interleavings of tag moves, untags, deletes and pushes on the in-memory driver WHEN they all settle THEN every tag invariant holds', async () => {
    const op = (f: Fixture): fc.Arbitrary<TagOp> =>
      fc.oneof(
        {
          weight: 6,
          arbitrary: fc.record({
            kind: fc.constant('move' as const),
            tag: fc.nat(f.tags.length - 1),
            manifest: fc.nat(f.manifests.length - 1),
          }),
        },
        {
          weight: 1,
          arbitrary: fc.record({
            kind: fc.constant('untag' as const),
            tag: fc.nat(f.tags.length - 1),
          }),
        },
        {
          weight: 1,
          arbitrary: fc.record({
            kind: fc.constant('delete' as const),
            manifest: fc.nat(f.manifests.length - 1),
          }),
        },
        {
          weight: 1,
          arbitrary: fc.record({
            kind: fc.constant('push' as const),
            manifest: fc.nat(f.manifests.length - 1),
          }),
        },
      );
    const f = fixture('prop', 3, 2);
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.array(op(f), { minLength: 2, maxLength: 8 }),
        async (s, ops) => {
          const inner = new InMemoryDriver();
          await pushAll(new Registry(directViews(inner), { allowSparse: true }), f);
          const driver = scheduled(inner, s);
          const replicas = [0, 1].map(
            () => new Registry(directViews(driver), { allowSparse: true, pause: immediate }),
          );
          let done = false;
          const all = Promise.all(ops.map((o, i) => runOp(replicas[i % 2]!, f, o))).finally(() => {
            done = true;
          });
          while (!done) {
            if (s.count() > 0) await s.waitOne();
            else await new Promise((r) => setImmediate(r));
          }
          expect((await all).filter((e) => e !== undefined)).toEqual([]);
          expect(await tagViolations(inner, f)).toEqual([]);
        },
      ),
      { numRuns: 300, seed: 15 },
    );
  });
});
