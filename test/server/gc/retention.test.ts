import { describe, expect, it } from 'vitest';
import type { RetentionPolicy } from '../../../server/config/types.js';
import { GarbageCollector } from '../../../server/gc/collector.js';
import { gcProblems, gcDefaults } from '../../../server/config/gc.js';
import {
  compilePolicies,
  planRetention,
  policyFor,
  type ManifestFact,
} from '../../../server/gc/retention.js';
import { parseDigest } from '../../../server/registry/reference.js';
import { silentLogger } from '../../../server/util/log.js';
import { image, index, type Built } from '../../support/image.js';
import { TestStore } from '../../support/store.js';

const GRACE = 600;
const DAY = 86400;

function collector(store: TestStore, policies: RetentionPolicy[]) {
  return new GarbageCollector({
    driver: store.driver,
    registry: store.registry,
    log: silentLogger,
    gc: { graceSeconds: GRACE, leaseSeconds: 60, settleMillis: 0, policies },
    uploadTtlSeconds: 12 * 3600,
    clock: store.driver.clock,
    sleep: async () => undefined,
  });
}

/** pushTags pushes one image per tag, an hour apart, oldest first. */
async function pushTags(
  store: TestStore,
  repo: string,
  tags: string[],
): Promise<Map<string, Built>> {
  const out = new Map<string, Built>();
  for (const t of tags) {
    const m = image().layer(32).build();
    await store.push(repo, m, t);
    out.set(t, m);
    store.driver.advance(3600);
  }
  return out;
}

async function tagsOf(store: TestStore, repo: string): Promise<string[]> {
  return (await store.registry.repository(repo).list(undefined, 100)).items;
}

describe('retention policies', () => {
  it('GIVEN a policy keeping the 2 most recently pushed tags and tags matching ^v WHEN gc runs THEN older tags, their manifests and blobs go, and the dry run listed exactly that', async () => {
    const store = new TestStore();
    const images = await pushTags(store, 'team/app', ['v1.0', 'b1', 'b2', 'b3', 'b4']);
    await pushTags(store, 'other', ['b1', 'b2', 'b3']);
    store.driver.advance(GRACE);
    const policies: RetentionPolicy[] = [
      {
        repositories: ['team/**'],
        keepTags: [{ mostRecentlyPushed: 2 }, { patterns: ['^v'] }],
        deleteUntaggedAfterSeconds: 0,
      },
    ];

    const dry = await collector(store, policies).run({ dryRun: true });
    const real = await collector(store, policies).run({ dryRun: false });

    expect(real!.deleted.map((i) => i.key)).toEqual(dry!.deleted.map((i) => i.key));
    expect(real!.deleted.filter((i) => i.kind === 'tag').map((i) => i.tag)).toEqual(['b1', 'b2']);
    expect(
      real!.deleted
        .filter((i) => i.kind === 'manifest')
        .map((i) => i.digest)
        .sort(),
    ).toEqual([images.get('b1')!.digest, images.get('b2')!.digest].sort());
    expect(real!.counts.link).toBe(4);
    expect(await tagsOf(store, 'team/app')).toEqual(['b3', 'b4', 'v1.0']);
    expect(await tagsOf(store, 'other')).toEqual(['b1', 'b2', 'b3']);
    for (const t of ['v1.0', 'b3', 'b4']) await store.pull('team/app', t);
  });

  it('GIVEN a tag pushed within the grace window WHEN the policy would drop it THEN it stays', async () => {
    const store = new TestStore();
    await pushTags(store, 'app', ['old1', 'old2']);
    store.driver.advance(GRACE);
    const fresh = image().layer(8).build();
    await store.push('app', fresh, 'fresh');
    // No rule covers any of these tags: only the grace window can keep one.
    const report = await collector(store, [
      { repositories: ['**'], keepTags: [{ patterns: ['^release-'] }] },
    ]).run({ dryRun: false });
    expect(report!.deleted.filter((i) => i.kind === 'tag').map((i) => i.tag)).toEqual([
      'old1',
      'old2',
    ]);
    expect(await tagsOf(store, 'app')).toEqual(['fresh']);
  });

  it('GIVEN an untagged manifest younger than the untagged age WHEN gc runs THEN it stays, and once old enough it goes', async () => {
    const store = new TestStore();
    const m = image().layer(8).build();
    await store.push('app', m);
    store.driver.advance(GRACE + 1);
    const policies = [{ repositories: ['app'], deleteUntaggedAfterSeconds: DAY }];
    expect((await collector(store, policies).run({ dryRun: false }))!.deleted).toEqual([]);
    store.driver.advance(DAY);
    const report = await collector(store, policies).run({ dryRun: false });
    expect(report!.deleted.filter((i) => i.kind === 'manifest')).toMatchObject([
      { digest: m.digest, reason: 'untagged' },
    ]);
  });

  it('GIVEN a tagged index, its untagged children and a signature WHEN untagged manifests are deleted THEN all of them stay', async () => {
    const store = new TestStore();
    const idx = index([image().layer(8).build(), image().arch('arm64').layer(8).build()]);
    await store.push('multi', idx, 'v1');
    const sig = image().artifact('application/vnd.example.sig').subject(idx).layer(4).build();
    await store.push('multi', sig);
    store.driver.advance(DAY);
    const report = await collector(store, [
      { repositories: ['multi'], deleteUntaggedAfterSeconds: 0, deleteReferrers: true },
    ]).run({ dryRun: false });
    expect(report!.deleted).toEqual([]);
    await store.pull('multi', 'v1');
  });

  it('GIVEN a referrer whose subject was deleted WHEN deleteReferrers is on THEN the referrer and its blobs go; with it off they stay', async () => {
    const store = new TestStore();
    const subject = image().layer(8).build();
    await store.push('app', subject, 'v1');
    const sig = image().artifact('application/vnd.example.sig').subject(subject).layer(4).build();
    await store.push('app', sig);
    await store.registry.repository('app').delete(parseDigest(subject.digest));
    store.driver.advance(GRACE + 1);

    const off = await collector(store, [{ repositories: ['app'] }]).run({ dryRun: true });
    expect(off!.deleted.filter((i) => i.kind === 'manifest')).toEqual([]);
    const on = await collector(store, [{ repositories: ['app'], deleteReferrers: true }]).run({
      dryRun: false,
    });
    expect(on!.deleted.filter((i) => i.kind === 'manifest')).toMatchObject([
      { digest: sig.digest, reason: 'orphan-referrer' },
    ]);
    expect(
      (
        await store.registry
          .repository('app')
          .referrers(parseDigest(subject.digest), undefined, undefined, 10)
      ).items,
    ).toEqual([]);
  });
});

describe('planRetention (pure)', () => {
  const fact = (digest: string, modified: number, extra: Partial<ManifestFact> = {}) =>
    [digest, { digest, modified, children: [], ...extra }] as const;

  it('GIVEN a signature chain on an aged untagged image WHEN planned THEN the whole chain goes in one run', () => {
    const [policy] = compilePolicies([{ repositories: ['*'], deleteUntaggedAfterSeconds: 10 }]);
    const manifests = new Map([
      fact('img', 0),
      fact('sig', 0, { subject: 'img' }),
      fact('sigsig', 0, { subject: 'sig' }),
      fact('kept', 0),
    ]);
    const plan = planRetention(
      policy!,
      [{ tag: 't', digest: 'kept', modified: 0 }],
      manifests,
      1_000_000,
      1_000_000,
    );
    expect(plan.manifests.map((m) => m.digest)).toEqual(['img', 'sig', 'sigsig']);
  });

  it('GIVEN several policies WHEN a repository matches more than one THEN the first applies', () => {
    const policies = compilePolicies([
      { repositories: ['team/*'], deleteReferrers: true },
      { repositories: ['**'] },
    ]);
    expect(policyFor(policies, 'team/a')!.policy.deleteReferrers).toBe(true);
    expect(policyFor(policies, 'team/a/b')!.policy.deleteReferrers).toBeUndefined();
  });

  it('GIVEN an invalid tag pattern WHEN the config is checked THEN the problem names the field', () => {
    const gc = {
      ...gcDefaults(),
      policies: [{ repositories: ['*'], keepTags: [{ patterns: ['('] }] }],
    };
    expect(gcProblems(gc)).toEqual([
      expect.stringMatching(/^gc\.policies\.0\.keepTags\.0\.patterns\.0: not a regular expression/),
    ]);
  });
});
