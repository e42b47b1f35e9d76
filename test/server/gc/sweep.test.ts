import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { plan, type Plan } from '../../../server/gc/plan.js';
import { emptyStats, type GcEvents } from '../../../server/gc/report.js';
import { GcRun } from '../../../server/gc/run.js';
import { readAges, readRepository, readSnapshot, RefCache } from '../../../server/gc/snapshot.js';
import { loadState } from '../../../server/gc/state.js';
import { sweep, type SweepDeps } from '../../../server/gc/sweep.js';
import { parseDigest } from '../../../server/registry/reference.js';
import { Paths } from '../../../server/storage/paths.js';
import { silentLogger } from '../../../server/util/log.js';
import { image } from '../../support/image.js';
import { TestStore } from '../../support/store.js';

const GRACE = 600;
const TTL = 12 * 3600;

function deps(store: TestStore): SweepDeps {
  return {
    driver: store.driver,
    registry: store.registry,
    log: silentLogger,
    concurrency: 4,
    clock: store.driver.clock,
    sleep: async () => undefined,
    graceSeconds: GRACE,
    settleMillis: 0,
    uploadTtlSeconds: TTL,
    reread: (name) => readRepository(store.driver, name, new RefCache(), 4),
  };
}

/** begin starts a real run over the store, as the collector would once it holds the lease. */
function begin(store: TestStore): Promise<GcRun> {
  return GcRun.begin(
    {
      driver: store.driver,
      log: silentLogger,
      clock: store.driver.clock,
      events: new EventEmitter<GcEvents>(),
      counters: emptyStats(),
      guard: async () => undefined,
      holder: 'test',
      graceSeconds: GRACE,
    },
    'r1',
    false,
  );
}

/** planOf is what a run would plan over the store now. */
async function planOf(store: TestStore, run: GcRun): Promise<Plan> {
  const snap = await readSnapshot(store.driver, new RefCache(), 4);
  return plan(
    {
      snap,
      policies: [],
      now: run.start,
      cutoff: run.cutoff,
      deferred: run.state.deferred,
      uploadTtlMs: TTL * 1000,
    },
    { ages: (keys) => readAges(store.driver, keys, 4), log: silentLogger },
  );
}

const nothing = (): Plan => ({
  tags: [],
  manifests: [],
  links: [],
  blobs: [],
  uploads: [],
  segments: [],
  pointers: new Map(),
});

describe('the sweep, alone', () => {
  it('GIVEN unreferenced links planned WHEN the sweep deletes each THEN its undo copy and its bytes’ deferral were checkpointed before', async () => {
    const store = new TestStore();
    const m = image().layer(64).build();
    for (const b of m.blobs) await store.pushBlob('app', b.bytes);
    store.driver.advance(GRACE + 1);
    const run = await begin(store);
    const planned = await planOf(store, run);
    const seen: { undo: string[]; deferred: number }[] = [];
    store.driver.beforeDelete = async (key) => {
      if (!key.includes('/_layers/')) return;
      const state = await loadState(store.driver);
      seen.push({
        undo: state.run!.undo.map((u) => u.key),
        deferred: Object.keys(state.deferred).length,
      });
    };

    await sweep(run, planned, deps(store));

    const linkKeys = m.blobs.map((b) => Paths.layer('app', parseDigest(b.digest))).sort();
    expect(seen).toHaveLength(2);
    for (const s of seen) {
      expect(s.undo.sort()).toEqual(linkKeys);
      expect(s.deferred).toBe(2);
    }
  });

  it('GIVEN a planned tag moved to another manifest since the plan WHEN swept THEN the re-check keeps it where it now points', async () => {
    const store = new TestStore();
    const [old, next] = [image().layer(8).build(), image().layer(9).build()];
    await store.push('app', old, 'v1');
    await store.push('app', next);
    store.driver.advance(GRACE + 1);
    const run = await begin(store);
    const key = Paths.tag('app', 'v1');
    const planned: Plan = {
      ...nothing(),
      tags: [
        {
          kind: 'tag',
          key,
          bytes: 0,
          repo: 'app',
          tag: 'v1',
          digest: old.digest,
          reason: 'retention',
        },
      ],
    };
    await store.registry.repository('app').tag('v1', parseDigest(next.digest));

    await sweep(run, planned, deps(store));

    expect(run.report.skipped.map((i) => i.key)).toEqual([key]);
    expect((await store.registry.repository('app').resolve('v1')).value).toBe(next.digest);
  });

  it('GIVEN a driver that can abort stale multipart uploads WHEN a sweep ends THEN it aborts those older than any live session could be and reports how many', async () => {
    const store = new TestStore();
    const asked: Date[] = [];
    Object.assign(store.driver, {
      abortStaleMultipartUploads: async (olderThan: Date) => {
        asked.push(olderThan);
        return 2;
      },
    });
    const run = await begin(store);

    await sweep(run, nothing(), deps(store));

    expect(asked).toEqual([new Date(run.cutoff - TTL * 1000)]);
    expect(run.report.multipartAborted).toBe(2);
  });
});
