import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { RetentionPolicy } from '../../../server/config/types.js';
import { GarbageCollector, type GcReport } from '../../../server/gc/collector.js';
import type { GcState } from '../../../server/gc/state.js';
import { StorageLease } from '../../../server/storage/lease.js';
import { parseDigest } from '../../../server/registry/reference.js';
import { Paths } from '../../../server/storage/paths.js';
import { silentLogger } from '../../../server/util/log.js';
import { image, index } from '../../support/image.js';
import { TestStore } from '../../support/store.js';

const GRACE = 600;

function collector(
  store: TestStore,
  over: {
    policies?: RetentionPolicy[];
    sleep?: (ms: number) => Promise<void>;
    holder?: string;
  } = {},
) {
  return new GarbageCollector({
    driver: store.driver,
    registry: store.registry,
    log: silentLogger,
    gc: {
      graceSeconds: GRACE,
      leaseSeconds: 60,
      settleMillis: 1000,
      policies: over.policies ?? [],
    },
    uploadTtlSeconds: 12 * 3600,
    clock: store.driver.clock,
    sleep: over.sleep ?? (async () => undefined),
    holder: over.holder ?? 'test',
  });
}

const keysOf = (r: GcReport | undefined) => r!.deleted.map((i) => i.key).sort();
const segmentKeys = (store: TestStore) =>
  store.driver.keys().filter((k) => k.startsWith('segments/'));

/** deletedImage pushes an image, then deletes its manifest: its blobs become garbage. */
async function deletedImage(store: TestStore, repo: string) {
  const m = image().layer(2048).build();
  await store.push(repo, m);
  await store.registry.repository(repo).delete(parseDigest(m.digest));
  return m;
}

describe('garbage collection: mark and sweep with a grace window', () => {
  it('GIVEN a kept image and an image whose manifest was deleted, both older than grace WHEN gc runs twice a grace apart THEN pointers go first, bytes one grace later, and the kept image still pulls', async () => {
    const store = new TestStore();
    const kept = image().layer(4096).build();
    await store.push('app', kept, 'latest');
    const gone = await deletedImage(store, 'app');
    store.driver.advance(GRACE + 1);

    const first = await collector(store).run({ dryRun: false });

    const goneDigests = gone.blobs.map((b) => b.digest);
    expect(
      first!.deleted
        .filter((i) => i.kind === 'link')
        .map((i) => i.digest)
        .sort(),
    ).toEqual([...goneDigests].sort());
    expect(first!.counts.blob).toBe(2);
    expect(first!.counts.segment).toBe(0); // deferred: a reader may have seen the pointers
    await store.pull('app', 'latest');

    store.driver.advance(GRACE + 1);
    const second = await collector(store).run({ dryRun: false });
    expect(second!.counts.segment).toBe(2);
    expect(second!.bytesFreed).toBeGreaterThanOrEqual(2048);
    await store.pull('app', 'latest');
    // Every remaining segment is named by the kept image.
    const third = await collector(store).run({ dryRun: true });
    expect(third!.deleted).toEqual([]);
    expect(segmentKeys(store)).toHaveLength(2);
  });

  it('GIVEN an unreferenced blob linked within the grace window WHEN gc runs THEN it survives and a manifest pushed afterwards that uses it is accepted', async () => {
    const store = new TestStore();
    const m = image().layer(100).build();
    for (const b of m.blobs) await store.pushBlob('app', b.bytes);
    store.driver.advance(GRACE - 1);

    const report = await collector(store).run({ dryRun: false });

    expect(report!.deleted).toEqual([]);
    await store.registry.repository('app').put(m.body, m.mediaType);
    await store.pull('app', m.digest);
  });

  it('GIVEN an old blob re-pushed (linked again) just now WHEN gc runs THEN the fresh link protects it', async () => {
    const store = new TestStore();
    const layer = randomBytes(64);
    await store.pushBlob('app', layer);
    store.driver.advance(GRACE * 3);
    await store.pushBlob('app', layer); // the client's re-upload relinks the stored bytes
    const report = await collector(store).run({ dryRun: false });
    expect(report!.deleted.filter((i) => i.kind !== 'segment')).toEqual([]);
  });

  it('GIVEN an upload session in flight whose first chunk is older than grace WHEN gc runs THEN its segments survive and the upload commits', async () => {
    const store = new TestStore();
    const chunk = randomBytes(300);
    const session = await store.startUpload('app', chunk);
    store.driver.advance(GRACE * 2);

    const report = await collector(store).run({ dryRun: false });

    expect(report!.deleted).toEqual([]);
    const digest = parseDigest(
      'sha256:' + (await import('node:crypto')).createHash('sha256').update(chunk).digest('hex'),
    );
    await store.uploads.complete(session, digest, store.registry.repository('app').blobs);
  });

  it('GIVEN segments no session or descriptor names (a crashed commit) WHEN gc runs after grace THEN they are deleted, but not before', async () => {
    const store = new TestStore();
    const s = await store.startUpload('app', randomBytes(10));
    await store.driver.delete(Paths.upload(s.id)); // the session is gone, its bytes stay
    store.driver.advance(GRACE - 10);
    expect((await collector(store).run({ dryRun: false }))!.counts.segment).toBe(0);
    store.driver.advance(20);
    expect((await collector(store).run({ dryRun: false }))!.counts.segment).toBe(1);
    expect(segmentKeys(store)).toEqual([]);
  });

  it('GIVEN an index with children and a referrer WHEN gc runs THEN nothing they need is collected', async () => {
    const store = new TestStore();
    const a = image().layer(10).build();
    const b = image().arch('arm64').layer(10).build();
    const idx = index([a, b]);
    await store.push('multi', idx, 'v1');
    const sig = image().artifact('application/vnd.example.sig').subject(idx).layer(5).build();
    await store.push('multi', sig);
    store.driver.advance(GRACE * 5);

    const report = await collector(store).run({ dryRun: false });

    expect(report!.deleted).toEqual([]);
    await store.pull('multi', 'v1');
    await store.pull('multi', sig.digest);
  });

  it('GIVEN garbage WHEN a dry run and then a real run happen THEN the real run deletes exactly what the dry run listed', async () => {
    const store = new TestStore();
    await store.push('app', image().layer(10).build(), 'keep');
    await deletedImage(store, 'app');
    await deletedImage(store, 'other/app');
    const s = await store.startUpload('app', randomBytes(10));
    await store.driver.delete(Paths.upload(s.id));
    store.driver.advance(GRACE + 1);
    const before = store.driver.keys();

    const dry = await collector(store).run({ dryRun: true });
    expect(store.driver.keys()).toEqual(before); // a dry run writes nothing
    const real = await collector(store).run({ dryRun: false });

    expect(keysOf(real)).toEqual(keysOf(dry));
    expect(keysOf(dry).length).toBeGreaterThan(0);
    expect(real!.bytesFreed).toBe(dry!.bytesFreed);
  });
});

describe('garbage collection: races with pushes', () => {
  it('GIVEN a candidate link WHEN the blob is re-linked between the mark and its deletion THEN the re-check keeps it', async () => {
    const store = new TestStore();
    const m = await deletedImage(store, 'app');
    store.driver.advance(GRACE + 1);
    const gc = collector(store);
    gc.on('phase', ({ phase }) => {
      if (phase === 'tags')
        // A mount between plan and sweep rewrites the link: its time is now.
        void store.registry.repository('app').blobs.mount(parseDigest(m.blobs[0]!.digest), 'app');
    });

    const report = await gc.run({ dryRun: false });

    expect(report!.skipped.map((i) => ('digest' in i ? i.digest : undefined))).toContain(
      m.blobs[0]!.digest,
    );
    await store.registry.repository('app').blobs.stat(parseDigest(m.blobs[0]!.digest));
  });

  it('GIVEN a manifest push that checked its links just before gc deleted them WHEN the settle pause ends THEN the links are restored and the image pulls', async () => {
    const store = new TestStore();
    const m = image().layer(100).build();
    for (const b of m.blobs) await store.pushBlob('app', b.bytes);
    store.driver.advance(GRACE + 1);
    // The racing push: its link checks passed before the deletion; its write lands during
    // the settle pause (a plain write of the envelope, as Repository.put does last).
    const racingPush = async () => {
      await store.driver.put(
        Paths.manifest('app', parseDigest(m.digest)),
        Buffer.concat([Buffer.from(m.mediaType + '\n'), m.body]),
      );
    };

    const report = await collector(store, { sleep: racingPush }).run({ dryRun: false });

    expect(report!.counts.link).toBe(2);
    expect(report!.restored.map((i) => i.digest).sort()).toEqual(
      m.blobs.map((b) => b.digest).sort(),
    );
    await store.pull('app', m.digest);
    // The bytes were deferred, so nothing the restored links name is lost later either.
    store.driver.advance(GRACE + 1);
    await collector(store).run({ dryRun: false });
    await store.pull('app', m.digest);
  });

  it('GIVEN a mount that read descriptors just before gc deleted them WHEN the mounted blobs are used by a push and later runs happen THEN the bytes stay', async () => {
    const store = new TestStore();
    const m = await deletedImage(store, 'src');
    store.driver.advance(GRACE + 1);
    const read = await Promise.all(
      m.blobs.map(async (b) => store.driver.get(Paths.blob(parseDigest(b.digest)))),
    );
    await collector(store).run({ dryRun: false });
    expect(store.driver.keys().filter((k) => k.startsWith('blobs/'))).toEqual([]);

    // The stale reader links what it read; then the client pushes its manifest.
    for (const [i, b] of m.blobs.entries())
      await store.driver.put(Paths.layer('dst', parseDigest(b.digest)), read[i]!);
    await store.registry.repository('dst').put(m.body, m.mediaType);
    store.driver.advance(GRACE + 1);
    await collector(store).run({ dryRun: false });
    store.driver.advance(GRACE + 1);
    await collector(store).run({ dryRun: false });

    await store.pull('dst', m.digest);
  });
});

describe('garbage collection: one run at a time, and crashes', () => {
  it('GIVEN a lease held by another replica WHEN gc runs THEN it does nothing, and once the lease expires it runs', async () => {
    const store = new TestStore();
    await deletedImage(store, 'app');
    store.driver.advance(GRACE + 1);
    const other = new StorageLease(store.driver, {
      root: Paths.gcLeaseRoot(),
      key: Paths.gcLease,
      holder: 'other',
      ttlMs: 60_000,
      clock: store.driver.clock,
    });
    expect(await other.acquire()).toBe(true);
    const gc = collector(store);
    const busy: unknown[] = [];
    gc.on('busy', (b) => busy.push(b));

    expect(await gc.run({ dryRun: false })).toBeUndefined();
    expect(busy).toEqual([{ holder: 'other' }]);
    expect(gc.stats().busy).toBe(1);

    store.driver.advance(61);
    expect(await other.renew()).toBe(false); // expired: the old holder must stop
    const report = await gc.run({ dryRun: false });
    expect(report!.deleted.length).toBeGreaterThan(0);
  });

  it('GIVEN two replicas WHEN both try to take a free lease at once THEN exactly one holds it', async () => {
    const store = new TestStore();
    const mk = (holder: string) =>
      new StorageLease(store.driver, {
        root: Paths.gcLeaseRoot(),
        key: Paths.gcLease,
        holder,
        ttlMs: 60_000,
        clock: store.driver.clock,
      });
    const results = await Promise.all([mk('a').acquire(), mk('b').acquire(), mk('c').acquire()]);
    expect(results.filter(Boolean)).toHaveLength(1);
  });

  it('GIVEN a run that crashes midway through the sweep WHEN the next run starts THEN it resumes, the store stays consistent and the job finishes', async () => {
    const store = new TestStore();
    await store.push('app', image().layer(10).build(), 'keep');
    for (let i = 0; i < 4; i++) await deletedImage(store, `r${i}`);
    store.driver.advance(GRACE + 1);
    let deletes = 0;
    store.driver.beforeDelete = (key) => {
      if (key.includes('/_layers/') && ++deletes === 3) throw new Error('killed');
    };
    await expect(collector(store, { holder: 'crashed' }).run({ dryRun: false })).rejects.toThrow(
      'killed',
    );
    store.driver.beforeDelete = undefined;
    const state = JSON.parse((await store.driver.get(Paths.gcState())).toString()) as {
      run?: { id: string; phase: string };
    };
    expect(state.run?.phase).toBe('links');
    await store.pull('app', 'keep');

    const resumed = await collector(store).run({ dryRun: false });
    expect(resumed!.resumedFrom).toBe(state.run!.id);
    store.driver.advance(GRACE + 1);
    await collector(store).run({ dryRun: false });

    const left = store.driver
      .keys()
      .filter((k) => !k.startsWith('gc/') && !k.startsWith('catalog/'));
    expect(left.filter((k) => k.includes('/r'))).toEqual([]);
    expect(left.filter((k) => k.startsWith('segments/'))).toHaveLength(2);
    expect(left.filter((k) => k.startsWith('blobs/'))).toHaveLength(2);
    await store.pull('app', 'keep');
  });

  it('GIVEN gc/state as the collector before its split into phases left it, killed while deleting links, and the image pushed again since WHEN the next run starts THEN it resumes that run and restores the link the image needs', async () => {
    const store = new TestStore();
    const m = await deletedImage(store, 'app');
    store.driver.advance(GRACE + 1);
    const links = await Promise.all(
      m.blobs.map(async (b) => {
        const key = Paths.layer('app', parseDigest(b.digest));
        const data = (await store.driver.get(key)).toString();
        const segments = (JSON.parse(data) as { segments: { key: string }[] }).segments;
        return { key, digest: b.digest, data, upload: Paths.segmentUpload(segments[0]!.key) };
      }),
    );
    // Exactly the shape that version wrote: the run, its phase and undo log, the deferrals.
    const written = {
      deferred: Object.fromEntries(links.map((l) => [l.upload, store.driver.now + GRACE * 1000])),
      run: {
        id: '2023-11-14T222321000Z-fac2a9',
        holder: 'crashed',
        startedAt: store.driver.now,
        phase: 'links',
        deleted: 0,
        bytesFreed: 0,
        undo: links.map((l) => ({ key: l.key, repo: 'app', digest: l.digest, data: l.data })),
      },
    };
    await store.driver.put(Paths.gcState(), JSON.stringify(written));
    await store.driver.delete(links[0]!.key);
    await store.driver.put(
      Paths.manifest('app', parseDigest(m.digest)),
      Buffer.concat([Buffer.from(m.mediaType + '\n'), m.body]),
    );

    const report = await collector(store).run({ dryRun: false });

    expect(report!.resumedFrom).toBe('2023-11-14T222321000Z-fac2a9');
    expect(report!.restored.map((i) => i.digest)).toEqual([links[0]!.digest]);
    await store.pull('app', m.digest);
    const state = JSON.parse((await store.driver.get(Paths.gcState())).toString()) as GcState;
    expect(state.run).toBeUndefined();
    expect(Object.keys(state.deferred).sort()).toEqual(links.map((l) => l.upload).sort());
  });

  it('GIVEN gc events WHEN a run deletes THEN listeners see each deletion and the counters add up', async () => {
    const store = new TestStore();
    await deletedImage(store, 'app');
    store.driver.advance(GRACE + 1);
    const gc = collector(store);
    let seen = 0;
    gc.on('deleted', () => seen++);
    const finished: GcReport[] = [];
    gc.on('run-finished', (r) => finished.push(r));
    const report = await gc.run({ dryRun: false });
    expect(seen).toBe(report!.deleted.length);
    expect(finished).toHaveLength(1);
    expect(gc.stats()).toMatchObject({ runs: 1, deleted: { link: 2, blob: 2 }, running: false });
  });

  it('GIVEN an upload session expired longer than grace WHEN gc runs THEN the session and its bytes go', async () => {
    const store = new TestStore();
    await store.startUpload('app', randomBytes(50));
    store.driver.advance(12 * 3600 + GRACE + 1);
    const report = await collector(store).run({ dryRun: false });
    expect(report!.counts).toMatchObject({ upload: 1, segment: 1 });
    expect(store.driver.keys().filter((k) => !k.startsWith('gc/'))).toEqual([]);
  });
});
